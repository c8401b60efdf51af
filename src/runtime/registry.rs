//! The sources of a run, as their kinds put them in ([`Register`]), until
//! the run starts them: each kind of source is one line in [`Registry::of`].

use std::future::Future;
use std::pin::Pin;

use dataflows::catalog::TableDef;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::RunError;
use super::checkpoint::{Checkpoint, CheckpointError};
use super::drive::{SourceLinks, drive};
use crate::config::{LiveSecret, LiveSecrets};
use crate::settings::Config;
use crate::sources::{self, Outlet, Register, Source, SourceError};
use crate::status::Telemetry;

/// A push feed's start, as [`Register::add_push`] takes it.
type PushStart = Box<
    dyn FnOnce(
            Outlet,
            watch::Receiver<bool>,
        ) -> Pin<Box<dyn Future<Output = Result<(), SourceError>> + Send>>
        + Send,
>;

/// The sources and push feeds of a run, not started yet.
pub(super) struct Registry {
    once: bool,
    sources: Vec<Box<dyn Registered>>,
    pushes: Vec<(String, PushStart)>,
}

impl Registry {
    /// The sources `config` asks for, each kind of source registering its
    /// own (and declaring its configured raw tables: this connects to them).
    pub(super) async fn of(config: &Config, once: bool) -> Result<Registry, SourceError> {
        let mut registry = Registry {
            once,
            sources: Vec::new(),
            pushes: Vec::new(),
        };
        sources::bigcommerce::register(
            config.bigcommerce.as_ref(),
            config.webhooks.as_ref(),
            &mut registry,
        )
        .await?;
        sources::postgres::register(&config.postgres, &mut registry).await?;
        Ok(registry)
    }

    /// The configured raw tables the sources declare.
    pub(super) fn raw_defs(&self) -> Vec<TableDef> {
        self.sources.iter().flat_map(|s| s.raw_defs()).collect()
    }

    /// Starts the push feeds (each serving before this returns), then every
    /// source's poll loop from its checkpointed cursors, registering its
    /// secrets and showing it on the status page.
    pub(super) async fn start(
        self,
        checkpoint: &Checkpoint,
        secrets: &LiveSecrets,
        telemetry: &Telemetry,
        links: impl Fn() -> SourceLinks,
    ) -> Result<Vec<JoinHandle<()>>, RunError> {
        for source in &self.sources {
            for (key, secret) in source.secrets() {
                secrets.register(&key, &secret);
            }
        }
        for (name, start) in self.pushes {
            let links = links();
            start(links.outlet(&name), links.stop.clone())
                .await
                .map_err(|e| RunError::Config(e.to_string()))?;
        }
        let mut running = Vec::new();
        for source in self.sources {
            telemetry.source_added(source.name(), &source.tables());
            source.observe_latency(telemetry);
            running.push(source.start(checkpoint, self.once, links())?);
        }
        Ok(running)
    }
}

impl Register for Registry {
    fn once(&self) -> bool {
        self.once
    }

    fn add<S: Source>(&mut self, source: S) {
        self.sources.push(Box::new(source));
    }

    fn add_push<F, Fut>(&mut self, name: &str, start: F)
    where
        F: FnOnce(Outlet, watch::Receiver<bool>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), SourceError>> + Send + 'static,
    {
        let start: PushStart = Box::new(move |outlet, stop| Box::pin(start(outlet, stop)));
        self.pushes.push((name.to_string(), start));
    }
}

/// A registered [`Source`], its type erased until it starts.
trait Registered: Send {
    fn name(&self) -> &str;
    fn tables(&self) -> Vec<String>;
    fn raw_defs(&self) -> Vec<TableDef>;
    fn secrets(&self) -> Vec<(String, LiveSecret)>;
    /// Observes its requests' latency in `telemetry`'s per-source histogram.
    fn observe_latency(&self, telemetry: &Telemetry);
    /// Spawns its poll loop from its checkpointed cursors.
    fn start(
        self: Box<Self>,
        checkpoint: &Checkpoint,
        once: bool,
        links: SourceLinks,
    ) -> Result<JoinHandle<()>, CheckpointError>;
}

impl<S: Source> Registered for S {
    fn name(&self) -> &str {
        Source::name(self)
    }

    fn tables(&self) -> Vec<String> {
        Source::tables(self)
    }

    fn raw_defs(&self) -> Vec<TableDef> {
        Source::raw_defs(self)
    }

    fn secrets(&self) -> Vec<(String, LiveSecret)> {
        Source::secrets(self)
    }

    fn observe_latency(&self, telemetry: &Telemetry) {
        let family = &telemetry.metrics.source_request_seconds;
        let name = Source::name(self);
        Source::observe_latency(self, || {
            family.get_or_create_owned(&crate::status::label("source", name))
        });
    }

    fn start(
        mut self: Box<Self>,
        checkpoint: &Checkpoint,
        once: bool,
        links: SourceLinks,
    ) -> Result<JoinHandle<()>, CheckpointError> {
        self.restore(checkpoint.cursors(Source::name(&*self))?);
        Ok(tokio::spawn(drive(*self, once, links)))
    }
}
