//! The engagement stage on its own, over the real store and the identity projection,
//! without HTTP: the one gate path, broadcasts, journeys on a clock the test moves, and
//! insights for departments.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use unavoce_core::identity::ProfileId;
use unavoce_core::live::Live;
use unavoce_core::policy::{Outcome, Policies, PolicyConfig};
use unavoce_core::segment::{IntakeContext, normalise};
use unavoce_engagement::gate::{Ask, Gate, NO_CHANNEL};
use unavoce_engagement::{
    Broadcast, Destinations, Engagement, INSIGHT_PURPOSE, Insights, Journeys, Messages,
    RunsOnRevision,
};
use unavoce_projections::catalog::{Edit, Status};
use unavoce_store::{AppendBatch, DecisionQuery, RunStatus, StoredDecision};

// The same store, identity projection and intake as the projections' own tests.
#[path = "../../projections/tests/support/mod.rs"]
mod support;
use support::World;

impl World {
    /// Every profile, oldest first.
    fn profiles(&self) -> Vec<ProfileId> {
        self.identity
            .read(|g| g.profiles_after(None).map(|n| n.id).collect())
    }

    /// The journeys over this world, with the given messages' and journeys' definitions
    /// as a config file would give them, under daytime policies.
    async fn journeys(&self, messages: &[Value], journeys: &[Value]) -> Arc<Journeys> {
        let messages = self.messages(messages).await;
        self.journeys_with(messages, journeys).await
    }

    async fn messages(&self, messages: &[Value]) -> Arc<Messages> {
        Messages::open(
            self.identity.clone(),
            "http://unavoce.test".into(),
            &messages.iter().map(parse).collect::<Vec<_>>(),
        )
        .await
        .unwrap()
    }

    async fn journeys_with(&self, messages: Arc<Messages>, journeys: &[Value]) -> Arc<Journeys> {
        Journeys::open(
            self.identity.clone(),
            self.intake.clone(),
            self.store.clone(),
            self.store.clone(),
            daytime_policies(),
            messages,
            &journeys.iter().map(parse).collect::<Vec<_>>(),
        )
        .await
        .unwrap()
    }

    async fn decisions(&self) -> Vec<StoredDecision> {
        self.store
            .decisions(DecisionQuery {
                limit: 1_000,
                ..Default::default()
            })
            .await
            .unwrap()
    }
}

fn parse<T: serde::de::DeserializeOwned>(v: &Value) -> T {
    serde_json::from_value(v.clone()).unwrap()
}

/// Gate policies without quiet hours or caps: these tests are not about the clock.
fn daytime_policies() -> Arc<Live<Policies>> {
    Live::new(Arc::new(
        Policies::new(&PolicyConfig {
            quiet_hours: None,
            caps: Vec::new(),
            ..PolicyConfig::default()
        })
        .unwrap(),
    ))
}

/// Ada (e-mail and phone; promotions on SMS only) and Bruno (e-mail; no consent).
async fn ada_and_bruno(world: &World) {
    world
        .send(vec![
            json!({"type": "identify", "userId": "ada",
                "traits": {"email": "ada@example.com", "phone": "+39 333 123 4567"}}),
            json!({"type": "track", "userId": "ada", "event": "Consent Given",
                "properties": {"purpose": "promotional", "channel": "sms"}}),
            json!({"type": "identify", "userId": "bruno",
                "traits": {"email": "bruno@example.com"}}),
        ])
        .await;
}

/// `user`, reachable by e-mail, starts a trial.
fn trial_started(user: &str) -> Vec<Value> {
    vec![
        json!({"type": "identify", "userId": user,
            "traits": {"email": format!("{user}@example.com")}}),
        json!({"type": "track", "userId": user, "event": "Trial Started"}),
    ]
}

/// The message of [`trial_ending_journey`].
fn trial_ending_message() -> Value {
    json!({"id": "trial-ending",
        "email": {"subject": "Your trial", "text": "It ends soon", "html": "<p>It ends soon</p>"}})
}

/// An hour after a trial starts, a message on `channel`.
fn trial_ending_journey(channel: &str) -> Value {
    json!({"name": "trial-ending", "trigger": {"event": "Trial Started"},
        "steps": [{"type": "wait", "duration": "1h"},
            {"type": "send", "message": "trial-ending", "purpose": "service", "channel": channel}]})
}

fn promotion<'a>(channel: &'a str, renders: &'a [&'a str]) -> Ask<'a> {
    Ask {
        message: "offer",
        purpose: "promotional",
        channel,
        journey: None,
        renders,
        best_hour_prior: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_chooses_a_consented_reachable_channel_and_says_why_it_refuses() {
    let world = World::new().await;
    ada_and_bruno(&world).await;
    let gate = Gate::new(daytime_policies(), world.store.clone());
    let now = Timestamp::now();
    let [ada, bruno] = world.profiles()[..] else {
        panic!("two profiles")
    };
    let (facts, reachable) = world.identity.person(ada, now);
    let reachable: Vec<&str> = reachable.iter().map(String::as_str).collect();

    // `auto` picks the one channel she consented to and can be reached on.
    let gated = gate.pass(&promotion("auto", &[]), &facts, &reachable, &[], now);
    assert_eq!(gated.channel, "sms");
    assert_eq!(gated.decision.outcome, Outcome::Send);
    // Unless the message cannot be rendered there.
    let gated = gate.pass(&promotion("auto", &["email"]), &facts, &reachable, &[], now);
    assert_eq!(gated.channel, NO_CHANNEL);
    assert_eq!(gated.decision.reasons[0].code, "no_channel");
    // E-mail, asked for by name, is refused for want of consent.
    let gated = gate.pass(&promotion("email", &[]), &facts, &reachable, &[], now);
    assert_eq!(gated.decision.outcome, Outcome::Suppress);
    assert_eq!(gated.decision.reasons[0].code, "no_consent");

    // What the log records says the same, with who asked.
    let ask = Ask {
        journey: Some("welcome"),
        ..promotion("auto", &[])
    };
    let gated = gate.pass(&ask, &facts, &reachable, &[], now);
    let record = gated.record(&ask, ada, None, now);
    assert_eq!(
        (
            record.channel.as_str(),
            record.outcome.as_str(),
            record.journey.as_deref()
        ),
        ("sms", "send", Some("welcome"))
    );
    gate.decisions()
        .record_decisions(vec![record])
        .await
        .unwrap();
    let history = gate.history(Vec::new(), now).await.unwrap();
    assert_eq!(history[&ada].len(), 1);
    assert!(!history.contains_key(&bruno));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_records_each_decision_and_a_dry_run_records_none() {
    let world = World::new().await;
    ada_and_bruno(&world).await;
    let engagement = Engagement::new(
        world.identity.clone(),
        world.store.clone(),
        daytime_policies(),
    );
    let mut broadcast = Broadcast {
        message: "offer".into(),
        audience: unavoce_core::audience::Audience::parse("true").unwrap(),
        purpose: "promotional".into(),
        channel: "auto".into(),
        optimise_send_time: false,
        fallback_after: None,
        dry_run: true,
        list_limit: 10,
        renders: vec!["email", "sms"],
    };
    let now = Timestamp::now();
    let dry = engagement.broadcast(&broadcast, now).await.unwrap();
    assert_eq!((dry.audience, dry.decisions.len()), (2, 2));
    assert_eq!(dry.outcomes["send"], 1);
    assert_eq!(dry.reasons["no_channel"], 1, "{dry:?}");
    assert!(world.decisions().await.is_empty());

    broadcast.dry_run = false;
    let report = engagement.broadcast(&broadcast, now).await.unwrap();
    assert!(report.decisions.is_empty());
    let decisions = world.decisions().await;
    assert_eq!(decisions.len(), 2);
    assert!(
        decisions
            .iter()
            .all(|d| d.decision.broadcast.as_deref() == Some(report.broadcast.as_str()))
    );
    let outcomes: Vec<(&str, &str)> = decisions
        .iter()
        .map(|d| (d.decision.channel.as_str(), d.decision.outcome.as_str()))
        .collect();
    assert_eq!(outcomes, [("sms", "send"), (NO_CHANNEL, "suppress")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journey_waits_on_the_clock_then_sends_through_the_gate() {
    let world = World::new().await;
    let journeys = world
        .journeys(&[trial_ending_message()], &[trial_ending_journey("auto")])
        .await;
    world.send(trial_started("giulia")).await;
    let now = Timestamp::now();
    journeys.step(now).await.unwrap();
    let runs = journeys.runs("trial-ending", None, None, 10).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].status, RunStatus::Active);
    assert!(world.decisions().await.is_empty(), "still waiting");

    // An hour later, by the clock the test passes in.
    journeys
        .step(now + SignedDuration::from_mins(61))
        .await
        .unwrap();
    let decisions = world.decisions().await;
    assert_eq!(decisions.len(), 1);
    let d = &decisions[0].decision;
    assert_eq!(
        (d.channel.as_str(), d.outcome.as_str(), d.journey.as_deref()),
        ("email", "send", Some("trial-ending"))
    );
}

/// A new version made with `runs: finish`: who was in a run goes on by the version they
/// started (its step names, its message), also after a restart; who enters now follows
/// the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_left_to_finish_follow_the_version_they_started_and_newcomers_the_new_one() {
    let world = World::new().await;
    let open = async || world.journeys(&[], &[]).await;
    let version = |wait: &str, message: &str| {
        serde_json::from_value(
            json!({"name": "trial", "trigger": {"event": "Trial Started"},
            "steps": [{"type": "wait", "duration": "1h", "name": wait},
                {"type": "send", "message": message, "purpose": "service",
                    "channel": "email", "name": "hello"}]}),
        )
        .unwrap()
    };
    let edit = Edit {
        by: "key:admin",
        at: Timestamp::now(),
    };
    let journeys = open().await;
    journeys
        .define(version("cool-off", "first-words"), edit)
        .await
        .unwrap();
    world.send(trial_started("giulia")).await;
    let now = Timestamp::now();
    journeys.step(now).await.unwrap();

    // The dry run counts her run as finishing, and changes nothing.
    let finish = RunsOnRevision::Finish;
    let dry = (journeys.revise(version("linger", "second-words"), &finish, true, edit))
        .await
        .unwrap();
    assert_eq!((dry.version, dry.runs.finishing), (None, 1));
    let made = (journeys.revise(version("linger", "second-words"), &finish, false, edit))
        .await
        .unwrap();
    assert_eq!((made.version, made.runs.finishing), (Some(2), 1));
    world.send(trial_started("marco")).await;
    journeys.step(now).await.unwrap();
    let runs = journeys.runs("trial", None, None, 10).await.unwrap();
    let versions: Vec<u32> = runs.iter().map(|r| r.version).collect();
    assert_eq!(versions, [1, 2], "{runs:?}");
    // Each run is counted in its own version's step.
    let stats = journeys.stats("trial").await.unwrap().unwrap();
    assert_eq!(
        (
            stats.version,
            stats.in_step["cool-off"],
            stats.in_step["linger"]
        ),
        (2, 1, 1)
    );

    // After a restart, an hour on: each gets the message of the version they follow.
    let journeys = open().await;
    journeys
        .step(now + SignedDuration::from_mins(61))
        .await
        .unwrap();
    let [giulia, marco] = world.profiles()[..] else {
        panic!("two profiles")
    };
    let mut sent: Vec<(ProfileId, String)> = (world.decisions().await.into_iter())
        .map(|d| (d.decision.profile_id, d.decision.message))
        .collect();
    sent.sort();
    assert_eq!(
        sent,
        [
            (giulia, "first-words".to_string()),
            (marco, "second-words".to_string())
        ]
    );
    let runs = journeys.runs("trial", None, None, 10).await.unwrap();
    assert!(
        runs.iter().all(|r| r.status == RunStatus::Completed),
        "{runs:?}"
    );
}

/// A journey's send of a paused message waits at its step, deciding nothing, and goes
/// out once the message is resumed; a retired message ends the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_message_holds_a_journeys_send_until_resumed_and_a_retired_one_ends_the_run() {
    let world = World::new().await;
    let messages = world.messages(&[]).await;
    let edit = Edit {
        by: "key:admin",
        at: Timestamp::now(),
    };
    for id in ["trial-ending", "farewell"] {
        messages
            .define(
                parse(&json!({"id": id, "email": {"subject": "Hi", "text": "Hi", "html": "<p>Hi</p>"}})),
                edit,
            )
            .await
            .unwrap();
    }
    let send = |journey: &str, message: &str| {
        json!({"name": journey, "trigger": {"event": "Trial Started"},
            "steps": [{"type": "send", "message": message, "purpose": "service",
                "channel": "email"}]})
    };
    let journeys = world
        .journeys_with(
            messages.clone(),
            &[send("held", "trial-ending"), send("ended", "farewell")],
        )
        .await;
    messages
        .set_status("trial-ending", Status::Paused, edit)
        .await
        .unwrap();
    messages
        .set_status("farewell", Status::Retired, edit)
        .await
        .unwrap();
    world.send(trial_started("giulia")).await;
    let now = Timestamp::now();
    journeys.step(now).await.unwrap();
    let held = journeys.runs("held", None, None, 10).await.unwrap();
    assert_eq!(held[0].status, RunStatus::Active);
    assert!(held[0].wake_at.is_some_and(|at| at > now), "{held:?}");
    let ended = journeys.runs("ended", None, None, 10).await.unwrap();
    assert_eq!(
        (ended[0].status, ended[0].exit_reason.as_deref()),
        (RunStatus::Exited, Some("message retired"))
    );
    assert!(world.decisions().await.is_empty(), "nothing decided");

    // Still paused a minute on: still held.
    let later = now + SignedDuration::from_secs(61);
    journeys.step(later).await.unwrap();
    assert!(world.decisions().await.is_empty());
    // Resumed: it goes out at the next look.
    messages
        .set_status("trial-ending", Status::Active, edit)
        .await
        .unwrap();
    journeys
        .step(later + SignedDuration::from_secs(61))
        .await
        .unwrap();
    let decisions = world.decisions().await;
    assert_eq!(decisions.len(), 1);
    assert_eq!(
        (
            decisions[0].decision.message.as_str(),
            decisions[0].decision.outcome.as_str()
        ),
        ("trial-ending", "send")
    );
    let held = journeys.runs("held", None, None, 10).await.unwrap();
    assert_eq!(held[0].status, RunStatus::Completed);
}

/// Found by the soak: while events kept arriving, a step kept reading them and never
/// reached the timers, so a waiting run never moved on under continuous ingestion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journeys_timers_fire_while_events_keep_arriving() {
    let world = World::new().await;
    let journeys = world
        .journeys(&[trial_ending_message()], &[trial_ending_journey("email")])
        .await;
    world.send(trial_started("giulia")).await;
    let now = Timestamp::now();
    journeys.step(now).await.unwrap();
    assert!(world.decisions().await.is_empty(), "still waiting");

    // Other people's events, straight into the log as fast as it takes them (faster
    // than the identity projection reads them), until the step is over.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let senders: Vec<_> = (0..2)
        .map(|s| {
            let (store, stop) = (world.store.clone(), stop.clone());
            tokio::spawn(async move {
                let context = IntakeContext::new(Timestamp::now(), "test");
                let mut batch = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let events = (0..2_000)
                        .map(|i| {
                            let id = format!("v-{s}-{batch}-{i}");
                            let message =
                                json!({"type": "page", "anonymousId": id, "messageId": id});
                            normalise(
                                message.as_object().unwrap().clone(),
                                &context,
                                || unreachable!(),
                            )
                            .unwrap()
                        })
                        .collect();
                    store
                        .append(&AppendBatch {
                            events,
                            ..Default::default()
                        })
                        .await
                        .unwrap();
                    batch += 1;
                }
                batch
            })
        })
        .collect();
    // The step begins with the log running ahead of the projections.
    let mut committed = world.store.committed();
    let ahead = *committed.borrow() + 20_000;
    committed.wait_for(|head| *head >= ahead).await.unwrap();
    let later = now + SignedDuration::from_mins(61);
    let stepped =
        tokio::time::timeout(std::time::Duration::from_secs(60), journeys.step(later)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut batches = 0;
    for sender in senders {
        batches += sender.await.unwrap();
    }
    stepped
        .expect("the step never reached the timers while events arrived")
        .unwrap();
    assert!(batches > 0);
    let decisions = world.decisions().await;
    assert_eq!(decisions.len(), 1, "the timer fired once");
    assert_eq!(decisions[0].decision.outcome.as_str(), "send");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insight_is_raised_for_the_department_and_counts_towards_no_cap() {
    let world = World::new().await;
    let insights = Insights::open(
        world.identity.clone(),
        world.store.clone(),
        &[
            serde_json::from_value(json!({"name": "detractors", "department": "care",
            "when": "event.name == 'Survey Answered' && event.properties.nps <= 6",
            "webhook": "care-desk"}))
            .unwrap(),
        ],
        Destinations {
            webhooks: vec!["care-desk".into()],
            email: false,
        },
    )
    .await
    .unwrap();
    world
        .send(vec![
            json!({"type": "track", "userId": "ada", "event": "Survey Answered",
                "properties": {"nps": 4}}),
            json!({"type": "track", "userId": "ada", "event": "Survey Answered",
                "properties": {"nps": 9}}),
        ])
        .await;
    let now = Timestamp::now();
    insights.step(now).await.unwrap();
    let decisions = world.decisions().await;
    assert_eq!(decisions.len(), 1, "one unhappy answer: {decisions:?}");
    assert_eq!(decisions[0].decision.purpose, INSIGHT_PURPOSE);
    // Read again, the log raises nothing twice: the cursor moved with the decision.
    insights.step(now).await.unwrap();
    assert_eq!(world.decisions().await.len(), 1);
    let gate = Gate::new(daytime_policies(), world.store.clone());
    assert!(gate.history(Vec::new(), now).await.unwrap().is_empty());
}
