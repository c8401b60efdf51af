use super::*;
use crate::fixtures::{customer, line, order, product, variant};
use crate::records::Upsert;

/// Runs `epochs` through the dataflow with `specs`, returning the check rows
/// accumulated after each epoch.
fn run(specs: Vec<CheckSpec>, epochs: Vec<Vec<Upsert>>) -> Vec<Vec<CheckRow>> {
    timely::execute_directly(move |worker| {
        let mut input = crate::UpsertInput::new();
        let captured =
            worker.dataflow(|scope| crate::build(scope, &mut input).capture_with_checks(&specs));
        let mut state = CheckState::new(specs.clone());
        let mut after = Vec::new();
        for upserts in epochs.clone() {
            input.send_all(upserts);
            input.advance_to(input.epoch() + 1);
            worker.step_while(|| captured.probe.less_than(&input.epoch()));
            for e in captured.checks.take_before(input.epoch()) {
                state.apply(e.changes);
            }
            after.push(state.rows());
        }
        after
    })
}

fn fail(check: usize, key: i64, value: Value) -> CheckRow {
    CheckRow::Failing {
        check,
        key: RowKey::Id(key),
        value,
    }
}

#[test]
fn failures_appear_and_vanish_with_their_rows() {
    let specs = vec![
        CheckSpec::new(
            Table::DimCustomer,
            "email",
            CheckKind::Unique,
            Severity::Warn,
        ),
        CheckSpec::new(
            Table::FctOrder,
            "status",
            CheckKind::AcceptedValues {
                values: vec!["status 10".into()],
            },
            Severity::Error,
        ),
        CheckSpec::new(
            Table::FctOrder,
            "customer_id",
            CheckKind::Relationships {
                to_table: Table::DimCustomer,
                to_column: "customer_id".into(),
            },
            Severity::Warn,
        ),
        CheckSpec::new(
            Table::FctOrder,
            "customer_id",
            CheckKind::NotNull,
            Severity::Warn,
        ),
        CheckSpec::new(
            Table::FctOrder,
            "ordered_at",
            CheckKind::Freshness {
                max_age_micros: 100,
            },
            Severity::Warn,
        ),
    ];
    let got = run(
        specs.clone(),
        vec![
            vec![
                Upsert::Customer(1, Some(customer(1, "a@x"))),
                Upsert::Customer(2, Some(customer(2, "a@x"))),
                Upsert::Order(5, Some(order(5, 3, 11, 700, 30))),
                Upsert::Order(6, Some(order(6, 0, 10, 700, 40))),
            ],
            vec![
                Upsert::Customer(2, Some(customer(2, "b@x"))),
                Upsert::Customer(3, Some(customer(3, "c@x"))),
                Upsert::Order(5, Some(order(5, 3, 10, 700, 30))),
                Upsert::Order(6, None),
            ],
        ],
    );
    let text = |s: &str| Value::Text(s.into());
    assert_eq!(
        got[0],
        vec![
            fail(0, 1, text("a@x")),
            fail(0, 2, text("a@x")),
            fail(1, 5, text("status 11")),
            fail(2, 5, Value::Int(3)),
            fail(3, 6, Value::Null),
            CheckRow::Newest { check: 4, at: 40 },
        ]
    );
    assert_eq!(got[1], vec![CheckRow::Newest { check: 4, at: 30 }]);

    let mut state = CheckState::new(specs);
    state.apply(got[1].iter().map(|r| (r.clone(), 1)));
    let results = state.results(200);
    assert!(results[..4].iter().all(CheckResult::passed));
    assert_eq!((results[4].failing, results[4].newest), (1, Some(30)));
    assert!(state.results(120)[4].passed());
}

#[test]
fn results_count_and_sample_failing_keys() {
    let specs = vec![CheckSpec::new(
        Table::DimSku,
        "product_id",
        CheckKind::Relationships {
            to_table: Table::DimProduct,
            to_column: "product_id".into(),
        },
        Severity::Error,
    )];
    let mut state = CheckState::new(specs);
    state.apply((1..=8).map(|k| (fail(0, k, Value::Int(9)), 1)));
    state.apply([(fail(0, 8, Value::Int(9)), -1)]);
    let result = &state.results(0)[0];
    assert_eq!(result.failing, 7);
    assert_eq!(result.samples.len(), SAMPLE_KEYS);
    assert_eq!(result.samples[0], ("1".to_string(), "9".to_string()));
    assert_eq!(result.spec.name, "dim_sku.product_id.relationships");
}

#[test]
fn the_default_checks_pass_on_consistent_data() {
    let specs = default_checks();
    let got = run(
        specs.clone(),
        vec![vec![
            Upsert::Customer(1, Some(customer(1, "a@x"))),
            Upsert::Product(1, Some(product(1))),
            Upsert::Variant(10, Some(variant(10, 1, 5))),
            Upsert::Order(5, Some(order(5, 1, 10, 700, 30))),
            Upsert::OrderItems(5, Some(vec![line(51, 5, 1)])),
        ]],
    );
    // fct_order.status of the fixture ("status 10") is not a BigCommerce status.
    assert_eq!(got[0], vec![fail(0, 5, Value::Text("status 10".into()))]);
    let rows = crate::oracle::compute(&{
        let mut s = crate::oracle::RawState::default();
        s.apply(Upsert::Customer(1, Some(customer(1, "a@x"))));
        s.apply(Upsert::Product(1, Some(product(1))));
        s.apply(Upsert::Variant(10, Some(variant(10, 1, 5))));
        s.apply(Upsert::Order(5, Some(order(5, 1, 10, 700, 30))));
        s.apply(Upsert::OrderItems(5, Some(vec![line(51, 5, 1)])));
        s
    });
    assert_eq!(evaluate(&rows, &specs), got[0]);
}

#[test]
fn a_schema_check_fails_while_its_table_misfits_and_leaves_other_checks_alone() {
    let no_email = CheckKind::AcceptedValues { values: Vec::new() };
    let emails = CheckSpec::new(Table::DimCustomer, "email", no_email, Severity::Warn);
    // The schema check first: the row check keeps its index (1) in the rows.
    let specs = vec![CheckSpec::schema("raw_pg_shop_item"), emails];
    assert_eq!(specs[0].name, "raw_pg_shop_item.columns.schema");
    assert_eq!(specs[0].builtin_table(), None);
    let c = customer(1, "x@example.com");
    let rows = run(specs.clone(), vec![vec![Upsert::Customer(1, Some(c))]]);
    assert!(!rows[0].is_empty(), "no email is accepted");
    assert!(
        rows[0]
            .iter()
            .all(|r| matches!(r, CheckRow::Failing { check: 1, .. }))
    );

    let mut state = CheckState::new(specs);
    let schema = |state: &CheckState| state.results(0)[0].clone();
    assert!(schema(&state).passed());
    state.schema_checked("raw_pg_shop_item", Some("qty: decimal(30,2) → text".into()));
    let failing = schema(&state);
    assert_eq!(failing.failing, 1);
    assert_eq!(failing.samples[0].1, "qty: decimal(30,2) → text");
    state.schema_checked("other_table", None);
    assert!(!schema(&state).passed());
    state.schema_checked("raw_pg_shop_item", None);
    assert!(schema(&state).passed());
}
