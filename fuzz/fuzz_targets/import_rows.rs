//! A CSV or JSON Lines file imported under a mapping, through `Intake::import` over a
//! log in memory: reading rows (delimiter sniffing, quoting, blank lines, line numbers),
//! `CompiledMapping::map_record` (paths, conversions, time formats and zones), message
//! ids derived from the row, then the normaliser. Every row must be stored, recognised
//! as a duplicate or reported at its line with its reason.
//!
//! Input: one control byte (CSV or JSON Lines, which mapping, rows per append), then
//! the file; with the fourth mapping its first line is the mapping's
//! `timestamp_format`.
#![no_main]

use std::sync::LazyLock;

use jiff::tz::TimeZone;
use libfuzzer_sys::fuzz_target;
use unavoce_core::EventType;
use unavoce_core::import::{ColumnTarget, CompiledMapping, Mapping, Unmapped, ValueKind};
use unavoce_fuzz::{MemoryLog, block_on, split_at_byte};
use unavoce_intake::{FileFormat, ImportOptions, Intake};

static ROME: LazyLock<TimeZone> =
    LazyLock::new(|| TimeZone::get("Europe/Rome").unwrap_or(TimeZone::fixed(jiff::tz::offset(1))));

/// A till's export: named columns, conversions, a local time format and zone.
fn till(timestamp_format: Option<String>) -> Mapping {
    let converted = |path: &str, kind| ColumnTarget::Converted {
        path: path.into(),
        kind,
    };
    Mapping {
        event_type: None,
        event: Some("Order Completed".into()),
        touchpoint: Some("store-rome-01".into()),
        channel: Some("store".into()),
        timezone: Some("Europe/Rome".into()),
        timestamp_format: timestamp_format.or(Some("%d/%m/%Y %H:%M".into())),
        unmapped: Unmapped::Properties,
        columns: [
            ("receipt", ColumnTarget::Path("messageId".into())),
            ("card", ColumnTarget::Path("traits.loyalty_id".into())),
            ("email", ColumnTarget::Path("traits.email".into())),
            ("phone", ColumnTarget::Path("traits.phone".into())),
            ("user", ColumnTarget::Path("userId".into())),
            ("when", ColumnTarget::Path("timestamp".into())),
            ("total", converted("properties.revenue", ValueKind::Number)),
            ("qty", converted("properties.quantity", ValueKind::Integer)),
            ("member", converted("traits.member", ValueKind::Boolean)),
            (
                "since",
                converted("traits.member_since", ValueKind::Timestamp),
            ),
            ("note", converted("properties.note", ValueKind::String)),
            ("extra", converted("context.extra", ValueKind::Auto)),
        ]
        .into_iter()
        .map(|(column, target)| (column.to_string(), target))
        .collect(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, file)) = data.split_first() else {
        return;
    };
    let format = if control & 1 == 0 {
        FileFormat::Csv
    } else {
        FileFormat::Jsonl
    };
    let (mapping, zone, file) = match (control >> 1) & 3 {
        0 => (Mapping::default(), TimeZone::UTC, file),
        1 => (till(None), ROME.clone(), file),
        2 => (
            Mapping {
                event_type: Some(EventType::Identify),
                unmapped: Unmapped::Traits,
                ..Mapping::default()
            },
            TimeZone::UTC,
            file,
        ),
        _ => {
            let (format, file) = split_at_byte(file, b'\n');
            let format = String::from_utf8_lossy(format).into_owned();
            (till(Some(format)), ROME.clone(), file)
        }
    };
    let mapping = CompiledMapping::new(mapping, zone).expect("the mappings are valid");
    let options = ImportOptions {
        source: "till".into(),
        format,
        mapping,
        rows_per_append: 1 + usize::from((control >> 3) & 3),
        file_name: "fuzz.csv".into(),
    };
    let log = MemoryLog::new();
    let intake = Intake::new(log.clone());
    let report = block_on(intake.import(file, &options, |_| {}))
        .expect("a log in memory takes every append");
    assert_eq!(
        report.rows,
        report.accepted + report.duplicates + report.errors.len() as u64,
        "every row is accounted for: {report:?}"
    );
    assert_eq!(log.events().len() as u64, report.accepted);
    let lines = file.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    for error in &report.errors {
        assert!(
            (1..=lines).contains(&error.line),
            "line {} of {lines}: {report:?}",
            error.line
        );
    }
    // Rows in order (two on one line when a lone CR ends the first).
    assert!(
        report.errors.windows(2).all(|w| w[0].line <= w[1].line),
        "lines in order: {report:?}"
    );
});
