use serde_json::{Value, json};

use super::*;

fn card(messages: &[Value]) -> ProfileFacts {
    crate::testing::person(messages, "2025-03-01T00:00:00Z")
}

fn consent(purpose: &str, channel: Option<&str>, given: bool) -> Value {
    json!({"type": "track", "event": if given { "Consent Given" } else { "Consent Withdrawn" },
        "properties": {"purpose": purpose, "channel": channel}})
}

fn promo(channel: &str) -> OutgoingMessage {
    OutgoingMessage {
        message: "spring-offer".into(),
        purpose: "promotional".into(),
        channel: channel.into(),
        journey: None,
        not_before: None,
    }
}

fn sent(at: &str, channel: &str, purpose: &str) -> PastSend {
    PastSend {
        at: at.parse().unwrap(),
        channel: channel.into(),
        purpose: purpose.into(),
        journey: None,
        in_flight: false,
    }
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn codes(d: &Decision) -> Vec<&'static str> {
    d.reasons.iter().map(|r| r.code).collect()
}

/// No quiet hours: the tests of other policies are not about the time of day.
fn daytime_policies() -> Policies {
    Policies::new(&PolicyConfig {
        quiet_hours: None,
        ..PolicyConfig::default()
    })
    .unwrap()
}

#[test]
fn an_open_case_suppresses_promotions_but_not_service_messages() {
    let p = daytime_policies();
    let person = card(&[
        consent("promotional", None, true),
        json!({"type": "track", "event": "Case Opened", "properties": {"case_id": "C1"}}),
    ]);
    let d = decide(
        &p,
        &promo("email"),
        &person,
        &[],
        at("2025-03-01T10:00:00Z"),
    );
    assert_eq!(d.outcome, Outcome::Suppress);
    assert_eq!(codes(&d), vec!["suppressed"]);
    assert!(d.reasons[0].detail.contains("open case"));
    let service = OutgoingMessage {
        purpose: "service".into(),
        ..promo("sms")
    };
    let d = decide(&p, &service, &person, &[], at("2025-03-01T10:00:00Z"));
    assert_eq!(d.outcome, Outcome::Send);

    let resolved = card(&[
        consent("promotional", None, true),
        json!({"type": "track", "event": "Case Opened", "properties": {"case_id": "C1"}}),
        json!({"type": "track", "event": "Case Resolved", "properties": {"case_id": "C1"},
            "timestamp": "2025-01-02T00:00:00Z"}),
    ]);
    let d = decide(
        &p,
        &promo("email"),
        &resolved,
        &[],
        at("2025-03-01T10:00:00Z"),
    );
    assert_eq!(d.outcome, Outcome::Send, "{d:?}");
}

#[test]
fn promotions_need_consent_and_a_withdrawal_on_one_channel_holds_there_only() {
    let p = daytime_policies();
    let now = at("2025-03-01T10:00:00Z");
    let nobody = card(&[]);
    let d = decide(&p, &promo("email"), &nobody, &[], now);
    assert_eq!(codes(&d), vec!["no_consent"]);
    let person = card(&[
        consent("promotional", None, true),
        json!({"type": "track", "event": "Consent Withdrawn",
            "properties": {"purpose": "promotional", "channel": "sms"},
            "timestamp": "2025-02-01T00:00:00Z"}),
    ]);
    assert_eq!(
        decide(&p, &promo("email"), &person, &[], now).outcome,
        Outcome::Send
    );
    assert_eq!(
        codes(&decide(&p, &promo("sms"), &person, &[], now)),
        vec!["no_consent"]
    );
    // Service messages go out unless withdrawn.
    let withdrawn = card(&[consent("service", None, false)]);
    let service = OutgoingMessage {
        purpose: "service".into(),
        ..promo("sms")
    };
    assert_eq!(
        codes(&decide(&p, &service, &withdrawn, &[], now)),
        vec!["no_consent"]
    );
}

#[test]
fn caps_count_across_channels_over_rolling_windows_and_calendar_days() {
    let p = Policies::new(&PolicyConfig {
        quiet_hours: None,
        caps: vec![
            CapConfig {
                max: 2,
                channel: None,
                purpose: Some("promotional".into()),
                hours: Some(72),
                days: None,
            },
            CapConfig {
                max: 1,
                channel: Some("sms".into()),
                purpose: None,
                hours: None,
                days: Some(1),
            },
        ],
        ..PolicyConfig::default()
    })
    .unwrap();
    let person = card(&[consent("promotional", None, true)]);
    let now = at("2025-03-05T10:00:00Z"); // 11:00 in Rome
    // One e-mail and one push in the last 72 hours: a third promotion, on any channel, is capped.
    let history = [
        sent("2025-03-03T12:00:00Z", "email", "promotional"),
        sent("2025-03-04T12:00:00Z", "push", "promotional"),
    ];
    let d = decide(&p, &promo("whatsapp"), &person, &history, now);
    assert_eq!(codes(&d), vec!["frequency_cap"]);
    assert!(
        d.reasons[0]
            .detail
            .contains("on any channel in 72 hours (cap 2)"),
        "{d:?}"
    );
    // Older than 72 hours no longer counts.
    let history = [
        sent("2025-03-01T12:00:00Z", "email", "promotional"),
        sent("2025-03-04T12:00:00Z", "push", "promotional"),
    ];
    assert_eq!(
        decide(&p, &promo("whatsapp"), &person, &history, now).outcome,
        Outcome::Send
    );
    // Calendar day in Rome: an SMS at 23:30 Rome yesterday (22:30 UTC) does not count
    // today; one at 00:30 Rome today (23:30 UTC yesterday) does.
    let yesterday = [sent("2025-03-04T22:30:00Z", "sms", "service")];
    let today = [sent("2025-03-04T23:30:00Z", "sms", "service")];
    assert_eq!(
        decide(&p, &promo("sms"), &person, &yesterday, now).outcome,
        Outcome::Send
    );
    assert_eq!(
        codes(&decide(&p, &promo("sms"), &person, &today, now)),
        vec!["frequency_cap"]
    );
    // A customer in New York: 23:30 UTC yesterday is 18:30 there, yesterday.
    let new_yorker = card(&[
        consent("promotional", None, true),
        json!({"type": "identify", "traits": {"timezone": "America/New_York"}}),
    ]);
    assert_eq!(
        decide(&p, &promo("sms"), &new_yorker, &today, now).outcome,
        Outcome::Send
    );
}

#[test]
fn quiet_hours_hold_until_morning_in_the_customers_time_zone() {
    let p = Policies::new(&PolicyConfig::default()).unwrap();
    let roman = card(&[consent("promotional", None, true)]);
    let new_yorker = card(&[
        consent("promotional", None, true),
        json!({"type": "identify", "traits": {"timezone": "America/New_York"}}),
    ]);
    let now = at("2025-03-05T22:00:00Z"); // 23:00 in Rome, 17:00 in New York
    let d = decide(&p, &promo("email"), &roman, &[], now);
    assert_eq!(d.outcome, Outcome::Hold);
    assert_eq!(d.send_at, Some(at("2025-03-06T07:00:00Z"))); // 08:00 in Rome
    assert_eq!(codes(&d), vec!["quiet_hours"]);
    let d = decide(&p, &promo("email"), &new_yorker, &[], now);
    assert_eq!((d.outcome, d.send_at), (Outcome::Send, Some(now)));
    // Just after midnight the window ends the same morning.
    let d = decide(&p, &promo("email"), &roman, &[], at("2025-03-05T23:30:00Z"));
    assert_eq!(d.send_at, Some(at("2025-03-06T07:00:00Z")));
}

#[test]
fn quiet_hours_follow_a_daylight_saving_change() {
    let p = Policies::new(&PolicyConfig::default()).unwrap();
    let roman = card(&[consent("promotional", None, true)]);
    // Saturday 29 March 2025, 23:00 in Rome (CET, UTC+1). Clocks go forward that night:
    // 08:00 on Sunday is CEST (UTC+2), i.e. 06:00 UTC, not 07:00.
    let d = decide(&p, &promo("email"), &roman, &[], at("2025-03-29T22:00:00Z"));
    assert_eq!(d.send_at, Some(at("2025-03-30T06:00:00Z")));
    // And back in October: 08:00 on Sunday 26 October 2025 is CET again, 07:00 UTC.
    let d = decide(&p, &promo("email"), &roman, &[], at("2025-10-25T21:00:00Z"));
    assert_eq!(d.send_at, Some(at("2025-10-26T07:00:00Z")));
}

#[test]
fn one_message_in_flight_per_journey() {
    let p = daytime_policies();
    let person = card(&[consent("promotional", None, true)]);
    let message = OutgoingMessage {
        journey: Some("welcome".into()),
        ..promo("email")
    };
    let mut history = vec![PastSend {
        journey: Some("welcome".into()),
        in_flight: true,
        ..sent("2025-02-01T10:00:00Z", "email", "service")
    }];
    let now = at("2025-03-01T10:00:00Z");
    assert_eq!(
        codes(&decide(&p, &message, &person, &history, now)),
        vec!["in_flight"]
    );
    history[0].in_flight = false;
    assert_eq!(
        decide(&p, &message, &person, &history, now).outcome,
        Outcome::Send
    );
}

#[test]
fn bad_policies_are_refused_with_the_reason() {
    let bad_rule = PolicyConfig {
        suppressions: vec![SuppressionConfig {
            name: "vip".into(),
            when: "profile.vip == true".into(),
            reason: "VIPs are handled by hand".into(),
        }],
        ..PolicyConfig::default()
    };
    let Err(error) = Policies::new(&bad_rule) else {
        panic!("an unknown variable was accepted");
    };
    assert!(error.to_string().contains("\"vip\""), "{error}");
    assert!(error.to_string().contains("\"profile\""), "{error}");
    let bad_cap = PolicyConfig {
        caps: vec![CapConfig {
            max: 1,
            channel: None,
            purpose: None,
            hours: Some(1),
            days: Some(1),
        }],
        ..PolicyConfig::default()
    };
    assert_eq!(Policies::new(&bad_cap).err(), Some(PolicyError::CapWindow));
    let bad_zone = PolicyConfig {
        default_time_zone: "Europe/Atlantis".into(),
        ..PolicyConfig::default()
    };
    assert!(matches!(
        Policies::new(&bad_zone),
        Err(PolicyError::TimeZone(_))
    ));
}
