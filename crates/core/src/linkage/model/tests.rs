use std::collections::HashSet;

use super::*;
use crate::linkage::settings::Settings;

/// Generated people, a third of them twice with typos (`unavoce-synthetic`); returns
/// the table and the true pairs.
fn people(n: usize, seed: u64) -> (Table, HashSet<(u32, u32)>) {
    let (header, rows) = unavoce_synthetic::people_with_duplicates(n, seed);
    let index: std::collections::HashMap<&str, u32> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r[0].as_str(), i as u32))
        .collect();
    let truth = rows
        .iter()
        .filter_map(|r| {
            r[0].strip_suffix("-dup")
                .map(|original| (index[original], index[r[0].as_str()]))
        })
        .collect();
    let records = rows
        .iter()
        .map(|r| (r[0].clone(), r[1..].to_vec()))
        .collect();
    (Table::new(header[1..].to_vec(), records), truth)
}

fn quality(linkage: &Linkage, truth: &HashSet<(u32, u32)>, threshold: f64) -> (f64, f64) {
    let predicted: HashSet<(u32, u32)> = linkage
        .pairs
        .iter()
        .filter(|p| p.probability >= threshold)
        .map(|p| (p.left, p.right))
        .collect();
    let hits = predicted.intersection(truth).count() as f64;
    (
        hits / predicted.len().max(1) as f64,
        hits / truth.len().max(1) as f64,
    )
}

#[test]
fn inferred_settings_find_typoed_duplicates() {
    let (table, truth) = people(3_000, 11);
    let settings = Settings::infer(&table).unwrap();
    let kinds: Vec<_> = settings
        .comparisons
        .iter()
        .map(|c| (c.column.as_str(), c.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("first_name", ComparisonKind::Name),
            ("surname", ComparisonKind::Name),
            ("date_of_birth", ComparisonKind::Date),
            ("postcode", ComparisonKind::Code),
        ],
        "the city is implied by the postcode, so it is not compared"
    );
    let linkage = link(&table, &settings, 1, 0.0).unwrap();
    let (precision, recall) = quality(&linkage, &truth, 0.5);
    assert!(
        precision > 0.97 && recall > 0.95,
        "precision {precision:.3}, recall {recall:.3}"
    );
    assert!(linkage.lambda > 0.0 && linkage.lambda < 1.0);
    // Learned m: true matches agree exactly on surnames far more often than non-matches.
    eprintln!("dedupe precision {precision:.4} recall {recall:.4}");
    assert!(
        linkage.m[1][1] > 0.5 && linkage.u[1][1] < 0.1,
        "m {:?} u {:?}",
        linkage.m[1],
        linkage.u[1]
    );
}

#[test]
fn two_sources_are_linked_across_only() {
    let (table, truth) = people(1_000, 5);
    // Originals in one source, duplicates in the other.
    let mut linked = Table::new(table.columns.clone(), Vec::new());
    let mut left = Vec::new();
    let mut right = Vec::new();
    for (row, id) in table.ids.iter().enumerate() {
        let values: Vec<String> = (0..table.columns.len())
            .map(|c| table.value(row, c).unwrap_or("").to_string())
            .collect();
        if id.ends_with("-dup") {
            right.push((id.clone(), values))
        } else {
            left.push((id.clone(), values))
        }
    }
    let left_len = left.len() as u32;
    linked.extend(left, 0);
    linked.extend(right, 1);
    let linkage = link(&linked, &Settings::infer(&linked).unwrap(), 1, 0.0).unwrap();
    assert!(
        linkage
            .pairs
            .iter()
            .all(|p| linked.origin[p.left as usize] != linked.origin[p.right as usize])
    );
    let found = linkage
        .pairs
        .iter()
        .filter(|p| p.probability >= 0.5 && p.left < left_len && p.right >= left_len)
        .count();
    assert!(
        found as f64 >= truth.len() as f64 * 0.9,
        "{found} of {}",
        truth.len()
    );
}

#[test]
fn rare_exact_values_weigh_more_than_common_ones() {
    let columns = ["surname", "postcode"].map(String::from).to_vec();
    let mut records: Vec<(String, Vec<String>)> = (0..500)
        .map(|i| {
            (
                format!("r{i}"),
                vec!["rossi".to_string(), format!("{:05}", i)],
            )
        })
        .collect();
    records.push(("a".into(), vec!["zanzotto".into(), "11111".into()]));
    records.push(("b".into(), vec!["zanzotto".into(), "22222".into()]));
    records.push(("c".into(), vec!["rossi".into(), "33333".into()]));
    records.push(("d".into(), vec!["rossi".into(), "44444".into()]));
    let table = Table::new(columns, records);
    let settings = Settings {
        comparisons: vec![
            Comparison {
                column: "surname".into(),
                kind: ComparisonKind::Name,
                term_frequency: true,
            },
            Comparison {
                column: "postcode".into(),
                kind: ComparisonKind::Code,
                term_frequency: false,
            },
        ],
        blocking: vec![vec![KeyPart {
            column: "surname".into(),
            prefix: None,
        }]],
        max_block_size: 10_000,
        u_sample_pairs: 50_000,
    };
    let linkage = link(&table, &settings, 1, 0.0).unwrap();
    let weight = |a: u32, b: u32| {
        linkage
            .pairs
            .iter()
            .find(|p| p.left == a && p.right == b)
            .unwrap()
            .weight
    };
    assert!(
        weight(500, 501) > weight(502, 503) + 3.0,
        "zanzotto {} vs rossi {}",
        weight(500, 501),
        weight(502, 503)
    );
}

#[test]
fn bad_settings_are_refused() {
    let (table, _) = people(50, 1);
    let mut settings = Settings::infer(&table).unwrap();
    settings.comparisons[0].column = "nickname".into();
    assert_eq!(
        link(&table, &settings, 1, 0.0).unwrap_err(),
        SettingsError::UnknownColumn("nickname".into())
    );
}

/// The same input and seed give the same pairs, weights and model on one thread as on
/// several: pairs are enumerated in a fixed order and counts reduced exactly.
#[test]
fn parallel_linkage_equals_sequential() {
    let (table, _) = people(4_000, 21);
    let settings = Settings::infer(&table).unwrap();
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| link(&table, &settings, 7, 0.001).unwrap())
    };
    let (one, four) = (run(1), run(4));
    assert!(!one.pairs.is_empty());
    assert_eq!(one.pairs, four.pairs);
    assert_eq!(one.blocking, four.blocking);
    assert_eq!(one.m, four.m);
    assert_eq!(one.u, four.u);
    assert_eq!(one.lambda.to_bits(), four.lambda.to_bits());
}
