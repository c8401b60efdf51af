//! Flushing spooled epochs into BigQuery, one table at a time.
//!
//! For a table and the epochs `first..=last` not flushed yet:
//! 1. the flush is recorded as in flight (so a replay uses the same ids);
//! 2. the epochs' net changes (per key the newest row, or a tombstone) are
//!    written as one Parquet file and uploaded to `gs://BUCKET/PREFIX/...`;
//! 3. a fresh staging table (with an expiry) is created and the file loaded
//!    into it by a load job whose id is derived from the table and epochs;
//! 4. a `MERGE` job applies the staging rows to the target by key: newer
//!    rows update or insert, tombstones delete, and a row never replaces one
//!    with a higher `_epoch` (so a replayed epoch changes nothing);
//! 5. the table is recorded as flushed through `last`; then the staging table,
//!    the object and the spooled files are removed.
//!
//! A crash at any point replays from step 1 with the same job ids: a job
//! that already succeeded is reused, not run again. Loads go to fresh staging
//! tables, so the target table's daily modification quota only counts the
//! MERGEs (DML does not count against it), and one table has at most one
//! MERGE running (flushes of one table never overlap).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Instant;

use arrow_array::RecordBatch;
use futures::StreamExt;
use gcp_bigquery_client::model::job_configuration::JobConfiguration;
use gcp_bigquery_client::model::job_configuration_load::JobConfigurationLoad;
use gcp_bigquery_client::model::job_configuration_query::JobConfigurationQuery;
use gcp_bigquery_client::model::table::Table;
use gcp_bigquery_client::model::table_reference::TableReference;
use gcp_bigquery_client::model::table_schema::TableSchema;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::client::{Client, Inserted};
use super::error::BigQueryError;
use super::schema;
use super::spool::{FlushState, Spool, TableState};
use crate::format::{DELETED, EPOCH, TableSpec};
use crate::sinks::bigquery::BigQueryConfig;

/// Figures of flushes, for logs, tests and benchmarks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlushStats {
    /// Table flushes that loaded and merged rows.
    pub table_flushes: u64,
    /// Rows (upserts and tombstones) loaded.
    pub rows: u64,
    /// Load jobs started.
    pub load_jobs: u64,
    /// MERGE jobs started.
    pub merge_jobs: u64,
    /// Jobs of an earlier attempt found done and reused (replays).
    pub reused_jobs: u64,
    /// Parquet bytes uploaded.
    pub bytes: u64,
}

impl FlushStats {
    /// Every BigQuery job started.
    pub fn jobs(&self) -> u64 {
        self.load_jobs + self.merge_jobs
    }

    fn add(&mut self, other: &FlushStats) {
        self.table_flushes += other.table_flushes;
        self.rows += other.rows;
        self.load_jobs += other.load_jobs;
        self.merge_jobs += other.merge_jobs;
        self.reused_jobs += other.reused_jobs;
        self.bytes += other.bytes;
    }
}

/// What one round did.
#[derive(Clone, Debug, Default)]
pub struct RoundReport {
    /// Figures of the round.
    pub stats: FlushStats,
    /// Tables that still have spooled epochs (deferred by the per-table
    /// interval, or failed with a retryable error).
    pub pending: BTreeSet<String>,
    /// The first retryable error of the round, if any.
    pub retryable: Option<BigQueryError>,
}

/// Flushes spooled epochs to BigQuery.
#[derive(Debug)]
pub struct Flusher {
    client: Client,
    config: BigQueryConfig,
    spool: Spool,
    state: Mutex<FlushState>,
    /// Tables whose target exists with the columns of this schema.
    ready: Mutex<BTreeMap<String, arrow_schema::SchemaRef>>,
    last_load: Mutex<BTreeMap<String, Instant>>,
    stats: Mutex<FlushStats>,
}

impl Flusher {
    /// A flusher of `spool`'s epochs into the configured dataset.
    pub async fn new(config: &BigQueryConfig, spool: Spool) -> Result<Flusher, BigQueryError> {
        let state = spool.load_state()?;
        Ok(Flusher {
            client: Client::new(config).await?,
            config: config.clone(),
            spool,
            state: Mutex::new(state),
            ready: Mutex::new(BTreeMap::new()),
            last_load: Mutex::new(BTreeMap::new()),
            stats: Mutex::new(FlushStats::default()),
        })
    }

    /// The client (for queries in tests and tools).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Totals since the flusher started.
    pub fn stats(&self) -> FlushStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The current flush state.
    pub fn state(&self) -> FlushState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Epoch each table is flushed through (0: none).
    pub fn flushed(&self, table: &str) -> u64 {
        self.state().tables.get(table).map_or(0, |t| t.flushed)
    }

    /// Creates the dataset if it is missing.
    pub async fn prepare(&self) -> Result<(), BigQueryError> {
        self.client.ensure_dataset(&self.config.dataset).await
    }

    /// One round: every table with spooled epochs up to `committed` is
    /// flushed, unless it was loaded less than `min_table_interval` ago
    /// (then, with `wait`, the round waits for it; without, it is left for
    /// the next round). A permanent error of a table is returned at once
    /// (naming the table and epochs); retryable ones are in the report.
    pub async fn round(&self, committed: u64, wait: bool) -> Result<RoundReport, BigQueryError> {
        let mut plans = Vec::new();
        let mut report = RoundReport::default();
        for table in self.spool.specs().keys() {
            let st = self.state().tables.get(table).cloned().unwrap_or_default();
            let epochs: Vec<u64> = self
                .spool
                .epochs(table)?
                .into_iter()
                .filter(|e| *e > st.flushed && *e <= committed)
                .collect();
            let Some(&newest) = epochs.last() else {
                continue;
            };
            let last = st.inflight.filter(|i| *i > st.flushed).unwrap_or(newest);
            let due = self.next_allowed(table);
            if !wait && due.is_some_and(|d| d > Instant::now()) {
                report.pending.insert(table.clone());
                continue;
            }
            plans.push((table.clone(), st.flushed + 1, last, due, newest > last));
        }
        let mut results = futures::stream::iter(plans.into_iter().map(
            |(table, first, last, due, more)| async move {
                if let Some(due) = due {
                    tokio::time::sleep_until(due.into()).await;
                }
                let result = self.flush_table(&table, first, last).await;
                (table, first, last, more, result)
            },
        ))
        .buffer_unordered(self.config.parallel_tables.max(1));
        let mut permanent = None;
        while let Some((table, first, last, more, result)) = results.next().await {
            match result {
                Ok(stats) => {
                    report.stats.add(&stats);
                    if more {
                        report.pending.insert(table);
                    }
                }
                Err(source) => {
                    let error = BigQueryError::Flush {
                        table: table.clone(),
                        first,
                        last,
                        source: Box::new(source),
                    };
                    report.pending.insert(table);
                    if error.is_retryable() {
                        tracing::warn!(%error, "bigquery: flush failed; the epochs stay spooled and are retried");
                        report.retryable.get_or_insert(error);
                    } else {
                        tracing::error!(%error, "bigquery: flush failed permanently; the epochs stay spooled");
                        permanent.get_or_insert(error);
                    }
                }
            }
        }
        match permanent {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Flushes every spooled epoch up to `committed`, waiting out the
    /// per-table interval, in as many rounds as needed; fails on the first
    /// error (retryable ones after the client's own retries).
    pub async fn flush_all(&self, committed: u64) -> Result<FlushStats, BigQueryError> {
        let mut stats = FlushStats::default();
        loop {
            let report = self.round(committed, true).await?;
            stats.add(&report.stats);
            if let Some(e) = report.retryable {
                return Err(e);
            }
            if report.pending.is_empty() {
                return Ok(stats);
            }
        }
    }

    fn next_allowed(&self, table: &str) -> Option<Instant> {
        let last = self.last_load.lock().ok()?.get(table).copied()?;
        Some(last + self.config.min_table_interval)
    }

    fn set_state(
        &self,
        table: &str,
        update: impl FnOnce(&mut TableState),
    ) -> Result<(), BigQueryError> {
        let snapshot = {
            let mut state = self.state.lock().map_err(|_| BigQueryError::Spool {
                path: self.spool.dir().display().to_string(),
                detail: "flush state lock poisoned".into(),
            })?;
            update(state.tables.entry(table.to_string()).or_default());
            state.clone()
        };
        self.spool.store_state(&snapshot)
    }

    /// Flushes `table`'s epochs `first..=last` (see the module doc).
    async fn flush_table(
        &self,
        table: &str,
        first: u64,
        last: u64,
    ) -> Result<FlushStats, BigQueryError> {
        let started = Instant::now();
        let spec = self
            .spool
            .specs()
            .get(table)
            .cloned()
            .ok_or_else(|| BigQueryError::Schema {
                table: table.to_string(),
                detail: "not a table of this warehouse".into(),
            })?;
        self.set_state(table, |s| s.inflight = Some(last))?;
        let mut stats = FlushStats::default();
        let dataset = self.config.dataset.clone();
        let generation = self.state().generation;
        let names = Names::new(&self.config, &generation, table, first, last);
        if let Some(batch) = self.spool.read(table, first, last)? {
            self.ensure_target(&spec).await?;
            let bytes = parquet_bytes(table, &batch)?;
            stats.rows = batch.num_rows() as u64;
            stats.bytes = bytes.len() as u64;
            self.client.upload(&names.object, bytes).await?;
            let expires = chrono::Utc::now().timestamp_millis()
                + self.config.staging_expiration.as_millis() as i64;
            let mut staging = Table::new(
                &self.config.project,
                &dataset,
                &names.staging,
                TableSchema::new(schema::staging_fields(&spec)?),
            );
            staging.expiration_time = Some(expires.to_string());
            staging.description = Some(format!(
                "govflow staging of {table}, epochs {first}..={last}"
            ));
            let created = self.client.insert_table(staging).await?;
            let load = JobConfiguration {
                load: Some(JobConfigurationLoad {
                    source_uris: Some(vec![format!(
                        "gs://{}/{}",
                        self.client.bucket(),
                        names.object
                    )]),
                    source_format: Some("PARQUET".into()),
                    destination_table: Some(TableReference::new(
                        &self.config.project,
                        &dataset,
                        &names.staging,
                    )),
                    write_disposition: Some("WRITE_TRUNCATE".into()),
                    create_disposition: Some("CREATE_NEVER".into()),
                    ..JobConfigurationLoad::default()
                }),
                ..JobConfiguration::default()
            };
            // A load found done can only be reused if the staging table it
            // filled is still there (not re-created empty just now).
            self.run_job(&names.job("load"), load, !created, &mut stats, Kind::Load)
                .await?;
            let merge = JobConfiguration {
                query: Some(JobConfigurationQuery {
                    query: merge_sql(&self.config.project, &dataset, &spec, &names.staging)?,
                    use_legacy_sql: Some(false),
                    ..JobConfigurationQuery::default()
                }),
                ..JobConfiguration::default()
            };
            self.run_job(&names.job("merge"), merge, true, &mut stats, Kind::Merge)
                .await?;
            stats.table_flushes = 1;
        }
        self.set_state(table, |s| {
            s.flushed = last;
            s.inflight = None;
        })?;
        if let Ok(mut l) = self.last_load.lock() {
            l.insert(table.to_string(), Instant::now());
        }
        // Cleanup: the epochs are safe in BigQuery now.
        self.spool.remove_through(table, last)?;
        if stats.table_flushes > 0 {
            if let Err(error) = self.client.delete_table(&dataset, &names.staging).await {
                tracing::warn!(table, %error, "bigquery: staging table not removed (it expires by itself)");
            }
            if let Err(error) = self.client.delete_object(&names.object).await {
                tracing::warn!(table, %error, "bigquery: uploaded file not removed");
            }
        }
        if let Ok(mut s) = self.stats.lock() {
            s.add(&stats);
        }
        tracing::info!(
            table,
            first,
            last,
            rows = stats.rows,
            jobs = stats.jobs(),
            reused = stats.reused_jobs,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "bigquery: flushed"
        );
        Ok(stats)
    }

    /// Runs a job with id `{base}_{attempt}`: a job of an earlier attempt that
    /// is done and succeeded is reused when `reuse` allows; one that failed
    /// with a retryable error is followed by a new attempt.
    async fn run_job(
        &self,
        base: &str,
        configuration: JobConfiguration,
        reuse: bool,
        stats: &mut FlushStats,
        kind: Kind,
    ) -> Result<(), BigQueryError> {
        let mut last_error = None;
        for attempt in 0..self.config.max_attempts {
            let job_id = format!("{base}_{attempt}");
            let inserted = self
                .client
                .insert_job(&job_id, configuration.clone())
                .await?;
            if matches!(inserted, Inserted::Exists) && !reuse {
                continue;
            }
            let job = self.client.wait_job(&job_id).await?;
            match (job.error(), &inserted) {
                (None, Inserted::Created) => {
                    match kind {
                        Kind::Load => stats.load_jobs += 1,
                        Kind::Merge => stats.merge_jobs += 1,
                    }
                    if let Some(rows) = job.dml_rows() {
                        tracing::debug!(job_id, rows, "bigquery: merged");
                    }
                    return Ok(());
                }
                (None, Inserted::Exists) => {
                    tracing::info!(job_id, "bigquery: replay: the job is already done");
                    stats.reused_jobs += 1;
                    return Ok(());
                }
                (Some(error), _) if error.is_retryable() => {
                    if matches!(inserted, Inserted::Created) {
                        match kind {
                            Kind::Load => stats.load_jobs += 1,
                            Kind::Merge => stats.merge_jobs += 1,
                        }
                    }
                    tracing::warn!(%error, "bigquery: job failed; trying a new attempt");
                    tokio::time::sleep(self.config.retry_backoff).await;
                    last_error = Some(error);
                }
                (Some(error), Inserted::Created) => return Err(error),
                // An earlier attempt failed for good: try again (the cause may be fixed).
                (Some(_), Inserted::Exists) => {}
            }
        }
        Err(last_error.unwrap_or_else(|| BigQueryError::Job {
            job_id: format!("{base}_*"),
            reason: None,
            message: format!("no attempt succeeded in {}", self.config.max_attempts),
            retryable: true,
        }))
    }

    /// Creates the target table, or adds the columns it lacks, once per process.
    async fn ensure_target(&self, spec: &TableSpec) -> Result<(), BigQueryError> {
        if self
            .ready
            .lock()
            .is_ok_and(|r| r.get(&spec.name) == Some(&spec.schema))
        {
            return Ok(());
        }
        let dataset = &self.config.dataset;
        match self.client.get_table(dataset, &spec.name).await? {
            None => {
                let resource = schema::target_resource(&self.config.project, dataset, spec)?;
                self.client.insert_table(resource).await?;
                tracing::info!(table = %spec.name, "bigquery: target table created");
            }
            Some(resource) => {
                let fields = resource.schema.fields.unwrap_or_default();
                let evolution = schema::evolve(spec, &fields)?;
                if !evolution.unused.is_empty() {
                    tracing::warn!(table = %spec.name, columns = ?evolution.unused, "bigquery: columns govflow no longer writes are left alone");
                }
                for (column, ty) in &evolution.widened {
                    let sql = format!(
                        "ALTER TABLE `{}.{dataset}.{}` ALTER COLUMN `{column}` SET DATA TYPE {ty}",
                        self.config.project, spec.name
                    );
                    self.client.query(&sql).await?;
                    tracing::info!(table = %spec.name, %column, %ty, "bigquery: column type widened");
                }
                if let Some(fields) = evolution.patched_fields {
                    self.client
                        .patch_schema(dataset, &spec.name, fields)
                        .await?;
                    tracing::info!(table = %spec.name, added = ?evolution.added, "bigquery: columns added");
                }
            }
        }
        if let Ok(mut r) = self.ready.lock() {
            r.insert(spec.name.clone(), spec.schema.clone());
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Load,
    Merge,
}

/// The deterministic names of one flush.
struct Names {
    /// Job id prefix: `govflow_{generation}_{dataset}_{table}_{first}_{last}`.
    base: String,
    /// The staging table.
    staging: String,
    /// The GCS object.
    object: String,
}

impl Names {
    fn new(config: &BigQueryConfig, generation: &str, table: &str, first: u64, last: u64) -> Names {
        let object = format!(
            "{}/{}/{table}/{generation}-{first:020}-{last:020}.parquet",
            config.prefix, config.dataset
        );
        Names {
            base: format!(
                "govflow_{generation}_{}_{table}_{first}_{last}",
                config.dataset
            ),
            staging: format!("{table}__govflow_stage_{generation}_{first}_{last}"),
            object: object.trim_start_matches('/').to_string(),
        }
    }

    fn job(&self, step: &str) -> String {
        format!("{}_{step}", self.base)
    }
}

/// A batch as Parquet bytes (the spool's file schema: columns, `_epoch`, `_deleted`).
fn parquet_bytes(table: &str, batch: &RecordBatch) -> Result<Vec<u8>, BigQueryError> {
    let err = |e: parquet::errors::ParquetError| BigQueryError::Schema {
        table: table.to_string(),
        detail: format!("parquet: {e}"),
    };
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props)).map_err(err)?;
    writer.write(batch).map_err(err)?;
    writer.into_inner().map_err(err)
}

/// Quotes an identifier for standard SQL.
fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', ""))
}

/// The MERGE of a staging table into `spec`'s target table.
pub fn merge_sql(
    project: &str,
    dataset: &str,
    spec: &TableSpec,
    staging: &str,
) -> Result<String, BigQueryError> {
    let columns: Vec<String> = spec
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    if !columns.iter().any(|c| c == EPOCH) || !columns.iter().any(|c| c == &spec.key) {
        return Err(BigQueryError::Schema {
            table: spec.name.clone(),
            detail: format!("needs the key {} and {EPOCH}", spec.key),
        });
    }
    let key = ident(&spec.key);
    let set: Vec<String> = columns
        .iter()
        .filter(|c| **c != spec.key)
        .map(|c| format!("{} = S.{}", ident(c), ident(c)))
        .collect();
    let list: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    let values: Vec<String> = columns.iter().map(|c| format!("S.{}", ident(c))).collect();
    let newer = format!("(T.{e} IS NULL OR S.{e} >= T.{e})", e = ident(EPOCH));
    let deleted = ident(DELETED);
    Ok(format!(
        "MERGE {target} AS T\nUSING {source} AS S\nON T.{key} = S.{key}\n\
         WHEN MATCHED AND S.{deleted} AND {newer} THEN DELETE\n\
         WHEN MATCHED AND NOT S.{deleted} AND {newer} THEN UPDATE SET {set}\n\
         WHEN NOT MATCHED AND NOT S.{deleted} THEN INSERT ({list}) VALUES ({values})",
        target = ident(&format!("{project}.{dataset}.{}", spec.name)),
        source = ident(&format!("{project}.{dataset}.{staging}")),
        set = set.join(", "),
        list = list.join(", "),
        values = values.join(", "),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::table_spec;
    use dataflows::Table;

    #[test]
    fn the_merge_guards_on_the_epoch_and_applies_tombstones() {
        let sql = merge_sql(
            "p",
            "d",
            &table_spec(Table::DimSku),
            "dim_sku__govflow_stage_x_1_2",
        )
        .unwrap();
        assert!(sql.starts_with("MERGE `p.d.dim_sku` AS T\nUSING `p.d.dim_sku__govflow_stage_x_1_2` AS S\nON T.`sku_id` = S.`sku_id`"), "{sql}");
        assert!(sql.contains("WHEN MATCHED AND S.`_deleted` AND (T.`_epoch` IS NULL OR S.`_epoch` >= T.`_epoch`) THEN DELETE"));
        assert!(sql.contains("WHEN NOT MATCHED AND NOT S.`_deleted` THEN INSERT"));
        assert!(!sql.contains("SET `sku_id`"), "the key is not updated");
    }
}
