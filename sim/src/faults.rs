//! Fault injection (`POST /_sim/faults`): 429 storms, 5xx, latency, truncated bodies,
//! malformed records.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Seed stream of the fault decisions (distinct from the data's).
const FAULT_STREAM: u64 = 0x6661_756c_7473;

/// The fault settings; every field is optional and absent means off.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultSettings {
    /// Share of API requests answered 500/502/503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// The next N API requests are answered 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm_429: Option<u64>,
    /// The `X-Rate-Limit-Time-Reset-Ms` of storm 429s (default 250).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm_reset_ms: Option<u64>,
    /// Share of API requests answered 429 without rate-limit headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bare_429_rate: Option<f64>,
    /// Added to every API response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Share of responses delayed by `slow_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_rate: Option<f64>,
    /// See `slow_rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_ms: Option<u64>,
    /// Share of 200 responses whose body stops half way (connection cut).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate_rate: Option<f64>,
    /// Share of records served with a broken field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malformed_rate: Option<f64>,
}

impl FaultSettings {
    /// Checks that every rate is within 0..=1; the error names the field.
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        let rates = [
            ("error_rate", self.error_rate),
            ("bare_429_rate", self.bare_429_rate),
            ("slow_rate", self.slow_rate),
            ("truncate_rate", self.truncate_rate),
            ("malformed_rate", self.malformed_rate),
        ];
        for (name, rate) in rates {
            if let Some(r) = rate {
                if !(0.0..=1.0).contains(&r) {
                    return Err((
                        name.to_string(),
                        format!("{name} must be between 0 and 1, got {r}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// What faults hit one API request.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Decision {
    /// Answer 429 as part of a storm, with this `Reset-Ms`.
    pub storm_reset_ms: Option<u64>,
    /// Answer 429 without rate-limit headers.
    pub bare_429: bool,
    /// Answer this 5xx status.
    pub error: Option<u16>,
    /// Delay before answering.
    pub delay_ms: u64,
    /// Cut the body of a 200 half way.
    pub truncate: bool,
    /// Share of records to serve malformed.
    pub malformed_rate: f64,
}

/// The current settings, what is left of a storm, and the random source of decisions.
#[derive(Debug)]
pub(crate) struct FaultState {
    settings: FaultSettings,
    storm_left: u64,
    rng: ChaCha8Rng,
}

impl FaultState {
    /// No faults.
    pub(crate) fn new(seed: u64) -> Self {
        FaultState {
            settings: FaultSettings::default(),
            storm_left: 0,
            rng: ChaCha8Rng::seed_from_u64(seed ^ FAULT_STREAM),
        }
    }

    /// Replaces the settings (and restarts the storm).
    pub(crate) fn set(&mut self, settings: FaultSettings) {
        self.storm_left = settings.storm_429.unwrap_or(0);
        self.settings = settings;
    }

    /// The settings, with `storm_429` as what is left of the storm.
    pub(crate) fn current(&self) -> FaultSettings {
        let mut s = self.settings.clone();
        if s.storm_429.is_some() {
            s.storm_429 = Some(self.storm_left);
        }
        s
    }

    fn roll(&mut self, rate: Option<f64>) -> bool {
        match rate {
            Some(r) if r >= 1.0 => true,
            Some(r) if r > 0.0 => self.rng.random_bool(r),
            _ => false,
        }
    }

    /// Decides the faults of the next API request.
    pub(crate) fn decide(&mut self) -> Decision {
        let s = self.settings.clone();
        let mut d = Decision {
            malformed_rate: s.malformed_rate.unwrap_or(0.0),
            delay_ms: s.latency_ms.unwrap_or(0),
            ..Decision::default()
        };
        if self.storm_left > 0 {
            self.storm_left -= 1;
            d.storm_reset_ms = Some(s.storm_reset_ms.unwrap_or(250));
        }
        d.bare_429 = self.roll(s.bare_429_rate);
        if self.roll(s.error_rate) {
            d.error = Some([500, 502, 503][self.rng.random_range(0..3)]);
        }
        if self.roll(s.slow_rate) {
            d.delay_ms += s.slow_ms.unwrap_or(0);
        }
        d.truncate = self.roll(s.truncate_rate);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storm_counts_down() {
        let mut f = FaultState::new(1);
        f.set(FaultSettings {
            storm_429: Some(2),
            ..Default::default()
        });
        assert_eq!(f.decide().storm_reset_ms, Some(250));
        assert_eq!(f.current().storm_429, Some(1));
        assert_eq!(f.decide().storm_reset_ms, Some(250));
        assert_eq!(f.decide().storm_reset_ms, None);
    }

    #[test]
    fn rates_are_checked() {
        let s = FaultSettings {
            error_rate: Some(1.5),
            ..Default::default()
        };
        assert!(s.validate().is_err());
        assert!(FaultSettings::default().validate().is_ok());
    }
}
