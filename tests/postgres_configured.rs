//! Any PostgreSQL table by configuration alone: tables no model reads land as
//! `raw_pg_<db>_<table>` with the columns and types discovered from the
//! database, through `govflow run` as a user runs it (a config file, the
//! binary, no Rust). Composite keys, a filter, a column selection, arrays and
//! JSON; a table without a cursor is read whole at every poll, so its deletes
//! show up without a full refresh; a table with a cursor loses its deleted
//! rows at the next full refresh; and the result equals a fresh full refresh
//! into an empty warehouse.

mod common;

use std::path::Path;

use common::{duckdb, pg};

const SCHEMA: &str = "
CREATE TABLE coupon (
    code text NOT NULL,
    region int NOT NULL,
    amount numeric(12,2),
    ratio double precision,
    valid_until date,
    rules jsonb,
    tags text[],
    token uuid,
    active boolean NOT NULL DEFAULT true,
    secret text,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (code, region)
);
CREATE TABLE tag (id bigint PRIMARY KEY, label text NOT NULL, hidden boolean NOT NULL DEFAULT false);
INSERT INTO coupon (code, region, amount, ratio, valid_until, rules, tags, token, secret) VALUES
    ('WELCOME', 1, 10.50, 0.25, '2027-01-31', '{\"min\": 3}', '{a,b}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 's1'),
    ('WELCOME', 2, 12.00, NULL, NULL, NULL, NULL, NULL, 's2'),
    ('SPRING', 1, 99999.99, 1.5, '2027-03-01', '[1, 2]', '{}', NULL, 's3');
INSERT INTO tag (id, label, hidden) VALUES (1, 'red', false), (2, 'blue', false), (3, 'secret', true);
";

/// The config a user writes: nothing but TOML.
fn write_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("govflow.toml");
    let project = dir.join("transformer");
    let text = format!(
        r#"[dbt]
project_dir = "{project}"
profiles_dir = "{project}"
marts_db = "{marts}"
work_dir = "{work}"

[warehouse]
kind = "local"
dir = "{warehouse}"

[state]
dir = "{state}"

[postgres.shop]
url = "${{SHOP_URL}}"
poll_interval = "200ms"

[[postgres.shop.tables]]
name = "coupon"
key = ["code", "region"]
columns = ["amount", "ratio", "valid_until", "rules", "tags", "token", "active"]

[[postgres.shop.tables]]
name = "public.tag"
key = ["id"]
where = "NOT hidden"
"#,
        warehouse = dir.join("warehouse").display(),
        state = dir.join("state").display(),
        project = project.display(),
        marts = dir.join("marts.duckdb").display(),
        work = dir.join("dbt").display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

const COUPONS: &str = "SELECT _key, code, region, amount, ratio, valid_until, rules, tags, token, active FROM raw_pg_shop_coupon ORDER BY code, region";
const TAGS: &str = "SELECT id, label FROM raw_pg_shop_tag ORDER BY id";
const TYPES: &str =
    "SELECT column_name, column_type FROM (DESCRIBE raw_pg_shop_coupon) ORDER BY column_name";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_tables_land_with_their_discovered_types() {
    let server = pg::shared();
    let url = server.create_database("configured_tables", "").await;
    let admin = server.admin("configured_tables").await;
    admin.batch_execute(SCHEMA).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());

    common::govflow_once(&config, &[("SHOP_URL", &url)], false);
    let [coupons, tags, types] =
        <[Vec<String>; 3]>::try_from(duckdb(dir.path(), &[COUPONS, TAGS, TYPES])).unwrap();
    assert_eq!(
        coupons,
        [
            "[\"SPRING\",1]|SPRING|1|99999.99|1.5|2027-03-01|[1, 2]|[]|NULL|True",
            "[\"WELCOME\",1]|WELCOME|1|10.50|0.25|2027-01-31|{\"min\": 3}|[\"a\",\"b\"]|a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|True",
            "[\"WELCOME\",2]|WELCOME|2|12.00|NULL|NULL|NULL|NULL|NULL|True",
        ]
    );
    // The filter keeps hidden tags out.
    assert_eq!(tags, ["1|red", "2|blue"]);
    // Types from the catalog; `secret` was not selected.
    assert_eq!(
        types,
        [
            "_epoch|BIGINT",
            "_key|VARCHAR",
            "active|BOOLEAN",
            "amount|DECIMAL(12,2)",
            "code|VARCHAR",
            "ratio|DOUBLE",
            "region|BIGINT",
            "rules|VARCHAR",
            "tags|VARCHAR",
            "token|VARCHAR",
            "updated_at|TIMESTAMP WITH TIME ZONE",
            "valid_until|DATE",
        ]
    );

    // Upstream changes: an update and an insert (seen by the cursor), a
    // delete of a coupon (not seen until a full refresh), and in the table
    // without a cursor an insert, an update and a delete (all seen at once).
    admin
        .batch_execute(
            "UPDATE coupon SET amount = 11.25, updated_at = clock_timestamp() WHERE code = 'WELCOME' AND region = 2;
             INSERT INTO coupon (code, region, amount) VALUES ('SUMMER', 3, 5);
             DELETE FROM coupon WHERE code = 'SPRING';
             INSERT INTO tag (id, label) VALUES (4, 'green');
             UPDATE tag SET label = 'navy' WHERE id = 2;
             DELETE FROM tag WHERE id = 1;",
        )
        .await
        .unwrap();
    common::govflow_once(&config, &[("SHOP_URL", &url)], false);
    let [coupons, tags] = <[Vec<String>; 2]>::try_from(duckdb(
        dir.path(),
        &[
            "SELECT code, region, amount FROM raw_pg_shop_coupon ORDER BY code, region",
            TAGS,
        ],
    ))
    .unwrap();
    assert_eq!(
        coupons,
        [
            "SPRING|1|99999.99",
            "SUMMER|3|5.00",
            "WELCOME|1|10.50",
            "WELCOME|2|11.25"
        ]
    );
    assert_eq!(tags, ["2|navy", "4|green"]);

    // An unchanged re-read writes nothing: the committed epoch stays.
    let before = common::committed_epoch(dir.path());
    common::govflow_once(&config, &[("SHOP_URL", &url)], false);
    assert_eq!(common::committed_epoch(dir.path()), before);

    // A full refresh finds the deleted coupon.
    common::govflow_once(&config, &[("SHOP_URL", &url)], true);
    let [coupons] = <[Vec<String>; 1]>::try_from(duckdb(
        dir.path(),
        &["SELECT code, region FROM raw_pg_shop_coupon ORDER BY code, region"],
    ))
    .unwrap();
    assert_eq!(coupons, ["SUMMER|3", "WELCOME|1", "WELCOME|2"]);

    // Equal to a fresh full refresh into an empty warehouse.
    let fresh = tempfile::tempdir().unwrap();
    let fresh_config = write_config(fresh.path());
    common::govflow_once(&fresh_config, &[("SHOP_URL", &url)], true);
    let all = [
        "SELECT * EXCLUDE (_epoch) FROM raw_pg_shop_coupon ORDER BY ALL",
        "SELECT * EXCLUDE (_epoch) FROM raw_pg_shop_tag ORDER BY ALL",
    ];
    assert_eq!(duckdb(dir.path(), &all), duckdb(fresh.path(), &all));

    // dbt sees every raw table with its columns: a mart over the new table is SQL only.
    let sources = govflow(&config, &url, &["dbt", "sources"]);
    assert!(sources.contains("- name: raw_pg_shop_coupon"), "{sources}");
    assert!(
        sources.contains("data_type: \"DECIMAL(12,2)\""),
        "{sources}"
    );
    let project = dir.path().join("transformer");
    copy_dir(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/transformer")),
        &project,
    );
    std::fs::write(
        project.join("models/marts/mart_coupon_by_region.sql"),
        "select region, count(*) as coupons, sum(amount) as amount\n\
         from {{ source('govflow_raw', 'raw_pg_shop_coupon') }}\ngroup by region",
    )
    .unwrap();
    govflow(&config, &url, &["dbt", "build"]);
    let marts = std::process::Command::new(common::python())
        .args([
            "-c",
            "import sys, duckdb; print(duckdb.connect(sys.argv[1], read_only=True).sql('SELECT * FROM mart_coupon_by_region ORDER BY region').fetchall())",
        ])
        .arg(dir.path().join("marts.duckdb"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&marts.stdout).trim(),
        "[(1, 1, Decimal('10.50')), (2, 1, Decimal('11.25')), (3, 1, Decimal('5.00'))]",
        "{}",
        String::from_utf8_lossy(&marts.stderr)
    );
}

/// `govflow <args> --config <config>`, which must succeed; its stdout.
fn govflow(config: &Path, url: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_govflow"))
        .env("SHOP_URL", url)
        .args(["--log", "warn"])
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("govflow runs");
    assert!(
        out.status.success(),
        "govflow {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Copies a directory tree (the dbt project) without its build output.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" || name == "logs" {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(&name));
        } else {
            std::fs::copy(&path, to.join(&name)).unwrap();
        }
    }
}
