use serde_json::json;

use super::*;

fn ctx(received_at: &str) -> IntakeContext<'static> {
    IntakeContext::new(received_at.parse().unwrap(), "web")
}

fn obj(value: serde_json::Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn normalised(value: serde_json::Value) -> Result<Event, Rejection> {
    normalise(obj(value), &ctx("2024-05-01T10:00:10Z"), || {
        "generated".into()
    })
}

#[test]
fn track_is_normalised_and_clock_skew_corrected() {
    let event = normalised(json!({
        "type": "track", "event": "Order Completed", "userId": 42,
        "messageId": "m-1",
        "timestamp": "2024-05-01T09:59:00Z",
        "sentAt": "2024-05-01T10:00:00Z",
        "properties": {"revenue": 19.9}
    }))
    .unwrap();
    assert_eq!(event.event_type, EventType::Track);
    assert_eq!(event.user_id.as_deref(), Some("42"));
    assert_eq!(event.name.as_deref(), Some("Order Completed"));
    assert_eq!(event.message_id, "m-1");
    // received 10 s after the client's clock said it sent: the event is shifted by 10 s.
    assert_eq!(event.timestamp.to_string(), "2024-05-01T09:59:10Z");
    assert_eq!(event.message["originalTimestamp"], "2024-05-01T09:59:00Z");
    assert_eq!(event.message["receivedAt"], "2024-05-01T10:00:10Z");
    assert_eq!(event.message["userId"], "42");
}

#[test]
fn missing_timestamp_means_received_at_and_missing_id_is_generated() {
    let event = normalised(json!({"type": "identify", "anonymousId": "a-1"})).unwrap();
    assert_eq!(event.timestamp.to_string(), "2024-05-01T10:00:10Z");
    assert_eq!(event.message_id, "generated");
    assert_eq!(event.message["messageId"], "generated");
    assert!(!event.message.contains_key("originalTimestamp"));
}

#[test]
fn timestamp_without_offset_is_utc() {
    let event = normalised(json!({"type": "identify", "userId": "u",
        "timestamp": "2024-04-30 08:00:00"}))
    .unwrap();
    assert_eq!(event.timestamp.to_string(), "2024-04-30T08:00:00Z");
}

#[test]
fn each_invalid_message_gets_its_own_code() {
    let cases = [
        (
            json!({"event": "x", "userId": "u"}),
            RejectionCode::MissingType,
        ),
        (
            json!({"type": "purchase", "userId": "u"}),
            RejectionCode::UnknownType,
        ),
        (
            json!({"type": "track", "event": "x"}),
            RejectionCode::MissingIdentity,
        ),
        (
            json!({"type": "track", "userId": "  "}),
            RejectionCode::MissingIdentity,
        ),
        (
            json!({"type": "track", "userId": "u"}),
            RejectionCode::MissingEvent,
        ),
        (
            json!({"type": "track", "userId": "u", "event": ""}),
            RejectionCode::MissingEvent,
        ),
        (
            json!({"type": "alias", "userId": "u"}),
            RejectionCode::MissingPreviousId,
        ),
        (
            json!({"type": "group", "userId": "u"}),
            RejectionCode::MissingGroupId,
        ),
        (
            json!({"type": "identify", "userId": "u", "traits": [1]}),
            RejectionCode::InvalidField,
        ),
        (
            json!({"type": "identify", "userId": {"a": 1}}),
            RejectionCode::InvalidField,
        ),
        (
            json!({"type": "identify", "userId": "u", "timestamp": "yesterday"}),
            RejectionCode::InvalidTimestamp,
        ),
        (
            json!({"type": "identify", "userId": "u", "timestamp": 1714557600}),
            RejectionCode::InvalidTimestamp,
        ),
        (
            json!({"type": "identify", "userId": "u", "context": {"touchpoint": 7}}),
            RejectionCode::InvalidField,
        ),
        (
            json!({"type": "identify", "userId": "u", "messageId": "x".repeat(300)}),
            RejectionCode::InvalidField,
        ),
    ];
    for (message, code) in cases {
        let err = normalised(message.clone()).expect_err(&message.to_string());
        assert_eq!(err.code, code, "{message}: {}", err.message);
        assert!(!err.message.is_empty());
    }
}

#[test]
fn endpoint_type_overrides_the_body() {
    let c = IntakeContext {
        endpoint_type: Some(EventType::Page),
        ..ctx("2024-05-01T10:00:00Z")
    };
    let event = normalise(
        obj(json!({"type": "track", "anonymousId": "a", "name": "Pricing"})),
        &c,
        || "g".into(),
    )
    .unwrap();
    assert_eq!(event.event_type, EventType::Page);
    assert_eq!(event.name.as_deref(), Some("Pricing"));
    assert_eq!(event.channel.as_deref(), Some("web"));
}

#[test]
fn touchpoint_and_channel_are_kept_normalised_or_inferred() {
    let declared = normalised(
        json!({"type": "track", "userId": "u", "event": "Call Started",
        "context": {"touchpoint": "call-center-milan", "channel": "Call Center"}}),
    )
    .unwrap();
    assert_eq!(declared.touchpoint.as_deref(), Some("call-center-milan"));
    assert_eq!(declared.channel.as_deref(), Some("phone"));

    let unknown = normalised(json!({"type": "track", "userId": "u", "event": "Msg",
        "context": {"channel": "Telegram"}}))
    .unwrap();
    assert_eq!(unknown.channel.as_deref(), Some("telegram"));

    let ios = normalised(json!({"type": "track", "userId": "u", "event": "Open",
        "context": {"library": {"name": "analytics-ios"}}}))
    .unwrap();
    assert_eq!(ios.channel.as_deref(), Some("app"));
    assert_eq!(ios.message["context"]["channel"], "app");

    let device = normalised(json!({"type": "track", "userId": "u", "event": "Open",
        "context": {"device": {"type": "Android", "id": "d1"}}}))
    .unwrap();
    assert_eq!(device.channel.as_deref(), Some("app"));

    let server = normalised(json!({"type": "track", "userId": "u", "event": "Refund",
        "context": {"library": {"name": "analytics-python"}}}))
    .unwrap();
    assert_eq!(server.channel, None);

    let c = IntakeContext {
        default_touchpoint: Some("store-rome-01"),
        ..ctx("2024-05-01T10:00:00Z")
    };
    let imported = normalise(obj(json!({"type": "identify", "userId": "u"})), &c, || {
        "g".into()
    })
    .unwrap();
    assert_eq!(imported.touchpoint.as_deref(), Some("store-rome-01"));
}

#[test]
fn batch_context_is_merged_with_the_item_winning() {
    let mut item =
        obj(json!({"type": "track", "context": {"ip": "1", "library": {"name": "own"}}}));
    let envelope = obj(json!({
        "context": {"ip": "2", "library": {"name": "batch", "version": "1"}, "locale": "it-IT"},
        "integrations": {"All": true},
        "sentAt": "2024-05-01T10:00:00Z"
    }));
    apply_batch_defaults(&mut item, &envelope);
    assert_eq!(
        Value::Object(item),
        json!({"type": "track",
            "context": {"ip": "1", "library": {"name": "own", "version": "1"}, "locale": "it-IT"},
            "integrations": {"All": true},
            "sentAt": "2024-05-01T10:00:00Z"})
    );
}

#[test]
fn a_registered_touchpoint_gives_its_channel() {
    let registry: TouchpointChannels = [("store-rome-01".to_string(), ChannelKind::Store)].into();
    let c = IntakeContext {
        touchpoint_channels: Some(&registry),
        ..ctx("2024-05-01T10:00:00Z")
    };
    let message = |v: serde_json::Value| obj(v);
    let at_store = normalise(
        message(
            json!({"type": "track", "userId": "u", "event": "Order Completed",
            "context": {"touchpoint": "store-rome-01", "library": {"name": "analytics-python"}}}),
        ),
        &c,
        || "g".into(),
    )
    .unwrap();
    assert_eq!(at_store.channel.as_deref(), Some("store"));
    let declared = normalise(
        message(json!({"type": "track", "userId": "u", "event": "Call",
            "context": {"touchpoint": "store-rome-01", "channel": "phone"}})),
        &c,
        || "g".into(),
    )
    .unwrap();
    assert_eq!(
        declared.channel.as_deref(),
        Some("phone"),
        "what the sender says wins"
    );
}

#[test]
fn a_write_key_is_never_kept_whatever_the_source() {
    let event =
        normalised(json!({"type": "track", "userId": "u", "event": "E", "writeKey": "secret"}))
            .unwrap();
    assert!(!event.message.contains_key("writeKey"));
}

#[test]
fn a_nul_character_in_an_identifier_or_name_is_refused_but_kept_inside_properties() {
    for message in [
        json!({"type": "track", "event": "Tapped", "userId": "a\u{0}b"}),
        json!({"type": "track", "event": "Tap\u{0}ped", "userId": "a"}),
        json!({"type": "page", "anonymousId": "x\u{0}"}),
        json!({"type": "track", "event": "Tapped", "userId": "a", "messageId": "m\u{0}"}),
        json!({"type": "track", "event": "Tapped", "userId": "a",
            "context": {"touchpoint": "shop\u{0}"}}),
    ] {
        let refused = normalised(message.clone()).unwrap_err();
        assert_eq!(refused.code, RejectionCode::InvalidField, "{message}");
        assert!(refused.message.contains("NUL"), "{}", refused.message);
    }
    let kept = normalised(json!({"type": "track", "event": "Tapped", "userId": "a",
        "properties": {"note": "a\u{0}b"}}))
    .unwrap();
    assert_eq!(kept.message["properties"]["note"], "a\u{0}b");
}
