//! `govflow status`: a running `govflow run`'s status, from its status server.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use govflow::settings::Config;
use govflow::status::StatusReport;

/// The arguments of `govflow status`.
#[derive(Args)]
pub(crate) struct StatusArgs {
    /// The configuration file (its `[status]` address and token).
    #[arg(long, short, default_value = "govflow.toml")]
    config: PathBuf,
    /// The status server's base URL, instead of the configuration's `[status] listen`.
    #[arg(long)]
    url: Option<String>,
    /// Print the JSON of `/api/status` instead of tables.
    #[arg(long)]
    json: bool,
    /// Only probe `/healthz` (no token needed): exit 0 when it answers 200,
    /// 1 otherwise (a container's health check).
    #[arg(long)]
    health: bool,
}

/// `govflow status`: fetches `/api/status` and prints it.
pub(crate) async fn main(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let config = if args.config.exists() {
        Config::load(&args.config).map_err(anyhow::Error::new)?
    } else {
        Config::default()
    };
    let base = match (&args.url, config.status.listen) {
        (Some(url), _) => url.trim_end_matches('/').to_string(),
        (None, Some(addr)) => format!("http://{addr}"),
        (None, None) => anyhow::bail!(
            "{}: status.listen is \"off\": pass --url",
            args.config.display()
        ),
    };
    if args.health {
        let healthy = reqwest::Client::new()
            .get(format!("{base}/healthz"))
            .timeout(std::time::Duration::from_secs(5))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        println!(
            "{base}/healthz: {}",
            if healthy { "ok" } else { "unhealthy" }
        );
        return Ok(if healthy {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let mut request = reqwest::Client::new().get(format!("{base}/api/status"));
    if let Some(token) = &config.status.token {
        request = request.bearer_auth(token.expose());
    }
    let response = request
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("{base}/api/status: is govflow run running?"))?;
    if !response.status().is_success() {
        anyhow::bail!("{base}/api/status: HTTP {}", response.status());
    }
    let report: StatusReport = response
        .json()
        .await
        .with_context(|| format!("{base}/api/status: not a status report"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", govflow::status::render_table(&report));
    }
    Ok(ExitCode::SUCCESS)
}
