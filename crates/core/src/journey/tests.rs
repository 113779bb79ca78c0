use serde_json::json;

use super::*;
use crate::policy::PolicyConfig;

fn journey(config: serde_json::Value) -> Result<Journey, JourneyError> {
    Journey::new(serde_json::from_value(config).unwrap())
}

fn loan_offer() -> Journey {
    journey(json!({
        "name": "loan-offer",
        "trigger": {"event": "Mortgage Simulated"},
        "exit_when": "traits.customer_type == 'closed'",
        "goal": {"event": "Loan Requested", "within": "30d"},
        "control_percent": 10,
        "steps": [
            {"type": "wait", "duration": "2d"},
            {"type": "branch", "when": "consents.promotional", "then": "offer", "else": "call"},
            {"type": "send", "name": "offer", "message": "loan-offer", "purpose": "promotional",
                "fallback_after": "1d"},
            {"type": "wait", "until_event": "Loan Requested", "timeout": "7d"},
            {"type": "branch", "when": "true", "then": "exit"},
            {"type": "notify", "name": "call", "department": "branch-advisors", "message": "call about the mortgage"},
            {"type": "update_profile", "traits": {"loan_offer": "advisor"}}
        ]
    }))
    .unwrap()
}

fn facts(messages: &[serde_json::Value]) -> ProfileFacts {
    crate::testing::person(messages, "2025-03-01T00:00:00Z")
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
fn a_person_waits_then_is_offered_then_waits_for_the_answer() {
    let j = loan_offer();
    let policies = Policies::new(&PolicyConfig::default()).unwrap();
    let consenting = facts(&[json!({"type": "track", "event": "Consent Given",
        "properties": {"purpose": "promotional"}})]);
    let mut progress = Progress::start(false);
    let mut actions = Vec::new();
    let t0 = at("2025-03-03T10:00:00Z");
    let halt = j.advance(
        &mut progress,
        Wake::Entered,
        &consenting,
        &policies,
        t0,
        &mut actions,
    );
    assert_eq!(halt, Halt::Waiting);
    assert_eq!(progress.wake_at, Some(at("2025-03-05T10:00:00Z")));
    // Woken early by an unrelated event: still waiting.
    let halt = j.advance(
        &mut progress,
        Wake::Event("Page Viewed"),
        &consenting,
        &policies,
        t0,
        &mut actions,
    );
    assert_eq!(halt, Halt::Waiting);
    let t1 = at("2025-03-05T10:00:00Z");
    let halt = j.advance(
        &mut progress,
        Wake::Timer,
        &consenting,
        &policies,
        t1,
        &mut actions,
    );
    assert_eq!(
        halt,
        Halt::Send {
            message: "loan-offer".into(),
            purpose: "promotional".into(),
            channel: "auto".into(),
            fallback_after: Some(SignedDuration::from_hours(24)),
        }
    );
    assert_eq!(progress.step, 2);
    progress.sent();
    let halt = j.advance(
        &mut progress,
        Wake::Timer,
        &consenting,
        &policies,
        t1,
        &mut actions,
    );
    assert_eq!(
        (halt, progress.waiting_for.as_deref()),
        (Halt::Waiting, Some("Loan Requested"))
    );
    let halt = j.advance(
        &mut progress,
        Wake::Event("loan requested"),
        &consenting,
        &policies,
        t1,
        &mut actions,
    );
    assert_eq!(halt, Halt::Exited("branch step-5".into()));
    assert!(actions.is_empty());
    assert!(j.converts("Loan Requested", t0, t1));
    assert!(
        !j.converts("Loan Requested", t0, at("2025-04-10T00:00:00Z")),
        "outside 30 days"
    );
}

#[test]
fn without_consent_the_branch_notifies_the_advisors_and_the_control_group_is_left_alone() {
    let j = loan_offer();
    let policies = Policies::new(&PolicyConfig::default()).unwrap();
    let person = facts(&[]);
    let mut progress = Progress {
        step: 0,
        wake_at: Some(at("2025-03-05T10:00:00Z")),
        waiting_for: None,
        control: false,
    };
    let mut actions = Vec::new();
    let now = at("2025-03-05T11:00:00Z");
    let halt = j.advance(
        &mut progress.clone(),
        Wake::Timer,
        &person,
        &policies,
        now,
        &mut actions,
    );
    assert_eq!(halt, Halt::Completed);
    assert_eq!(actions.len(), 2);
    assert!(
        matches!(&actions[0], Action::Notify { department, .. } if department == "branch-advisors")
    );
    actions.clear();
    progress.control = true;
    let halt = j.advance(
        &mut progress,
        Wake::Timer,
        &person,
        &policies,
        now,
        &mut actions,
    );
    assert_eq!(halt, Halt::Completed);
    assert!(actions.is_empty(), "the control group is not contacted");
}

#[test]
fn the_exit_condition_is_checked_at_every_step() {
    let j = loan_offer();
    let policies = Policies::new(&PolicyConfig::default()).unwrap();
    let closed = facts(&[json!({"type": "identify", "traits": {"customer_type": "closed"}})]);
    let mut progress = Progress::start(false);
    let halt = j.advance(
        &mut progress,
        Wake::Entered,
        &closed,
        &policies,
        at("2025-03-03T10:00:00Z"),
        &mut Vec::new(),
    );
    assert_eq!(halt, Halt::Exited("exit condition".into()));
}

#[test]
fn a_wait_for_the_send_window_ends_with_quiet_hours_in_the_persons_zone() {
    let j = journey(json!({"name": "j", "trigger": {"segment": "s"}, "steps": [
        {"type": "wait", "until_send_window": true},
        {"type": "send", "message": "m", "purpose": "promotional", "channel": "email"}]}))
    .unwrap();
    let policies = Policies::new(&PolicyConfig::default()).unwrap();
    let tokyo = facts(&[json!({"type": "identify", "traits": {"timezone": "Asia/Tokyo"}})]);
    let mut progress = Progress::start(false);
    // 13:00 UTC is 22:00 in Tokyo: quiet until 08:00 Tokyo, 23:00 UTC.
    let halt = j.advance(
        &mut progress,
        Wake::Entered,
        &tokyo,
        &policies,
        at("2025-03-03T13:00:00Z"),
        &mut Vec::new(),
    );
    assert_eq!(halt, Halt::Waiting);
    assert_eq!(progress.wake_at, Some(at("2025-03-03T23:00:00Z")));
    let halt = j.advance(
        &mut progress,
        Wake::Timer,
        &tokyo,
        &policies,
        at("2025-03-03T23:00:00Z"),
        &mut Vec::new(),
    );
    assert!(matches!(halt, Halt::Send { .. }));
}

#[test]
fn the_control_group_is_a_stable_share_of_people() {
    let j = loan_offer();
    let held: Vec<i64> = (0..10_000).filter(|&i| j.holds_out(ProfileId(i))).collect();
    assert!(
        (800..1_200).contains(&held.len()),
        "{} of 10,000 for 10 %",
        held.len()
    );
    assert_eq!(
        j.holds_out(ProfileId(42)),
        loan_offer().holds_out(ProfileId(42))
    );
    // The split hashes the id's text, as it always has: the same people stay held out.
    assert_eq!(held.len(), 996);
    assert_eq!(held[..8], [15, 35, 57, 66, 73, 92, 107, 122]);
}

#[test]
fn bad_definitions_are_refused_with_the_reason() {
    let base = |steps: serde_json::Value| {
        journey(json!({"name": "j", "trigger": {"event": "E"}, "steps": steps}))
            .unwrap_err()
            .to_string()
    };
    assert!(
        base(json!([{"type": "wait", "duration": "soon"}])).contains("\"soon\" is not a duration")
    );
    assert!(base(json!([{"type": "wait", "until_event": "X"}])).contains("a wait takes"));
    assert!(
        base(json!([{"type": "branch", "when": "true", "then": "nowhere"}]))
            .contains("\"nowhere\", which is no step")
    );
    let e = base(json!([{"type": "branch", "when": "trait.x == 1", "then": "exit"}]));
    assert!(
        e.contains("step \"step-1\"") && e.contains("\"trait\""),
        "{e}"
    );
    assert!(
        base(json!([{"type": "send", "message": "m", "purpose": "p", "channel": "pigeon"}]))
            .contains("pigeon")
    );
    assert!(base(json!([])).contains("at least one step"));
    let e = journey(json!({"name": "j", "trigger": {"event": "E", "segment": "S"}, "steps": [{"type": "wait", "duration": "1d"}]}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("exactly one of"), "{e}");
    assert_eq!(parse_duration("36h"), Some(SignedDuration::from_hours(36)));
    assert_eq!(parse_duration("0d"), None);
}

#[test]
fn delivery_news_decides_the_fallback() {
    let deadline = Some(at("2025-03-02T10:00:00Z"));
    let before = at("2025-03-02T09:00:00Z");
    assert_eq!(
        delivery("email", Some(("email", "failed")), deadline, before),
        Delivery::Failed
    );
    assert_eq!(
        delivery("email", Some(("email", "opened")), deadline, before),
        Delivery::Engaged
    );
    assert_eq!(
        delivery("email", Some(("email", "delivered")), deadline, before),
        Delivery::Pending
    );
    assert_eq!(
        delivery("email", Some(("sms", "failed")), deadline, before),
        Delivery::Pending,
        "another channel's news"
    );
    assert_eq!(
        delivery("email", None, deadline, at("2025-03-02T10:00:00Z")),
        Delivery::Unread
    );
    let fixed = journey(json!({"name": "j", "trigger": {"event": "E"}, "steps": [
        {"type": "send", "message": "m", "purpose": "p", "channel": "email", "fallback_after": "1d"}]}))
    .unwrap_err()
    .to_string();
    assert!(fixed.contains("needs channel \"auto\""), "{fixed}");
}
