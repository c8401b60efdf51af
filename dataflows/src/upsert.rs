//! Arranging upserts: the entry point of every `raw_*` table.
//!
//! This is differential's `arrange_from_upsert` with the same contract — the
//! arrangement holds each key's latest value, the retraction of a replaced or
//! deleted value is emitted by the operator itself, and an upsert equal to the
//! current value emits nothing — re-implemented for throughput and for
//! last-write-wins within an epoch:
//!
//! - upserts are stashed in a `Vec` and sorted once per completed epoch range
//!   (differential's operator pushes each one, value included, through a
//!   binary heap and then a `BTreeMap`; alone it ran at ~0.4M upserts/s on two
//!   busy workers here, too slow for the initial-load target);
//! - the sort is stable, so of several upserts of a key at one epoch the last
//!   one received wins (differential's picks the greatest value). Arrival order
//!   is the order a worker sent them in; upserts of one key sent by different
//!   workers in the same epoch have no defined order.

use std::rc::Rc;

use differential_dataflow::operators::arrange::TraceAgent;
use differential_dataflow::operators::arrange::arrangement::Arranged;
use differential_dataflow::trace::cursor::cursor_list;
use differential_dataflow::trace::implementations::ValBuilder;
use differential_dataflow::trace::{Builder, Cursor, Description, Span, Trace, TraceReader};
use differential_dataflow::{ExchangeData, Hashable};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;
use timely::progress::{Antichain, Stamp};

use crate::ops::{Arr, Diff, Epoch, Spine, UpsertStream};

/// Updates handed to the batch builder at a time.
const CHUNK: usize = 1 << 12;

/// Arranges a stream of upserts `(key, Some(value) | None, epoch)` by key.
pub(crate) fn arrange_upserts<'s, V: ExchangeData>(
    stream: UpsertStream<'s, V>,
    name: &str,
) -> Arr<'s, V> {
    let mut reader: Option<TraceAgent<Spine<V>>> = None;
    let scope = stream.scope();
    let exchange = Exchange::new(|update: &(i64, Option<V>, Epoch)| update.0.hashed());

    let batches = {
        let reader = &mut reader;
        stream.unary_frontier(exchange, name, move |_capability, info| {
            let logger = scope
                .worker()
                .logger_for::<differential_dataflow::logging::DifferentialEventBuilder>(
                    "differential/arrange",
                )
                .map(Into::into);
            let activator = Some(scope.activator_for(Rc::clone(&info.address)));
            let trace = Spine::<V>::new(info.clone(), logger.clone(), activator);
            let (mut trace_reader, mut writer) = TraceAgent::new(trace, info, logger);
            *reader = Some(trace_reader.clone());

            // The least time of any stashed upsert, held to send its batch later.
            let mut capability: Option<Capability<Epoch>> = None;
            let mut stash: Vec<(i64, Option<V>, Epoch)> = Vec::new();
            let mut lower = Antichain::from_elem(0);
            let mut updates: Vec<((i64, V), Epoch, Diff)> = Vec::with_capacity(CHUNK);
            let mut times: Vec<(Epoch, Option<V>)> = Vec::new();

            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    if let Some(cap) = cap.retain_least(0)
                        && capability
                            .as_ref()
                            .is_none_or(|held| cap.time() < held.time())
                    {
                        capability = Some(cap);
                    }
                    stash.append(data);
                });

                let upper = frontier.frontier().to_owned();
                if lower == upper {
                    writer.exert();
                    return;
                }

                match capability.take() {
                    Some(cap) if !upper.less_equal(cap.time()) => {
                        // Upserts at times before `upper` are complete: take them out.
                        let mut ready = if stash.iter().all(|(_, _, t)| !upper.less_equal(t)) {
                            std::mem::take(&mut stash)
                        } else {
                            let (ready, rest) = std::mem::take(&mut stash)
                                .into_iter()
                                .partition(|(_, _, t)| !upper.less_equal(t));
                            stash = rest;
                            ready
                        };
                        // Stable: equal (key, time) pairs keep their arrival order.
                        ready.sort_by_key(|(key, _, time)| (*key, *time));

                        // A trace hands out all its batches through the empty frontier
                        // (differential's own upsert operator relies on it too).
                        let batches = trace_reader
                            .batches_through(Antichain::new().borrow())
                            .expect("a trace yields its batches through the empty frontier");
                        let (mut cursor, storage) = cursor_list(batches);
                        let mut builder = ValBuilder::<i64, V, Epoch, Diff>::default();
                        let mut ready = ready.into_iter().peekable();
                        while let Some((key, value, time)) = ready.next() {
                            // The last upsert per time, for this key, in time order.
                            times.clear();
                            times.push((time, value));
                            while let Some((_, value, time)) = ready.next_if(|(k, _, _)| *k == key)
                            {
                                match times.last_mut() {
                                    Some(last) if last.0 == time => last.1 = value,
                                    _ => times.push((time, value)),
                                }
                            }

                            // The key's current value in the arrangement.
                            let mut prior: Option<V> = None;
                            cursor.seek_key(&storage, &key);
                            if cursor.get_key(&storage) == Some(&key) {
                                while let Some(value) = cursor.get_val(&storage) {
                                    let mut count: Diff = 0;
                                    cursor.map_times(&storage, |_, diff| count += *diff);
                                    if count > 0 {
                                        prior = Some(value.clone());
                                    }
                                    cursor.step_val(&storage);
                                }
                            }

                            let start = updates.len();
                            let last = times.len() - 1;
                            for (index, (time, next)) in times.drain(..).enumerate() {
                                if prior == next {
                                    continue;
                                }
                                if let Some(old) = prior.take() {
                                    updates.push(((key, old), time, -1));
                                }
                                if let Some(new) = next {
                                    if index < last {
                                        prior = Some(new.clone());
                                    }
                                    updates.push(((key, new), time, 1));
                                }
                            }
                            // The builder wants (key, value, time) order.
                            updates[start..]
                                .sort_by(|(a, ta, _), (b, tb, _)| (&a.1, ta).cmp(&(&b.1, tb)));
                            if updates.len() >= CHUNK {
                                builder.push(&mut updates);
                            }
                        }
                        builder.push(&mut updates);

                        let description =
                            Description::new(lower.clone(), upper.clone(), Antichain::from_elem(0));
                        let batch = Span::new(description, builder.done().map(Rc::new));
                        writer.insert(batch.clone(), Stamp::from_elem(*cap.time()));
                        output.session(&cap).give(batch);

                        // Hold on for what remains stashed.
                        if let Some(least) = stash.iter().map(|(_, _, t)| *t).min() {
                            capability = Some(cap.delayed(&least));
                        }
                    }
                    held => {
                        capability = held;
                        writer.seal(upper.clone());
                    }
                }

                lower = upper;
                trace_reader.set_logical_compaction(lower.borrow());
                trace_reader.set_physical_compaction(lower.borrow());
                writer.exert();
            }
        })
    };

    match reader {
        Some(trace) => Arranged {
            stream: batches,
            trace,
        },
        // `unary_frontier` runs its constructor before returning.
        None => unreachable!("the upsert operator's constructor did not run"),
    }
}
