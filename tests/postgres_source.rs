//! The PostgreSQL source against a real server: a throwaway cluster shared by
//! this binary (or `DATABASE_URL`), one database per test; the restart and
//! TLS tests start clusters of their own.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::pg::{self, ClusterOptions, PgCluster};
use govflow::config::Secret;
use govflow::sources::postgres::{
    ConnectSpec, PgBatch, PgCursors, PgError, PgRow, PgSource, PgValue, collect,
};
use govflow::sources::postgres::{PostgresConfig, PostgresTable};
use tokio::sync::mpsc;

fn table(name: &str, key: &[&str]) -> PostgresTable {
    PostgresTable {
        name: name.into(),
        key: key.iter().map(|k| k.to_string()).collect(),
        cursor: Some("updated_at".into()),
        columns: None,
        filter: None,
    }
}

fn config(url: &str, tables: Vec<PostgresTable>) -> PostgresConfig {
    let mut c = PostgresConfig::new(Secret::new(url), tables);
    c.connect_timeout = Duration::from_secs(5);
    c
}

async fn poll(source: &PgSource, cursors: &mut PgCursors) -> (Vec<PgRow>, Vec<String>) {
    let (tx, rx) = mpsc::channel(1024);
    let report = source.poll(cursors, &tx).await.expect("poll");
    drop(tx);
    let (rows, dead) = collect(rx).await;
    cursors.advance(&report.tables);
    (
        rows.into_iter().map(|(_, r)| r).collect(),
        dead.into_iter()
            .map(|d| format!("{} | {}", d.key, d.reason))
            .collect(),
    )
}

fn ids(rows: &[PgRow]) -> Vec<i64> {
    let mut ids: Vec<i64> = rows
        .iter()
        .map(|r| match r.key[0] {
            PgValue::Int(i) => i,
            ref other => panic!("key {other:?}"),
        })
        .collect();
    ids.sort();
    ids
}

const POINTS: &str = "CREATE TABLE point_transaction (
    id bigint PRIMARY KEY,
    customer_id bigint NOT NULL,
    points integer NOT NULL,
    reason text,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX ON point_transaction (updated_at, id);";

#[tokio::test]
async fn inserts_and_updates_appear_within_one_poll() {
    let server = pg::shared();
    let url = server.create_database("src_inserts_updates", "").await;
    let admin = server.admin("src_inserts_updates").await;
    admin.batch_execute(POINTS).await.unwrap();
    admin
        .batch_execute(
            "INSERT INTO point_transaction (id, customer_id, points, reason)
             VALUES (1, 10, 100, 'signup'), (2, 11, 5, NULL), (3, 10, -20, 'redeem')",
        )
        .await
        .unwrap();
    let source = PgSource::new(
        "wise",
        config(&url, vec![table("point_transaction", &["id"])]),
    )
    .unwrap();
    let mut cursors = PgCursors::default();
    let (rows, dead) = poll(&source, &mut cursors).await;
    assert!(dead.is_empty(), "{dead:?}");
    assert_eq!(ids(&rows), [1, 2, 3]);
    let one = rows.iter().find(|r| r.key == [PgValue::Int(1)]).unwrap();
    assert_eq!(
        one.values[..4],
        [
            PgValue::Int(1),
            PgValue::Int(10),
            PgValue::Int(100),
            PgValue::Text("signup".into())
        ]
    );
    assert!(matches!(one.values[4], PgValue::Timestamp(_)));
    let first_cursor = cursors.get("point_transaction").expect("cursor");

    admin
        .batch_execute("INSERT INTO point_transaction (id, customer_id, points) VALUES (4, 12, 7)")
        .await
        .unwrap();
    admin
        .batch_execute(
            "UPDATE point_transaction SET points = 6, reason = 'fixed', updated_at = clock_timestamp() WHERE id = 2",
        )
        .await
        .unwrap();
    let (rows, _) = poll(&source, &mut cursors).await;
    let latest: BTreeMap<i64, &PgRow> = rows
        .iter()
        .map(|r| (ids(std::slice::from_ref(r))[0], r))
        .collect();
    assert!(latest.contains_key(&4), "new row read");
    assert_eq!(latest[&2].values[2], PgValue::Int(6), "updated row read");
    assert_eq!(latest[&2].values[3], PgValue::Text("fixed".into()));
    assert!(cursors.get("point_transaction").unwrap() > first_cursor);
}

#[tokio::test]
async fn a_late_commit_inside_the_lookback_is_caught() {
    let server = pg::shared();
    let url = server.create_database("src_late_commit", "").await;
    let admin = server.admin("src_late_commit").await;
    admin.batch_execute(POINTS).await.unwrap();
    // A transaction that started earlier commits after a poll has moved the
    // cursor past its updated_at.
    let slow = server.admin("src_late_commit").await;
    slow.batch_execute(
        "BEGIN; INSERT INTO point_transaction (id, customer_id, points, updated_at)
         VALUES (100, 1, 1, now() - interval '10 minutes')",
    )
    .await
    .unwrap();
    admin
        .batch_execute(
            "INSERT INTO point_transaction (id, customer_id, points) VALUES (1, 1, 1), (2, 1, 1)",
        )
        .await
        .unwrap();
    let tables = vec![table("point_transaction", &["id"])];
    let with_lookback = PgSource::new("wise", config(&url, tables.clone())).unwrap();
    let mut no_lookback_config = config(&url, tables);
    no_lookback_config.lookback = Duration::ZERO;
    let no_lookback = PgSource::new("wise", no_lookback_config).unwrap();

    let mut cursors = PgCursors::default();
    let (rows, _) = poll(&with_lookback, &mut cursors).await;
    assert_eq!(ids(&rows), [1, 2]);
    let mut cursors_without = cursors.clone();
    slow.batch_execute("COMMIT").await.unwrap();

    let (rows, _) = poll(&with_lookback, &mut cursors).await;
    assert!(
        ids(&rows).contains(&100),
        "late row caught by the lookback: {:?}",
        ids(&rows)
    );
    // The same poll without a lookback misses it: the lookback is what catches it.
    let (rows, _) = poll(&no_lookback, &mut cursors_without).await;
    assert!(!ids(&rows).contains(&100), "{:?}", ids(&rows));
}

#[tokio::test]
async fn long_tables_are_paged_by_composite_keyset_without_loss_or_repeat() {
    let server = pg::shared();
    let url = server.create_database("src_paging", "").await;
    let admin = server.admin("src_paging").await;
    admin
        .batch_execute(
            "CREATE TABLE quotation_line (
                quotation_id integer, line smallint, amount numeric(12, 2),
                updated_at timestamptz NOT NULL, PRIMARY KEY (quotation_id, line));
             INSERT INTO quotation_line
             SELECT q, l, (q * 10 + l) / 100.0, now() - (q % 10) * interval '1 second'
             FROM generate_series(1, 100) q, generate_series(1, 10) l;",
        )
        .await
        .unwrap();
    let mut c = config(
        &url,
        vec![table("quotation_line", &["quotation_id", "line"])],
    );
    c.page_size = 7;
    let source = PgSource::new("commerce", c.clone()).unwrap();
    let (tx, rx) = mpsc::channel(1024);
    let pull = source
        .poll_table("quotation_line", None, &tx)
        .await
        .unwrap();
    drop(tx);
    let (rows, dead) = collect(rx).await;
    assert!(dead.is_empty());
    let keys: Vec<(PgValue, PgValue)> = rows
        .iter()
        .map(|(_, r)| (r.key[0].clone(), r.key[1].clone()))
        .collect();
    let unique: BTreeSet<String> = keys.iter().map(|k| format!("{k:?}")).collect();
    assert_eq!(keys.len(), 1000, "every row once");
    assert_eq!(unique.len(), 1000, "no row twice");
    assert_eq!(pull.pages, 1000 / 7 + 1);
    let amount = rows
        .iter()
        .find(|(_, r)| r.key == [PgValue::Int(3), PgValue::Int(4)])
        .map(|(_, r)| r.values[2].to_string());
    assert_eq!(amount.as_deref(), Some("0.34"));

    // Without a lookback the next poll starts at the newest cursor value,
    // inclusive: only the rows sharing it are read again.
    c.lookback = Duration::ZERO;
    let source = PgSource::new("commerce", c).unwrap();
    let (tx, rx) = mpsc::channel(1024);
    source
        .poll_table("quotation_line", pull.cursor, &tx)
        .await
        .unwrap();
    drop(tx);
    let (again, _) = collect(rx).await;
    assert_eq!(
        again.len(),
        100,
        "the 10 lines of the 10 quotations with the newest updated_at"
    );
}

#[tokio::test]
async fn undecodable_rows_are_dead_lettered_and_the_rest_kept() {
    let server = pg::shared();
    // SQL_ASCII stores any bytes, so text that is not UTF-8 can exist.
    let url = server
        .create_database(
            "src_dead_letters",
            "ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0",
        )
        .await;
    let admin = server.admin("src_dead_letters").await;
    admin
        .batch_execute(
            "CREATE TABLE wide (
                id bigint, amount numeric, note text, doc jsonb, flag boolean, day date,
                ratio double precision, uid uuid, span interval, tags integer[],
                updated_at timestamptz);
             INSERT INTO wide VALUES
              (1, 12.50, 'fine', '{\"a\": [1, 2]}', true, '2024-02-29', 0.25,
               'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1 day 2 hours', '{1,2}', now()),
              (NULL, 1, 'no key', NULL, NULL, NULL, NULL, NULL, NULL, NULL, now()),
              (3, 1e40, 'too big', NULL, NULL, NULL, NULL, NULL, NULL, NULL, now()),
              (4, 1, E'bad \\xff bytes', NULL, NULL, NULL, NULL, NULL, NULL, NULL, now()),
              (5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, now()),
              (6, 2, 'no cursor', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
        )
        .await
        .unwrap();
    let source = PgSource::new("wise", config(&url, vec![table("wide", &["id"])])).unwrap();
    let mut cursors = PgCursors::default();
    let (rows, dead) = poll(&source, &mut cursors).await;
    assert_eq!(
        ids(&rows),
        [1, 5],
        "good rows kept; the NULL-cursor row is not polled"
    );
    let mut dead = dead;
    dead.sort();
    assert_eq!(dead.len(), 3, "{dead:?}");
    assert!(
        dead[0].starts_with("id=3 | column amount: numeric overflow"),
        "{dead:?}"
    );
    assert!(
        dead[1].starts_with("id=4 | column note: invalid UTF-8 at byte 4"),
        "{dead:?}"
    );
    assert_eq!(dead[2], "id=NULL | key column id is NULL");

    let one = rows.iter().find(|r| r.key == [PgValue::Int(1)]).unwrap();
    let shown: Vec<String> = one.values[..10].iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "1",
            "12.50",
            "fine",
            "{\"a\": [1, 2]}",
            "true",
            "2024-02-29",
            "0.25",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "1 day 02:00:00",
            // Arrays are read as JSON documents.
            "[1,2]",
        ]
    );
    assert!(matches!(one.values[1], PgValue::Numeric(_)));
    assert!(matches!(one.values[3], PgValue::Json(_)));
    assert!(matches!(one.values[10], PgValue::Timestamp(_)));

    // A full snapshot reads every row, the NULL-cursor one included, by key.
    let (tx, rx) = mpsc::channel(64);
    let pull = source.full_snapshot("wide", &tx).await.unwrap();
    drop(tx);
    let (rows, dead) = collect(rx).await;
    let rows: Vec<PgRow> = rows.into_iter().map(|(_, r)| r).collect();
    assert_eq!(ids(&rows), [1, 5, 6]);
    assert_eq!(dead.len(), 3);
    assert_eq!(pull.dead_letters, 3);
}

#[tokio::test]
async fn configuration_mistakes_fail_at_once_naming_the_table() {
    let server = pg::shared();
    let url = server.create_database("src_mistakes", "").await;
    let admin = server.admin("src_mistakes").await;
    admin
        .batch_execute("CREATE TABLE t (id int, updated_at timestamptz, label text)")
        .await
        .unwrap();
    let cases = [
        (
            table("missing_table", &["id"]),
            "missing_table",
            Some("42P01"),
        ),
        (table("t", &["nope"]), "has no column \"nope\"", None),
        (
            PostgresTable {
                cursor: Some("label".into()),
                ..table("t", &["id"])
            },
            "cursor column \"label\" has type text",
            None,
        ),
    ];
    for (t, needle, code) in cases {
        let source = PgSource::new("wise", config(&url, vec![t.clone()])).unwrap();
        let (tx, _rx) = mpsc::channel::<PgBatch>(8);
        let started = std::time::Instant::now();
        let e = source.poll_table(&t.name, None, &tx).await.unwrap_err();
        assert!(!e.is_retryable(), "{e}");
        assert!(e.to_string().contains(needle), "{e}");
        assert!(e.to_string().contains(&t.name), "{e}");
        assert_eq!(e.code(), code);
        assert!(started.elapsed() < Duration::from_secs(2), "no retries");
    }
}

#[tokio::test]
async fn a_column_retyped_under_a_read_stops_it_until_the_change_is_followed() {
    let server = pg::shared();
    let url = server.create_database("src_retyped", "").await;
    let admin = server.admin("src_retyped").await;
    admin
        .batch_execute(
            "CREATE TABLE item (id int PRIMARY KEY, qty int, \
             updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
             INSERT INTO item (id, qty) VALUES (1, 6), (2, 7)",
        )
        .await
        .unwrap();
    let source = PgSource::new("shop", config(&url, vec![table("item", &["id"])])).unwrap();
    let (declared, _) = source.describe("item").await.expect("describe");
    assert_eq!(declared.columns[1].ty.describe(), "int64");
    // The statements prepared by `describe` now return another type.
    admin
        .batch_execute("ALTER TABLE item ALTER COLUMN qty TYPE numeric(30,2)")
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel::<PgBatch>(8);
    let e = source.poll_table("item", None, &tx).await.unwrap_err();
    drop(tx);
    assert!(matches!(e, PgError::SchemaChanged { .. }), "{e}");
    assert!(
        e.is_transient() && e.to_string().contains("table item"),
        "{e}"
    );
    assert!(
        collect(rx).await.0.is_empty(),
        "no row under the old columns"
    );
    // A new connection would prepare for the new columns: still refused
    // until the change is followed.
    let again = {
        let (tx, _rx) = mpsc::channel::<PgBatch>(8);
        source.poll_table("item", None, &tx).await.unwrap_err()
    };
    assert!(matches!(again, PgError::SchemaChanged { .. }), "{again}");

    assert!(source.schema_changed("item").await.expect("check"));
    let (evolved, _) = source.describe("item").await.expect("describe");
    assert_eq!(evolved.columns[1].ty.describe(), "decimal(30,2)");
    assert!(!source.schema_changed("item").await.expect("check"));
    let (tx, rx) = mpsc::channel::<PgBatch>(8);
    source.poll_table("item", None, &tx).await.expect("read");
    drop(tx);
    let (rows, dead) = collect(rx).await;
    assert!(dead.is_empty(), "{dead:?}");
    let qty: Vec<String> = rows.iter().map(|(_, r)| r.values[1].to_string()).collect();
    assert_eq!(qty, ["6.00", "7.00"]);
}

#[tokio::test]
async fn every_session_is_read_only() {
    let server = pg::shared();
    let url = server.create_database("src_read_only", "").await;
    let admin = server.admin("src_read_only").await;
    admin.batch_execute(POINTS).await.unwrap();
    let spec = ConnectSpec::parse("wise", &url, None, Duration::from_secs(5)).unwrap();
    let client = spec.connect().await.unwrap();
    let row = client
        .query_one("SHOW default_transaction_read_only", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "on");
    let e = client
        .batch_execute("INSERT INTO point_transaction (id, customer_id, points) VALUES (9, 9, 9)")
        .await
        .unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("25006"), "{e}");
    let n: i64 = admin
        .query_one("SELECT count(*) FROM point_transaction", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_mid_stream_loses_and_repeats_nothing() {
    let cluster = PgCluster::start(ClusterOptions::default());
    let server = cluster.server();
    let url = server.create_database("restart", "").await;
    let admin = server.admin("restart").await;
    admin.batch_execute(POINTS).await.unwrap();
    admin
        .batch_execute(
            "INSERT INTO point_transaction (id, customer_id, points, updated_at)
             SELECT i, i % 7, i, now() - interval '1 minute' + i * interval '1 millisecond'
             FROM generate_series(1, 2000) i",
        )
        .await
        .unwrap();
    drop(admin);
    let mut c = config(&url, vec![table("point_transaction", &["id"])]);
    c.page_size = 100;
    let source = std::sync::Arc::new(PgSource::new("wise", c).unwrap());
    // A small channel keeps the walk mid-stream while the consumer is slow.
    let (tx, mut rx) = mpsc::channel::<PgBatch>(1);
    let walker = {
        let source = source.clone();
        tokio::spawn(async move { source.poll_table("point_transaction", None, &tx).await })
    };
    let mut first_poll: Vec<i64> = Vec::new();
    let mut batches = 0;
    while let Some(batch) = rx.recv().await {
        first_poll.extend(ids(&batch.rows));
        batches += 1;
        if batches == 3 {
            cluster.stop_immediate();
            tokio::time::sleep(Duration::from_millis(500)).await;
            cluster.start_server();
            let admin = server.admin("restart").await;
            admin
                .batch_execute(
                    "INSERT INTO point_transaction (id, customer_id, points)
                     SELECT i, 1, 1 FROM generate_series(2001, 2500) i",
                )
                .await
                .unwrap();
        }
    }
    let pull = walker
        .await
        .unwrap()
        .expect("the walk survives the restart");
    assert!(source.connections() >= 2, "the walk reconnected: {pull:?}");
    let unique: BTreeSet<i64> = first_poll.iter().copied().collect();
    assert_eq!(unique.len(), first_poll.len(), "no row delivered twice");
    assert!(unique.len() >= 2000, "nothing lost: {}", unique.len());

    let mut cursors = PgCursors::default();
    cursors.advance(&[pull]);
    let (rows, _) = poll(&source, &mut cursors).await;
    let all: BTreeSet<i64> = unique.into_iter().chain(ids(&rows)).collect();
    assert_eq!(all, (1..=2500).collect::<BTreeSet<i64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_modes_behave_as_in_libpq() {
    let cluster = PgCluster::start(ClusterOptions { tls: true });
    let port = cluster.port();
    let ca = cluster.dir().join("ca.crt");
    let ssl_of = |url: String, ca_file: Option<std::path::PathBuf>| async move {
        let spec = ConnectSpec::parse("secure", &url, ca_file.as_deref(), Duration::from_secs(5))?;
        let client = spec.connect().await?;
        let row = client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .expect("pg_stat_ssl");
        Ok::<bool, PgError>(row.get(0))
    };
    let ip = |mode: &str| format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode={mode}");
    let name = |mode: &str| {
        format!("postgres://postgres@localhost:{port}/postgres?hostaddr=127.0.0.1&sslmode={mode}")
    };
    assert!(!ssl_of(ip("disable"), None).await.unwrap());
    assert!(ssl_of(ip("prefer"), None).await.unwrap());
    // require: encrypted, certificate not checked (no CA given).
    assert!(ssl_of(ip("require"), None).await.unwrap());
    // verify-full: chain and name; the URL's sslrootcert works like ca_file.
    assert!(ssl_of(name("verify-full"), Some(ca.clone())).await.unwrap());
    let with_root = format!("{}&sslrootcert={}", name("verify-full"), ca.display());
    assert!(ssl_of(with_root, None).await.unwrap());
    // verify-ca: chain only, so the IP (not in the certificate) is fine.
    assert!(ssl_of(ip("verify-ca"), Some(ca.clone())).await.unwrap());
    // Failures that retrying cannot fix.
    let wrong_root = cluster.dir().join("server.crt");
    for (url, ca_file, why) in [
        (ip("verify-full"), Some(ca.clone()), "name mismatch"),
        (name("verify-full"), None, "unknown issuer (public roots)"),
        (
            ip("require"),
            Some(wrong_root),
            "require with a root certificate checks the chain",
        ),
    ] {
        let e = ssl_of(url, ca_file).await.unwrap_err();
        assert!(!e.is_retryable(), "{why}: {e}");
        assert!(e.to_string().contains("certificate"), "{why}: {e}");
    }
}
