//! `govflow sim`: serves the BigCommerce simulator until Ctrl-C or SIGTERM.

use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use clap::Args;
use govflow_sim::{SimOptions, SimServer};

/// The arguments of `govflow sim`.
#[derive(Args)]
pub(crate) struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8600)]
    port: u16,
    /// Seed of the generated store.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Customers to generate.
    #[arg(long, default_value_t = 1000)]
    customers: usize,
    /// Products to generate (each with 1 to 4 variants).
    #[arg(long, default_value_t = 200)]
    products: usize,
    /// Orders to generate (each with 1 to 5 lines).
    #[arg(long, default_value_t = 3000)]
    orders: usize,
    /// Requests per 30 s window; 0 turns rate limiting off.
    #[arg(long, default_value_t = 150)]
    quota: u32,
    /// Store hash of the API paths (`/stores/{hash}/...`).
    #[arg(long, default_value = "govflowsim")]
    store_hash: String,
    /// Access token clients must send as `X-Auth-Token`.
    #[arg(
        long,
        env = "BIGCOMMERCE_ACCESS_TOKEN",
        default_value = "sim-token",
        hide_env_values = true
    )]
    access_token: String,
    /// Share (0 to 1) of mutations that are dirty ones: negative stock, inventory
    /// rows off or missing, zero quantities, empty names, malformed subscriptions,
    /// sale prices above the price, orphan variants (docs/simulator.md).
    #[arg(long, default_value_t = 0.0)]
    dirty_rate: f64,
}

/// Serves the simulator until Ctrl-C or SIGTERM.
pub(crate) async fn main(args: SimArgs) -> anyhow::Result<()> {
    let options = SimOptions {
        seed: args.seed,
        customers: args.customers,
        products: args.products,
        orders: args.orders,
        quota: (args.quota > 0).then_some(args.quota),
        store_hash: args.store_hash.clone(),
        access_token: args.access_token,
        dirty_rate: args.dirty_rate,
        ..SimOptions::default()
    };
    let server = SimServer::bind(options, SocketAddr::new(args.host, args.port))
        .await
        .with_context(|| format!("starting the simulator on {}:{}", args.host, args.port))?;
    println!(
        "BigCommerce simulator on {}/stores/{}/ (control API under {}/_sim/); Ctrl-C or SIGTERM stops it",
        server.base_url(),
        args.store_hash,
        server.base_url()
    );
    // Ctrl-C, or SIGTERM from a container runtime.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    server.shutdown().await;
    Ok(())
}
