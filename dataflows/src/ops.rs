//! Shared dataflow vocabulary: time and diff types, arrangement aliases, and
//! the few operators the models are written with.

use std::rc::Rc;

use differential_dataflow::operators::arrange::TraceAgent;
use differential_dataflow::operators::arrange::arrangement::Arranged;
use differential_dataflow::trace::implementations::ValSpine;
use differential_dataflow::{Data, VecCollection};
use timely::dataflow::StreamVec;

/// Logical time: the epoch the runtime advances all inputs to together.
pub type Epoch = u64;

/// Multiplicity of an update: `+1` inserts a row, `-1` retracts it.
pub type Diff = isize;

/// The trace type of every arrangement here: keyed by an `i64` id.
pub type Spine<V> = ValSpine<i64, V, Epoch, Diff>;

/// An arrangement keyed by an `i64` id, shareable between models (`.clone()` it).
pub type Arr<'s, V> = Arranged<'s, TraceAgent<Spine<V>>>;

/// The trace type of arrangements keyed by text (e.g. a normalized email).
pub type StrSpine<V> = ValSpine<String, V, Epoch, Diff>;

/// An arrangement keyed by a `String`, shareable between models.
pub type ArrByStr<'s, V> = Arranged<'s, TraceAgent<StrSpine<V>>>;

/// A collection of rows changing over epochs.
pub type Coll<'s, D> = VecCollection<'s, Epoch, D, Diff>;

/// A stream of upserts `(key, Some(value) | None, epoch)`.
pub type UpsertStream<'s, V> = StreamVec<'s, Epoch, (i64, Option<V>, Epoch)>;

/// Left outer join of two arrangements with the same key, where **both**
/// hold at most one value per key (true of upsert arrangements and reduce
/// outputs; see [`left_join_stateless`] for a left side with several values
/// per key).
///
/// The output is `f(k, l, Some(r))` for keys present on both sides and
/// `f(k, l, None)` for keys only on the left.
///
/// Matches come from a join of the two arrangements. Keys without a match are
/// found as the left's keys minus the matched keys, arranged: that arrangement
/// consolidates in its batcher, so it only ever holds the keys currently
/// without a match (8 bytes of key plus time and diff each), and `f(k, l,
/// None)` is only built for those. (The stateless alternative, `Σ f(l, None)`
/// plus `f(l, Some(r)) - f(l, None)` per match, builds and then cancels two
/// extra rows per matched key: costly at initial load for wide rows.)
pub(crate) fn left_join<'s, V1, V2, D, I, F>(
    left: Arr<'s, V1>,
    right: Arr<'s, V2>,
    f: F,
) -> Coll<'s, D>
where
    V1: Data,
    V2: Data,
    D: Data,
    I: IntoIterator<Item = D> + 'static,
    F: Fn(&i64, &V1, Option<&V2>) -> I + 'static,
{
    let f = Rc::new(f);
    let matched = {
        let f = Rc::clone(&f);
        left.clone()
            .join_core(right.clone(), move |k, l, r| f(k, l, Some(r)))
    };
    let matched_keys = left.clone().join_core(right, |k, _, _| Some(*k));
    let unmatched_keys = left
        .clone()
        .flat_map_ref(|k, _| Some(*k))
        .concat(matched_keys.negate())
        .arrange_by_self_named("UnmatchedKeys");
    let unmatched = unmatched_keys.join_core(left, move |k, _, l| f(k, l, None));
    matched.concat(unmatched)
}

/// Left outer join like [`left_join`], for a `left` with any number of values
/// per key (`right` still holds at most one), and without state.
///
/// Computed as `Σ f(k, l, None)` over the left plus, for each match,
/// `f(k, l, Some(r)) - f(k, l, None)`: it builds and cancels two rows per
/// match, so use it where `f` is cheap (e.g. error rows that exist only
/// without a match).
pub(crate) fn left_join_stateless<'s, V1, V2, D, I, F>(
    left: Arr<'s, V1>,
    right: Arr<'s, V2>,
    f: F,
) -> Coll<'s, D>
where
    V1: Data,
    V2: Data,
    D: Data,
    I: IntoIterator<Item = D> + 'static,
    F: Fn(&i64, &V1, Option<&V2>) -> I + 'static,
{
    let f = Rc::new(f);
    let unmatched = {
        let f = Rc::clone(&f);
        left.clone().flat_map_ref(move |k, l| f(k, l, None))
    };
    let corrections = left
        .join_core(right, move |k, l, r| {
            let matched = f(k, l, Some(r)).into_iter().map(|d| (d, 1 as Diff));
            let unmatched = f(k, l, None).into_iter().map(|d| (d, -1 as Diff));
            matched.chain(unmatched)
        })
        .explode(Some);
    unmatched.concat(corrections)
}
