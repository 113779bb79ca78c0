//! Properties of `LogRows` (`rows.rs`), the per-event rows kept without their log
//! positions: whatever the gaps between positions (rolled-back transactions) and the
//! removals (erasures), it answers as a map from position to row would, and read back
//! from its parts it is what it was.
//!
//! `PROPTEST_CASES` runs more cases than proptest's default of 256.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::Config;
use unavoce_core::rows::{LogRows, Rows};

/// What happens to the rows: a row pushed after a gap, or positions removed.
#[derive(Debug, Clone)]
enum Step {
    /// A row at the position `gap` after the last one pushed (0: the same position
    /// again, which is ignored).
    Push { gap: i64 },
    /// The positions whose offsets from the first pushed are in the list, removed.
    Remove(Vec<i64>),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        8 => prop_oneof![Just(1i64), Just(1), Just(1), 0i64..4, 1i64..1_000]
            .prop_map(|gap| Step::Push { gap }),
        1 => proptest::collection::vec(0i64..300, 0..12).prop_map(Step::Remove),
    ];
    proptest::collection::vec(step, 0..200)
}

proptest! {
    // Cases: `PROPTEST_CASES`, else proptest's 256.
    #![proptest_config(Config { failure_persistence: None, ..Config::default() })]

    #[test]
    fn log_rows_answer_as_a_map_of_positions(start in -5i64..1_000_000, steps in steps()) {
        let mut rows = LogRows::<[i64; 2]>::default();
        let mut model: BTreeMap<i64, [i64; 2]> = BTreeMap::new();
        let mut last = start - 1;
        for step in steps {
            match step {
                Step::Push { gap } => {
                    let seq = last + gap;
                    let row = [seq, seq.wrapping_mul(7)];
                    let pushed = rows.push(seq, row);
                    let fresh = model.keys().next_back().is_none_or(|&k| k < seq);
                    prop_assert_eq!(pushed, fresh, "position {}", seq);
                    if fresh {
                        model.insert(seq, row);
                    }
                    last = last.max(seq);
                }
                Step::Remove(offsets) => {
                    let mut doomed: Vec<i64> = offsets.iter().map(|o| start + o).collect();
                    doomed.sort_unstable();
                    doomed.dedup();
                    rows.remove_keys(&doomed);
                    for seq in doomed {
                        model.remove(&seq);
                    }
                }
            }
            prop_assert_eq!(rows.len(), model.len());
            prop_assert_eq!(rows.last_seq(), model.keys().next_back().copied());
        }
        let listed: Vec<(i64, [i64; 2])> = rows.iter().map(|(seq, row)| (seq, *row)).collect();
        let expected: Vec<(i64, [i64; 2])> = model.iter().map(|(k, v)| (*k, *v)).collect();
        prop_assert_eq!(&listed, &expected);
        for (i, (seq, row)) in expected.iter().enumerate() {
            prop_assert_eq!(rows.position(*seq), Some(i));
            prop_assert_eq!(rows.seq_at(i), Some(*seq));
            prop_assert_eq!(rows.get(*seq), Some(row));
        }
        let near = model.keys().flat_map(|k| [k - 1, k + 1]);
        for probe in near.chain([start - 2, last + 1, last + 2, i64::MIN, i64::MAX]) {
            prop_assert_eq!(rows.position(probe).is_some(), model.contains_key(&probe), "{}", probe);
        }
        prop_assert_eq!(rows.seq_at(model.len()), None);

        // Read back from its parts (the rows as bytes, the positions apart): the same.
        let mut bytes = Rows::<[i64; 2]>::default();
        bytes.extend_from_bytes(rows.rows().as_bytes()).map_err(TestCaseError::fail)?;
        let back = LogRows::from_parts(bytes, rows.runs().clone()).map_err(TestCaseError::fail)?;
        prop_assert_eq!(&back, &rows);
    }
}
