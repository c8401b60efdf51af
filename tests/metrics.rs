//! The metrics contract (docs/metrics.md) end to end over real HTTP: every
//! measure, recomputed here from the simulator's truth (`GET /_sim/truth`, read
//! as plain JSON, none of govflow's code), agrees with the warehouse the
//! pipeline built; dirty data (`"dirty": true`) makes every `_errors` reason the
//! BigCommerce API can produce and every documented fallback fire, exactly as
//! documented, and a check on `_errors` reacts.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::contract::*;
use common::*;
use dataflows::checks::{CheckKind, CheckSpec, Severity};
use dataflows::{Table, TableRow};
use govflow::checks::ChecksFile;
use govflow::settings::Config;
use govflow_sim::{DIRTY_KINDS, MutateRequest, SimOptions, SimServer};

fn config(sim: &SimServer, options: &SimOptions, dir: &Path) -> Config {
    let mut checks = dataflows::checks::default_checks();
    // Any `_errors` row fails it: the dirty data must make it fail.
    checks.push(CheckSpec::new(
        Table::Errors,
        "reason",
        CheckKind::AcceptedValues { values: Vec::new() },
        Severity::Error,
    ));
    Config {
        checks,
        ..local_config(sim, options, dir)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_measure_agrees_with_the_simulators_truth() {
    let options = store(43, 300, 80, 800);
    let sim = start_sim(options.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sim, &options, dir.path());
    run_once(&config, false, 2).await;
    assert_measures(&Truth::fetch(&sim).await, &tables(dir.path()));
    for _ in 0..2 {
        sim.mutate(MutateRequest {
            count: 200,
            kinds: None,
            dirty: false,
        })
        .unwrap();
        run_once(&config, false, 2).await;
    }
    // Deletes upstream are reconciled by a full refresh.
    run_once(&config, true, 2).await;
    let truth = Truth::fetch(&sim).await;
    let tables = tables(dir.path());
    assert_measures(&truth, &tables);
    // Clean data: no sale price above its price, no `_errors`.
    assert_eq!(rows(&tables, Table::Errors), &[] as &[TableRow]);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dirty_data_fires_every_error_reason_and_fallback_as_documented() {
    let options = store(47, 200, 50, 400);
    let sim = start_sim(options.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sim, &options, dir.path());
    run_once(&config, false, 2).await;
    assert_eq!(rows(&tables(dir.path()), Table::Errors), &[] as &[TableRow]);
    let checks = ChecksFile::load(&dir.path().join("state")).unwrap();
    let errors_check = |results: &[dataflows::checks::CheckResult]| {
        results
            .iter()
            .find(|r| r.spec.name == "_errors.reason.accepted_values")
            .map(|r| r.failing)
    };
    assert_eq!(
        errors_check(&checks.results_at(chrono::Utc::now())),
        Some(0)
    );

    // Two turns of every dirty kind, then the pipeline (a full refresh sees deletes).
    let report = sim
        .mutate(MutateRequest {
            count: 2 * DIRTY_KINDS.len(),
            kinds: None,
            dirty: true,
        })
        .unwrap();
    for kind in DIRTY_KINDS {
        assert_eq!(report.applied.get(kind), Some(&2), "{:?}", report.applied);
    }
    run_once(&config, false, 2).await;
    run_once(&config, true, 2).await;
    let truth = Truth::fetch(&sim).await;
    let tables = tables(dir.path());

    // `_errors` is exactly what the documented rules call for.
    let got: BTreeSet<(String, i64, String)> = rows(&tables, Table::Errors)
        .iter()
        .filter_map(|r| match r {
            TableRow::Errors(e) => Some((
                e.table.name().to_string(),
                e.key,
                e.reason.as_str().to_string(),
            )),
            _ => None,
        })
        .collect();
    let want = expected_errors(&truth);
    assert_eq!(got, want);
    let reasons: BTreeSet<(&str, &str)> = got
        .iter()
        .map(|(t, _, r)| (t.as_str(), r.as_str()))
        .collect();
    for fired in [
        ("raw_bc_variant", "negative_inventory"),
        ("raw_bc_inventory", "negative_inventory"),
        ("raw_bc_order_item", "non_positive_quantity"),
        ("raw_bc_customer_metafield", "malformed_subscription"),
        ("raw_bc_product", "sale_above_price"),
        ("raw_bc_variant", "unknown_product"),
        ("raw_bc_inventory", "unknown_variant"),
    ] {
        assert!(reasons.contains(&fired), "{fired:?} in {reasons:?}");
    }

    // The fallbacks fired: an inventory item overriding its variant, a variant
    // without one, empty names; their values are checked with every measure.
    let items: BTreeMap<i64, i64> = truth
        .of("inventory_item")
        .iter()
        .map(|i| {
            let available = i["locations"][0]["available_to_sell"].as_i64().unwrap();
            (int(&i["identity"], "variant_id"), available)
        })
        .collect();
    let variants = truth.of("variant");
    assert!(
        variants.iter().any(|v| items
            .get(&int(v, "id"))
            .is_some_and(|a| *a != int(v, "inventory_level").max(0))),
        "an inventory item disagrees with its variant"
    );
    assert!(
        variants.iter().any(|v| !items.contains_key(&int(v, "id"))),
        "a variant without an inventory item"
    );
    let nameless: Vec<&TableRow> = rows(&tables, Table::DimCustomer)
        .iter()
        .filter(|r| matches!(r, TableRow::DimCustomer(c) if c.full_name.is_empty()))
        .collect();
    let empty_in_truth = truth
        .of("customer")
        .iter()
        .filter(|c| c["first_name"] == "" && c["last_name"] == "")
        .count();
    assert!(empty_in_truth > 0);
    assert_eq!(nameless.len(), empty_in_truth);
    // Lines with quantity 0 are out of the facts.
    let zero: BTreeSet<i64> = truth
        .of("order_item")
        .iter()
        .filter(|l| int(l, "quantity") == 0)
        .map(|l| int(l, "id"))
        .collect();
    assert!(!zero.is_empty());
    assert!(
        rows(&tables, Table::FctOrderItem)
            .iter()
            .all(|r| !matches!(r, TableRow::FctOrderItem(i) if zero.contains(&i.order_item_id)))
    );
    assert_measures(&truth, &tables);

    // The check on `_errors` fails with one row per error.
    let checks = ChecksFile::load(&dir.path().join("state")).unwrap();
    assert_eq!(
        errors_check(&checks.results_at(chrono::Utc::now())),
        Some(want.len() as u64)
    );
    sim.shutdown().await;
}
