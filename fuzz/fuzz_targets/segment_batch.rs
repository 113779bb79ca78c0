//! A request body of the Segment tracking API as it arrives, through the server's own
//! readers and the intake: `read_body` (gzip or not, within the size limit), then
//! `read_batch` for `/v1/batch`, or one message for `/v1/{type}`, then
//! `Intake::ingest` over a log in memory, then a replay of what was quarantined. Each
//! item must be stored, recognised as a duplicate or quarantined with its reason.
//!
//! Input: one control byte (gzip it here, send it as gzip as it is, `/v1/batch` or
//! which `/v1/{type}`), then the body.
#![no_main]

use std::io::Write;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use flate2::Compression;
use flate2::write::GzEncoder;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use unavoce_core::EventType;
use unavoce_core::segment::{MAX_MESSAGE_BYTES, MAX_REQUEST_BYTES, Rejection, RejectionCode};
use unavoce_fuzz::{MemoryLog, block_on, received_at};
use unavoce_intake::{IngestReport, Intake, IntakeError, Item, ItemBody, Submission};
use unavoce_server::{BatchBody, read_batch, read_body};

fuzz_target!(|data: &[u8]| {
    let Some((&control, body)) = data.split_first() else {
        return;
    };
    let mut headers = HeaderMap::new();
    let body = match control & 3 {
        1 => {
            let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
            gz.write_all(body).expect("gzip in memory");
            gz.finish().expect("gzip in memory")
        }
        _ => body.to_vec(),
    };
    if control & 3 != 0 {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    let Ok(bytes) = block_on(read_body(&headers, Body::from(body), MAX_REQUEST_BYTES)) else {
        return;
    };
    assert!(bytes.len() <= MAX_REQUEST_BYTES);
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return;
    };
    let log = MemoryLog::new();
    let intake = Intake::new(log.clone());
    let endpoint = EventType::ALL.get(usize::from(control >> 2) % 8).copied();
    let (items, report) = match endpoint {
        None => {
            let Ok(BatchBody {
                items, envelope, ..
            }) = read_batch(text)
            else {
                return;
            };
            let count = items.len();
            let submission = Submission {
                source: "fuzz",
                received_at: received_at(),
                endpoint_type: None,
                default_touchpoint: None,
                envelope: Some(&envelope),
                items: items
                    .into_iter()
                    .enumerate()
                    .map(|(index, raw)| Item {
                        body: ItemBody::Raw(raw.get()),
                        origin: json!({"endpoint": "/v1/batch", "index": index}),
                    })
                    .collect(),
            };
            (count, block_on(intake.ingest(submission)))
        }
        Some(event_type) => {
            // As `/v1/{type}` reads its one message.
            let Ok(Value::Object(mut message)) = serde_json::from_str::<Value>(text) else {
                return;
            };
            message.remove("writeKey");
            let body = if text.len() > MAX_MESSAGE_BYTES {
                ItemBody::Unusable {
                    payload: Value::Object(message).to_string(),
                    rejection: Rejection::new(RejectionCode::MessageTooLarge, "too large"),
                }
            } else {
                ItemBody::Parsed(message)
            };
            let submission = Submission {
                source: "fuzz",
                received_at: received_at(),
                endpoint_type: Some(event_type),
                default_touchpoint: None,
                envelope: None,
                items: vec![Item {
                    body,
                    origin: json!({"endpoint": format!("/v1/{event_type}")}),
                }],
            };
            (1, block_on(intake.ingest(submission)))
        }
    };
    let report: IngestReport = report.expect("a log in memory takes every append");
    assert_eq!(
        report.accepted + report.duplicates + report.rejected.len(),
        items,
        "every item is accounted for: {report:?}"
    );
    assert!(report.rejected.windows(2).all(|w| w[0].index < w[1].index));
    assert!(report.rejected.iter().all(|r| r.index < items));
    assert_eq!(log.events().len(), report.accepted);

    // What was quarantined replays as it was stored: still refused, or stored now.
    for id in log.quarantine_ids().into_iter().take(4) {
        match block_on(intake.replay(id, None, received_at())) {
            Ok(_) | Err(IntakeError::StillInvalid(_)) => {}
            Err(e) => panic!("replaying quarantine entry {id}: {e}"),
        }
    }
});
