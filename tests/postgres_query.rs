//! `govflow query` against a real server: write attempts are refused by the
//! parser with a clear error and leave the database unchanged; PostgreSQL
//! refuses them too when the parser is bypassed; results print as a table,
//! CSV, JSON and Parquet.

mod common;

use std::process::Command;
use std::time::Duration;

use common::pg;
use govflow::config::Secret;
use govflow::sources::postgres::ConnectSpec;
use govflow::sources::postgres::PostgresConfig;
use govflow::sources::postgres::query::{self, QueryError};

const SETUP: &str = "
CREATE TABLE point_transaction (
    id bigint PRIMARY KEY, customer_id bigint NOT NULL, points integer NOT NULL,
    amount numeric(10, 2), reason text, updated_at timestamptz NOT NULL);
CREATE SEQUENCE ticket;
CREATE PROCEDURE touch() LANGUAGE sql AS $$ UPDATE point_transaction SET points = 0 $$;
INSERT INTO point_transaction VALUES
  (1, 10, 100, 12.50, 'signup, \"welcome\"', '2024-05-01 09:00:00+00'),
  (2, 11, -20, NULL, NULL, '2024-05-02 10:30:00.5+00');";

/// Everything that could change: rows, tables, the sequence.
async fn fingerprint(admin: &tokio_postgres::Client) -> String {
    let rows = admin
        .query(
            "SELECT (SELECT string_agg(t::text, ';' ORDER BY id) FROM point_transaction t),
                    (SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class
                      WHERE relnamespace = 'public'::regnamespace),
                    (SELECT last_value::text || is_called::text FROM ticket)",
            &[],
        )
        .await
        .unwrap();
    format!(
        "{:?} {:?} {:?}",
        rows[0].get::<_, Option<String>>(0),
        rows[0].get::<_, Option<String>>(1),
        rows[0].get::<_, Option<String>>(2)
    )
}

#[tokio::test]
async fn write_attempts_are_rejected_and_the_database_is_unchanged() {
    let server = pg::shared();
    let url = server.create_database("query_rejects", "").await;
    let admin = server.admin("query_rejects").await;
    admin.batch_execute(SETUP).await.unwrap();
    let before = fingerprint(&admin).await;
    let config = PostgresConfig::new(Secret::new(url), vec![]);
    let cases = [
        (
            "INSERT INTO point_transaction VALUES (3, 1, 1, 1, 'x', now())",
            "INSERT",
        ),
        ("UPDATE point_transaction SET points = 0", "UPDATE"),
        ("DELETE FROM point_transaction", "DELETE"),
        (
            "MERGE INTO point_transaction t USING point_transaction s ON t.id = s.id WHEN MATCHED THEN DELETE",
            "MERGE",
        ),
        ("TRUNCATE point_transaction", "TRUNCATE"),
        ("DROP TABLE point_transaction", "DROP TABLE"),
        ("CREATE TABLE x (a int)", "CREATE TABLE"),
        (
            "ALTER TABLE point_transaction ADD COLUMN y int",
            "ALTER TABLE",
        ),
        ("CREATE INDEX ON point_transaction (points)", "CREATE INDEX"),
        ("GRANT SELECT ON point_transaction TO PUBLIC", "GRANT"),
        ("SELECT 1; DELETE FROM point_transaction", "2 statements"),
        ("SELECT 1;DROP TABLE point_transaction;", "2 statements"),
        ("SELECT * FROM point_transaction; SELECT 1", "2 statements"),
        (
            "WITH gone AS (DELETE FROM point_transaction RETURNING id) SELECT * FROM gone",
            "DELETE",
        ),
        (
            "WITH n AS (INSERT INTO point_transaction VALUES (3, 1, 1, 1, 'x', now()) RETURNING id) SELECT id FROM n",
            "INSERT",
        ),
        (
            "WITH u AS (UPDATE point_transaction SET points = 0 RETURNING id) SELECT 1",
            "UPDATE",
        ),
        (
            "SELECT * FROM point_transaction FOR UPDATE",
            "locking clause",
        ),
        (
            "SELECT * FROM point_transaction FOR SHARE",
            "locking clause",
        ),
        (
            "SELECT * FROM (SELECT * FROM point_transaction FOR UPDATE) s",
            "locking clause",
        ),
        (
            "SELECT * INTO copy_of_points FROM point_transaction",
            "INTO",
        ),
        ("COPY point_transaction TO STDOUT", "COPY"),
        ("COPY point_transaction FROM STDIN", "COPY"),
        ("COPY (SELECT 1) TO '/tmp/govflow-out'", "COPY"),
        ("CALL touch()", "CALL"),
        (
            "DO $$ BEGIN DELETE FROM point_transaction; END $$",
            "does not parse",
        ),
        ("EXPLAIN ANALYZE DELETE FROM point_transaction", "ANALYZE"),
        (
            "EXPLAIN (ANALYZE true) UPDATE point_transaction SET points = 0",
            "ANALYZE",
        ),
        ("EXPLAIN DELETE FROM point_transaction", "DELETE"),
        ("SET default_transaction_read_only = off", "SET"),
        ("BEGIN READ WRITE", "BEGIN"),
        ("VACUUM point_transaction", ""),
        // Comments and case tricks.
        ("/* SELECT */ DELETE FROM point_transaction", "DELETE"),
        ("-- SELECT\nDELETE FROM point_transaction", "DELETE"),
        (
            "SELECT 1 -- harmless\n; DROP TABLE point_transaction",
            "2 statements",
        ),
        ("sElEcT 1;/**/dElEtE fRoM point_transaction", "2 statements"),
        ("  dRoP   tAbLe   point_transaction  ", "DROP TABLE"),
        (
            "SELECT 1 /* ; */; uPdAtE point_transaction SET points = 0",
            "2 statements",
        ),
        ("", "no statement"),
    ];
    for (sql, found) in cases {
        match query::run("wise", &config, sql).await {
            Err(QueryError::Rejected(e)) => {
                assert!(e.found.contains(found), "{sql:?}: {e}");
                assert!(
                    e.to_string()
                        .starts_with("only a single read-only statement is accepted"),
                    "{e}"
                );
            }
            Err(other) => panic!("{sql:?} reached the database: {other}"),
            Ok(_) => panic!("{sql:?} was accepted"),
        }
    }
    assert_eq!(
        fingerprint(&admin).await,
        before,
        "the database is unchanged"
    );
    // Tricks inside literals and comments do not make a read a write.
    let ok = query::run(
        "wise",
        &config,
        "SELECT 'DELETE FROM x; DROP TABLE y' AS s -- ; DROP TABLE z",
    )
    .await
    .expect("a read with tricky text");
    assert_eq!(ok.rows.len(), 1);
}

#[tokio::test]
async fn postgres_refuses_writes_even_when_the_parser_is_bypassed() {
    let server = pg::shared();
    let url = server.create_database("query_bypass", "").await;
    let admin = server.admin("query_bypass").await;
    admin.batch_execute(SETUP).await.unwrap();
    let before = fingerprint(&admin).await;
    let spec = ConnectSpec::parse("wise", &url, None, Duration::from_secs(5)).unwrap();
    let client = spec.connect().await.unwrap();
    for sql in [
        "INSERT INTO point_transaction VALUES (3, 1, 1, 1, 'x', now())",
        "UPDATE point_transaction SET points = 0",
        "DELETE FROM point_transaction",
        "TRUNCATE point_transaction",
        "CREATE TABLE x (a int)",
        "DROP TABLE point_transaction",
        "WITH gone AS (DELETE FROM point_transaction RETURNING id) SELECT * FROM gone",
        "SELECT * FROM point_transaction FOR UPDATE",
        "SELECT nextval('ticket')",
        "SELECT * INTO copy_of_points FROM point_transaction",
        "CALL touch()",
    ] {
        let e = query::execute(&client, "wise", sql, false)
            .await
            .expect_err(sql);
        assert_eq!(e.code(), Some("25006"), "{sql}: {e}");
        assert!(e.to_string().contains("read-only transaction"), "{e}");
    }
    // A session cannot turn the guard off for the statement it runs in.
    let e = query::execute(
        &client,
        "wise",
        "SELECT set_config('transaction_read_only', 'off', false)",
        false,
    )
    .await
    .expect_err("set_config");
    assert_eq!(e.code(), Some("25001"), "{e}");
    assert_eq!(
        fingerprint(&admin).await,
        before,
        "the database is unchanged"
    );
    // The same connection still reads.
    let r = query::execute(
        &client,
        "wise",
        "SELECT count(*) FROM point_transaction",
        true,
    )
    .await
    .unwrap();
    assert_eq!(r.rows[0][0].to_string(), "2");
}

fn govflow(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_govflow"))
        .args(args)
        .env("GOVFLOW_LOG", "warn")
        .output()
        .expect("govflow runs")
}

#[tokio::test]
async fn the_query_command_prints_a_table_csv_json_and_parquet() {
    let server = pg::shared();
    let url = server.create_database("query_cli", "").await;
    let admin = server.admin("query_cli").await;
    admin.batch_execute(SETUP).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("govflow.toml");
    std::fs::write(
        &config,
        "[postgres.wise]\nurl = \"${GOVFLOW_TEST_WISE_URL}\"\n"
            .replace("${GOVFLOW_TEST_WISE_URL}", &url),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let sql = "SELECT id, amount, reason, updated_at, interval '90 minutes' AS span \
               FROM point_transaction ORDER BY id";
    let run = |format: &str, extra: &[&str]| {
        let mut args = vec![
            "query", "--db", "wise", "--config", config, "--format", format,
        ];
        args.extend_from_slice(extra);
        args.push(sql);
        let out = govflow(&args);
        assert!(
            out.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let table = run("table", &[]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0],
        "id | amount | reason            | updated_at                  | span"
    );
    assert_eq!(
        lines[2],
        "1  | 12.50  | signup, \"welcome\" | 2024-05-01 09:00:00.000000Z | 01:30:00"
    );
    assert_eq!(lines[4], "(2 rows)");

    assert_eq!(
        run("csv", &[]),
        "id,amount,reason,updated_at,span\r\n\
         1,12.50,\"signup, \"\"welcome\"\"\",2024-05-01 09:00:00.000000Z,01:30:00\r\n\
         2,,,2024-05-02 10:30:00.500000Z,01:30:00\r\n"
    );

    let json: serde_json::Value = serde_json::from_str(&run("json", &[])).unwrap();
    assert_eq!(json[0]["id"], 1);
    assert_eq!(json[0]["amount"].to_string(), "12.5");
    assert_eq!(json[0]["reason"], "signup, \"welcome\"");
    assert_eq!(json[1]["amount"], serde_json::Value::Null);
    assert_eq!(json[1]["span"], "01:30:00");

    let parquet = dir.path().join("out.parquet");
    run("parquet", &["--output", parquet.to_str().unwrap()]);
    let file = std::fs::File::open(&parquet).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
    let schema = batches[0].schema();
    let types: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "Int64",
            "Decimal128(38, 2)",
            "Utf8",
            "Timestamp(µs, \"UTC\")",
            "Utf8"
        ]
    );

    // A write is refused with a clear message and exit status 2.
    let out = govflow(&[
        "query",
        "--db",
        "wise",
        "--config",
        config,
        "DELETE FROM point_transaction",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("only a single read-only statement is accepted"),
        "{stderr}"
    );
    assert!(stderr.contains("DELETE statement"), "{stderr}");
    // An unknown database name says which ones exist.
    let out = govflow(&["query", "--db", "nope", "--config", config, "SELECT 1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("configured: wise"));
    // A database error exits 1 and names the database, not the URL.
    let out = govflow(&[
        "query",
        "--db",
        "wise",
        "--config",
        config,
        "SELECT * FROM missing",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("postgres.wise") && stderr.contains("42P01"),
        "{stderr}"
    );
    assert!(!stderr.contains("postgres://"), "{stderr}");
}
