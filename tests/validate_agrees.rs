//! `govflow validate` and `govflow run` accept and refuse the same
//! configurations: a table of good and bad configs, each tried with
//! `validate` (offline), `validate --connect` and `run --once`. What offline
//! validation refuses, run refuses; what needs the sources to tell (a missing
//! table or column, an unknown endpoint), `validate --connect` refuses
//! exactly when run does.

mod common;

use std::path::Path;
use std::process::Command;

use common::{pg, start_sim, store};

const SCHEMA: &str = "
CREATE TABLE coupon (code text NOT NULL, region int NOT NULL, label text, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (code, region));
INSERT INTO coupon (code, region, label) VALUES ('A', 1, 'a');
";

/// Exit success of `govflow <args>` with `config`.
fn govflow(config: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_govflow"));
    cmd.args(["--log", "warn"])
        .args(args)
        .arg("--config")
        .arg(config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("govflow runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The report of `govflow validate --connect --format json` with `config`.
fn connected_report(config: &Path, env: &[(&str, &str)]) -> serde_json::Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_govflow"));
    cmd.args(["--log", "warn", "validate", "--connect", "--format", "json"])
        .arg("--config")
        .arg(config)
        .envs(env.iter().copied());
    let out = cmd.output().expect("govflow runs");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON report ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_and_run_agree() {
    let server = pg::shared();
    let url = server.create_database("validate_agrees", "").await;
    server
        .admin("validate_agrees")
        .await
        .batch_execute(SCHEMA)
        .await
        .unwrap();
    let options = store(5, 5, 5, 5);
    let sim = start_sim(options.clone()).await;
    let bigcommerce = format!(
        "[bigcommerce]\nbase_url = \"{}\"\nstore_hash = \"{}\"\naccess_token = \"{}\"\n",
        sim.base_url(),
        options.store_hash,
        options.access_token
    );
    let pg_table = |extra: &str| {
        format!("[postgres.shop]\nurl = \"${{SHOP_URL}}\"\n[[postgres.shop.tables]]\n{extra}\n")
    };
    // (case, config body, offline validate accepts, sources accept)
    let cases: Vec<(&str, String, bool, bool)> = vec![
        (
            "a configured table",
            pg_table("name = \"coupon\"\nkey = [\"code\", \"region\"]"),
            true,
            true,
        ),
        (
            "a collection",
            format!(
                "{bigcommerce}[[bigcommerce.collections]]\nname = \"brands\"\npath = \"/v3/catalog/brands\"\n"
            ),
            true,
            true,
        ),
        ("no source", String::new(), false, false),
        (
            "a database without tables",
            "[postgres.shop]\nurl = \"${SHOP_URL}\"\n".into(),
            false,
            false,
        ),
        (
            "a filter that is two statements",
            pg_table("name = \"coupon\"\nkey = [\"code\"]\nwhere = \"true; DELETE FROM coupon\""),
            false,
            false,
        ),
        (
            "a collection path with a query",
            format!(
                "{bigcommerce}[[bigcommerce.collections]]\nname = \"b\"\npath = \"/v3/catalog/brands?x=1\"\n"
            ),
            false,
            false,
        ),
        (
            "a missing table",
            pg_table("name = \"nope\"\nkey = [\"id\"]"),
            true,
            false,
        ),
        (
            "a missing column",
            pg_table("name = \"coupon\"\nkey = [\"code\", \"region\"]\ncolumns = [\"nope\"]"),
            true,
            false,
        ),
        (
            "a text cursor",
            pg_table("name = \"coupon\"\nkey = [\"code\", \"region\"]\ncursor = \"label\""),
            true,
            false,
        ),
        (
            "an unknown endpoint",
            format!(
                "{bigcommerce}[[bigcommerce.collections]]\nname = \"nope\"\npath = \"/v3/nope\"\n"
            ),
            true,
            false,
        ),
    ];
    for (case, body, offline, sources) in cases {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("govflow.toml");
        let text = format!(
            "{body}\n[warehouse]\ndir = \"{}\"\n[state]\ndir = \"{}\"\n",
            dir.path().join("warehouse").display(),
            dir.path().join("state").display()
        );
        std::fs::write(&config, text).unwrap();
        let env = [("SHOP_URL", url.as_str())];
        let (validated, why) = govflow(&config, &["validate"], &env);
        assert_eq!(validated, offline, "{case}: validate: {why}");
        let (connected, why) = govflow(&config, &["validate", "--connect"], &env);
        assert_eq!(
            connected,
            offline && sources,
            "{case}: validate --connect: {why}"
        );
        let report = connected_report(&config, &env);
        assert_eq!(report["ok"], connected, "{case}: the JSON report: {report}");
        if case == "a configured table" {
            let table = &report["configured_tables"][0];
            assert_eq!(table["name"], "raw_pg_shop_coupon", "{report}");
            assert_eq!(table["key"], serde_json::json!(["code", "region"]));
            let label = table["columns"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["name"] == "label"))
                .unwrap_or_else(|| panic!("no label column: {report}"));
            assert_eq!(label["type"], "text", "{report}");
            assert_eq!(label["nullable"], true, "{report}");
        }
        let (ran, why) = govflow(&config, &["run", "--once"], &env);
        assert_eq!(
            ran, connected,
            "{case}: run --once disagrees with validate --connect: {why}"
        );
    }
    sim.shutdown().await;
}
