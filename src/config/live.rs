//! Secrets that change while the pipeline runs: `SIGHUP` re-reads the
//! configuration and hands the new values to the components that hold them
//! ([`LiveSecret`]), which use them from their next request or reconnect.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use super::Secret;

/// A secret that a configuration reload can replace; clones share the value.
#[derive(Clone)]
pub struct LiveSecret(Arc<RwLock<Secret>>);

impl std::fmt::Debug for LiveSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveSecret(***)")
    }
}

impl LiveSecret {
    /// A live secret holding `value`.
    pub fn new(value: Secret) -> LiveSecret {
        LiveSecret(Arc::new(RwLock::new(value)))
    }

    /// The current value.
    pub fn get(&self) -> Secret {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the value; true when it changed.
    pub fn replace(&self, value: Secret) -> bool {
        let mut current = self.0.write().unwrap_or_else(|e| e.into_inner());
        if *current == value {
            return false;
        }
        *current = value;
        true
    }
}

/// The live secrets of one run, by configuration key
/// (`bigcommerce.access_token`, `postgres.NAME.url`, `alerts.slack.bot_token`,
/// `alerts.slack.webhook_url`). Components register what they hold; a reload
/// replaces the values.
#[derive(Clone, Default)]
pub struct LiveSecrets {
    held: Arc<Mutex<BTreeMap<String, LiveSecret>>>,
    listeners: Arc<Mutex<Vec<Listener>>>,
}

/// Told the new values after a reload changed some (e.g. to redact them).
type Listener = Box<dyn Fn(&[Secret]) + Send + Sync>;

impl std::fmt::Debug for LiveSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LiveSecrets").field(&self.keys()).finish()
    }
}

impl LiveSecrets {
    /// Makes `secret` replaceable under `key`.
    pub fn register(&self, key: &str, secret: &LiveSecret) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), secret.clone());
    }

    /// Calls `listener` with the new values whenever a reload changed some.
    pub fn on_change(&self, listener: impl Fn(&[Secret]) + Send + Sync + 'static) {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(listener));
    }

    /// The keys registered so far.
    pub fn keys(&self) -> Vec<String> {
        let map = self.held.lock().unwrap_or_else(|e| e.into_inner());
        map.keys().cloned().collect()
    }

    /// Applies the `fresh` values of the registered secrets (by key, from
    /// the re-read configuration); returns the keys whose value changed
    /// (never a value). A key `fresh` no longer has keeps its value:
    /// removing a source or a sink needs a restart.
    pub fn apply(&self, fresh: &BTreeMap<String, Secret>) -> Vec<String> {
        let changed: Vec<String> = {
            let map = self.held.lock().unwrap_or_else(|e| e.into_inner());
            map.iter()
                .filter(|(key, live)| fresh.get(*key).is_some_and(|v| live.replace(v.clone())))
                .map(|(key, _)| key.clone())
                .collect()
        };
        if !changed.is_empty() {
            let values: Vec<Secret> = changed
                .iter()
                .filter_map(|k| fresh.get(k).cloned())
                .collect();
            for listener in self
                .listeners
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
            {
                listener(&values);
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reloadable secrets of a configuration, by key.
    fn config(token: &str, url: &str) -> BTreeMap<String, Secret> {
        [
            ("bigcommerce.access_token", token),
            ("postgres.wise.url", url),
            ("alerts.slack.bot_token", "xoxb-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Secret::new(v)))
        .collect()
    }

    #[test]
    fn a_reload_replaces_the_registered_secrets_and_names_the_changed_ones() {
        let old = config("tok-OLD", "postgres://u:pw-OLD@h/db");
        let live = LiveSecrets::default();
        let mut held = BTreeMap::new();
        for (key, value) in old.clone() {
            let secret = LiveSecret::new(value);
            live.register(&key, &secret);
            held.insert(key, secret);
        }
        assert_eq!(
            live.keys(),
            [
                "alerts.slack.bot_token",
                "bigcommerce.access_token",
                "postgres.wise.url"
            ]
        );
        assert!(live.apply(&old).is_empty(), "nothing changed");
        let told = Arc::new(Mutex::new(Vec::new()));
        let sink = told.clone();
        live.on_change(move |values| {
            let mut told = sink.lock().unwrap();
            told.extend(values.iter().map(|v| v.expose().to_string()));
        });
        let new = config("tok-NEW", "postgres://u:pw-NEW@h/db");
        assert_eq!(
            live.apply(&new),
            ["bigcommerce.access_token", "postgres.wise.url"]
        );
        assert_eq!(held["bigcommerce.access_token"].get().expose(), "tok-NEW");
        assert_eq!(
            held["postgres.wise.url"].get().expose(),
            "postgres://u:pw-NEW@h/db"
        );
        assert_eq!(held["alerts.slack.bot_token"].get().expose(), "xoxb-1");
        assert!(!format!("{live:?}").contains("NEW"));
        assert_eq!(
            *told.lock().unwrap(),
            ["tok-NEW", "postgres://u:pw-NEW@h/db"]
        );
    }
}
