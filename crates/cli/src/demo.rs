//! `unavoce demo`: a realistic demo company, built in a fresh data folder and served.
//!
//! "Voce Telecom" sells broadband and mobile lines through a web shop, an app, stores,
//! a call center, chat, WhatsApp and social channels. Its customers leave traces on
//! all of them: visits, purchases, calls, cases opened and resolved, surveys, campaign
//! e-mails, router alarms. Everything is ingested through the same intake as live data.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};
use unavoce_core::{ChannelKind, Presence, Touchpoint, TouchpointStatus};
use unavoce_intake::{Intake, Item, ItemBody, Submission};
use unavoce_store::{SqliteLog, SqliteOptions};
use unavoce_synthetic::{FIRST_NAMES, LAST_NAMES, typo};

use unavoce_platform::{Blueprint, ReadSide};

use crate::config::Config;
use crate::keys;
use crate::serve::{Setup, serve};

#[derive(Args)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Data folder for the demo; rebuilt on every run.
    #[arg(long, default_value = "./unavoce-demo-data")]
    data: PathBuf,
    /// Number of customers.
    #[arg(long, default_value_t = 3000)]
    customers: usize,
    /// Build the data and exit without serving.
    #[arg(long)]
    no_serve: bool,
}

const MARKER: &str = ".unavoce-demo";

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    prepare_folder(&args.data)?;
    let touchpoints = touchpoints();
    let mailbox = std::path::absolute(args.data.join("mailbox"))?;
    let config = Config {
        touchpoints: touchpoints.clone(),
        segments: segments(),
        journeys: journeys()?,
        messages: messages()?,
        subscriptions: subscriptions()?,
        delivery: delivery(&mailbox),
        ..Config::default()
    };
    std::fs::write(
        args.data.join("unavoce.toml"),
        toml::to_string(&DemoConfig {
            delivery: &config.delivery,
            messages: &config.messages,
            segments: &config.segments,
            journeys: &config.journeys,
            subscriptions: &config.subscriptions,
            touchpoints: &touchpoints,
        })?,
    )?;

    let started = std::time::Instant::now();
    let log = std::sync::Arc::new(SqliteLog::open(
        &args.data,
        SqliteOptions {
            durability: unavoce_store::Durability::Normal,
            ..SqliteOptions::default()
        },
    )?);
    let intake = Intake::new(log.clone()).with_touchpoints(&touchpoints);
    let messages = generate(args.customers, Timestamp::now(), 7);
    let mut stored = 0;
    let mut quarantined = 0;
    for chunk in messages.chunks(1000) {
        let report = intake
            .ingest(Submission {
                source: "demo",
                received_at: Timestamp::now(),
                endpoint_type: None,
                default_touchpoint: None,
                envelope: None,
                items: chunk
                    .iter()
                    .map(|m| Item {
                        body: ItemBody::Parsed(m.clone()),
                        origin: json!({"endpoint": "demo"}),
                    })
                    .collect(),
            })
            .await?;
        stored += report.accepted;
        quarantined += report.rejected.len();
    }
    // Store forms that share no identifier with a web account: matched on their traits.
    let ReadSide {
        identity, reports, ..
    } = ReadSide::open(
        log.clone(),
        &Blueprint {
            identity: demo_identity_rules()?,
            computed: std::sync::Arc::new(config.computed_traits()),
            touchpoints: touchpoints.clone(),
            ..Blueprint::defaults("http://demo.invalid")?
        },
    )
    .await?;
    let matching = identity
        .run_matching()
        .await
        .map_err(|e| anyhow::anyhow!("matching failed: {e}"))?;
    let engagement =
        unavoce_engagement::Engagement::new(identity.clone(), log.clone(), config.policies()?);
    let promotion = engagement
        .broadcast(
            &unavoce_engagement::Broadcast {
                message: "tv-sport-launch".into(),
                audience: unavoce_core::audience::Audience::parse("stage != 'lapsed'")?,
                purpose: "promotional".into(),
                channel: "auto".into(),
                optimise_send_time: false,
                dry_run: true,
                list_limit: 0,
                renders: Vec::new(),
            },
            Timestamp::now(),
        )
        .await?;
    // A real one, by e-mail, to those who may receive offers now: the outbox holds it
    // until the server starts, then the e-mails land in the mailbox folder.
    let offer = engagement
        .broadcast(
            &unavoce_engagement::Broadcast {
                message: "tv-sport-launch".into(),
                audience: unavoce_core::audience::Audience::parse(
                    "consents.promotional && open_cases == 0",
                )?,
                purpose: "promotional".into(),
                channel: "email".into(),
                optimise_send_time: false,
                dry_run: false,
                list_limit: 0,
                renders: vec!["email"],
            },
            Timestamp::now(),
        )
        .await?;
    let mut sizes = Vec::new();
    for segment in &config.segments {
        let audience = unavoce_core::audience::Audience::parse(&segment.expression)?;
        let members = reports.audience(&audience, Timestamp::now()).await?;
        sizes.push(format!("{} {}", segment.name, members.members.len()));
    }
    let census = reports.census(Default::default(), None).await?;
    let kpis = reports.kpis(Default::default(), None).await?;
    unavoce_store::EventLog::close(&*log).await;
    println!(
        "Built the Voce Telecom demo in {:.1}s: {} touchpoints, {} customers, {stored} events, {quarantined} quarantined messages.",
        started.elapsed().as_secs_f64(),
        touchpoints.len(),
        args.customers,
    );
    println!(
        "Matching linked {} store forms to web profiles automatically; {} possible matches await review.",
        matching.linked_automatically, matching.queued_for_review
    );
    print_headlines(&kpis, &census);
    let count = |map: &std::collections::BTreeMap<String, u64>, key: &str| {
        map.get(key).copied().unwrap_or(0)
    };
    println!(
        "A promotional broadcast (dry run) would go to {} of {} customers now ({} held for quiet hours); {} are held back: {} with no channel they consented to offers on, {} with an open case.",
        count(&promotion.outcomes, "send") + count(&promotion.outcomes, "hold"),
        promotion.audience,
        count(&promotion.outcomes, "hold"),
        count(&promotion.outcomes, "suppress"),
        count(&promotion.reasons, "no_consent") + count(&promotion.reasons, "no_channel"),
        count(&promotion.reasons, "suppressed"),
    );
    println!(
        "The offer by e-mail: {} to send now, {} held for quiet hours, {} held back by the gate; once served they land in {} (one .eml each; see GET /api/outbox/summary).",
        count(&offer.outcomes, "send"),
        count(&offer.outcomes, "hold"),
        count(&offer.outcomes, "suppress"),
        mailbox.display(),
    );
    println!(
        "Customer care gets a digest every minute of customers whose case has been open over 48 hours, and of NPS answers of 6 or less (to care-lead@voce.example, in the same folder)."
    );
    println!(
        "Segments kept current as events arrive: {}. Journeys: {} (they start on events from now on).",
        sizes.join(", "),
        config
            .journeys
            .iter()
            .map(|j| j.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if args.no_serve {
        return Ok(());
    }
    let keys = keys::resolve(&args.data, None, None)?;
    let banner = guide(&args.listen, &keys.write_key, &keys.admin_key);
    serve(Setup {
        config,
        data: args.data,
        listen: args.listen,
        keys,
        banner: Some(banner),
    })
    .await
}

/// The demo's config file: what it shows a newcomer, ready to edit.
#[derive(serde::Serialize)]
struct DemoConfig<'a> {
    delivery: &'a unavoce_delivery::DeliveryConfig,
    messages: &'a [unavoce_core::message::MessageConfig],
    segments: &'a [unavoce_projections::SegmentDefinition],
    journeys: &'a [unavoce_core::journey::JourneyConfig],
    subscriptions: &'a [unavoce_core::subscription::SubscriptionConfig],
    touchpoints: &'a [Touchpoint],
}

/// The demo's delivery: e-mail into a folder (no mail server needed to look at them).
fn delivery(mailbox: &Path) -> unavoce_delivery::DeliveryConfig {
    unavoce_delivery::DeliveryConfig {
        email: Some(unavoce_delivery::config::SmtpConfig {
            folder: Some(mailbox.to_path_buf()),
            from: "Voce Telecom <news@voce.example>".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Customer care's subscriptions: cases stuck over 48 hours, and detractors.
fn subscriptions() -> anyhow::Result<Vec<unavoce_core::subscription::SubscriptionConfig>> {
    Ok(serde_json::from_value(json!([
        {
            "name": "stuck-cases",
            "department": "customer-care",
            "description": "a case open for more than 48 hours",
            "segment": "open-over-48h",
            "digest": "care-lead@voce.example",
            "every": "1m"
        },
        {
            "name": "detractors",
            "department": "customer-care",
            "description": "an NPS answer of 6 or less",
            "when": "event.name == 'Survey Answered' && event.properties.nps <= 6",
            "digest": "care-lead@voce.example",
            "every": "1m"
        }
    ]))?)
}

/// Segments a telecom's teams would keep: customers with a problem, those who want
/// offers, loyal ones.
fn segments() -> Vec<unavoce_projections::SegmentDefinition> {
    [
        (
            "open-problem",
            "open_cases > 0",
            "Customers with an open case: service first",
        ),
        (
            "promotable",
            "consents.promotional && open_cases == 0",
            "May receive offers now",
        ),
        ("loyal", "stage == 'loyal'", "Three purchases or more"),
        (
            "open-over-48h",
            "open_case_hours > 48",
            "A case open for more than two days",
        ),
    ]
    .into_iter()
    .map(
        |(name, expression, description)| unavoce_projections::SegmentDefinition {
            name: name.into(),
            expression: expression.into(),
            description: Some(description.into()),
        },
    )
    .collect()
}

/// The messages the demo's broadcast and journey send, each in every channel's style.
fn messages() -> anyhow::Result<Vec<unavoce_core::message::MessageConfig>> {
    Ok(serde_json::from_value(json!([
        {
            "id": "how-did-we-do",
            "description": "Asked a day after a case is resolved",
            "email": {
                "subject": "{{ first_name | default('Hello') }}, did we solve it?",
                "html": "<p>Dear {{ name | default('customer') }},</p><p>yesterday we closed your request. Did we solve it? Answer in one click.</p>",
                "text": "Dear {{ name | default('customer') }}, yesterday we closed your request. Did we solve it? Answer in one click."
            },
            "sms": {"text": "Voce Telecom: did we solve your request? Reply YES or NO.", "max_segments": 1},
            "whatsapp": {"text": "Hi {{ first_name | default('there') }}! We closed your request yesterday: all sorted?",
                "buttons": ["All sorted", "Not yet"]},
            "call_task": {"summary": "Call {{ name | default(profile_id) }}: check the resolved case really is solved"}
        },
        {
            "id": "tv-sport-launch",
            "description": "The sport TV package launch",
            "email": {
                "subject": "{{ first_name | default('New') }}: all the football, on your line",
                "html": "<p>Voce TV Sport is here: every match, no dish, from EUR 9.99 a month.</p>",
                "text": "Voce TV Sport is here: every match, no dish, from EUR 9.99 a month."
            },
            "sms": {"text": "Voce TV Sport: every match on your line from EUR 9.99/month. Info: voce.example/sport", "max_segments": 1},
            "push": {"title": "Voce TV Sport is here", "body": "Every match on your line, from EUR 9.99 a month."}
        }
    ]))?)
}

/// A journey after every resolved case: a day later, ask how it went; the goal is a
/// survey answer, and one customer in ten is held out to measure what asking adds.
fn journeys() -> anyhow::Result<Vec<unavoce_core::journey::JourneyConfig>> {
    Ok(vec![serde_json::from_value(json!({
        "name": "case-follow-up",
        "trigger": {"event": "Case Resolved"},
        "exit_when": "open_cases > 0",
        "goal": {"event": "Survey Answered", "within": "7d"},
        "control_percent": 10,
        "steps": [
            {"type": "wait", "duration": "1d"},
            {"type": "send", "message": "how-did-we-do", "purpose": "service"},
        ],
    }))?])
}

/// Makes `dir` an empty demo folder; refuses to wipe a folder the demo did not create.
fn prepare_folder(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        if !dir.join(MARKER).exists() {
            bail!(
                "{} exists and was not made by `unavoce demo`; pass --data with a new folder",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot clear the old demo folder {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "made by `unavoce demo`; rebuilt on every run\n",
    )?;
    Ok(())
}

/// What the reports say about the demo company, in a few lines.
fn print_headlines(
    kpis: &unavoce_core::analytics::kpis::KpiReport,
    census: &unavoce_core::analytics::census::Census,
) {
    let mut busiest: Vec<_> = kpis.touchpoints.iter().collect();
    busiest.sort_by_key(|k| std::cmp::Reverse(k.reach));
    let top: Vec<String> = busiest
        .iter()
        .take(3)
        .map(|k| {
            format!(
                "{} ({:.0}% of customers)",
                k.touchpoint.as_deref().unwrap_or("?"),
                k.share_of_customers.unwrap_or(0.0) * 100.0
            )
        })
        .collect();
    println!("Most used touchpoints: {}.", top.join(", "));
    println!(
        "The channel census finds {} uncovered needs, {} unregistered channels and makes {} recommendations, e.g.:",
        census.uncovered_needs.len(),
        census.unregistered_channels.len(),
        census.recommendations.len()
    );
    for r in census.recommendations.iter().take(3) {
        println!("  - {}", r.text);
    }
}

fn guide(listen: &str, write_key: &str, admin_key: &str) -> String {
    format!(
        r#"
Try it:
  curl -s -H "Authorization: Bearer {admin_key}" http://{listen}/api/stats
  curl -s -H "Authorization: Bearer {admin_key}" "http://{listen}/api/events?user_id=cust-00042&limit=5"
  curl -s -H "Authorization: Bearer {admin_key}" "http://{listen}/api/quarantine?limit=3"
  curl -s -H "Authorization: Bearer {admin_key}" "http://{listen}/api/profiles/lookup?email=customer42@example.com"
  curl -s -H "Authorization: Bearer {admin_key}" http://{listen}/api/identity/review
  curl -s -H "Authorization: Bearer {admin_key}" http://{listen}/api/touchpoints
  curl -s -H "Authorization: Bearer {admin_key}" http://{listen}/api/census
  curl -s -H "Authorization: Bearer {admin_key}" "http://{listen}/api/kpis/touchpoints?from=2020-01-01"
  curl -s -H "Authorization: Bearer {admin_key}" "http://{listen}/api/journeys/paths?steps=3"
  curl -s -H "Authorization: Bearer {admin_key}" http://{listen}/api/journeys/funnel
  unavoce census --data ./unavoce-demo-data        (also: kpis, journeys paths|funnel|attribution)
  curl -s -H "Authorization: Bearer {admin_key}" http://{listen}/api/segments
  curl -s -H "Authorization: Bearer {admin_key}" http://{listen}/api/journeys/case-follow-up
  curl -s -H "Authorization: Bearer {admin_key}" "http://{listen}/api/messages/how-did-we-do/preview?profile_id=p-1"
  curl -s -H "Authorization: Bearer {admin_key}" http://{listen}/api/broadcasts -H 'Content-Type: application/json' \
       -d '{{"message":"tv-sport-launch","audience":"stage != \"lapsed\"","purpose":"promotional","dry_run":true}}'

  curl -s -H "Authorization: Bearer {admin_key}" http://{listen}/api/outbox/summary
  curl -s -H "Authorization: Bearer {admin_key}" http://{listen}/api/subscriptions
  ls ./unavoce-demo-data/mailbox        (the offer's e-mails, and customer care's digests)

  curl -s -u {write_key}: http://{listen}/v1/track -H 'Content-Type: application/json' \
       -d '{{"userId":"cust-00042","event":"Pricing Viewed","context":{{"touchpoint":"web-shop"}}}}'
  curl -s -u {write_key}: http://{listen}/v1/track -H 'Content-Type: application/json' \
       -d '{{"userId":"cust-00042","event":"Survey Answered","properties":{{"nps":3}}}}'
       (customer care's next digest names them)
Press Ctrl-C to stop."#
    )
}

fn touchpoint(
    id: &str,
    name: &str,
    channel: ChannelKind,
    department: &str,
    needs: &[&str],
    status: TouchpointStatus,
    cost: Option<f64>,
) -> Touchpoint {
    Touchpoint {
        id: id.into(),
        name: name.into(),
        channel,
        presence: None,
        department: department.into(),
        needs: needs.iter().map(|n| n.to_string()).collect(),
        status,
        cost_per_interaction: cost,
        capacity: None,
    }
}

/// The demo company's touchpoints: at least one of every channel kind.
pub fn touchpoints() -> Vec<Touchpoint> {
    use ChannelKind::*;
    use TouchpointStatus::*;
    let mut list = vec![
        touchpoint(
            "web-shop",
            "voce.example web shop",
            Web,
            "sales",
            &["information", "purchase"],
            Active,
            Some(0.05),
        ),
        touchpoint(
            "self-care-app",
            "Voce app",
            App,
            "digital",
            &["information", "support", "billing"],
            Active,
            Some(0.03),
        ),
        touchpoint(
            "newsletter",
            "Monthly newsletter",
            Email,
            "marketing",
            &["information"],
            Active,
            Some(0.002),
        ),
        touchpoint(
            "service-email",
            "Service e-mail",
            Email,
            "support",
            &["support", "billing"],
            Active,
            Some(0.01),
        ),
        touchpoint(
            "sms-alerts",
            "SMS alerts",
            Sms,
            "support",
            &["information"],
            Active,
            Some(0.06),
        ),
        touchpoint(
            "whatsapp-business",
            "WhatsApp Business",
            Whatsapp,
            "support",
            &["support", "post-sale"],
            Active,
            Some(0.08),
        ),
        touchpoint(
            "rcs-offers",
            "RCS offers",
            Rcs,
            "marketing",
            &["information"],
            Planned,
            None,
        ),
        touchpoint(
            "app-push",
            "App notifications",
            Push,
            "marketing",
            &["information"],
            Active,
            Some(0.001),
        ),
        touchpoint(
            "call-center-milan",
            "Call center, Milan",
            Phone,
            "support",
            &["support", "complaint", "billing"],
            Active,
            Some(4.5),
        ),
        touchpoint(
            "live-chat",
            "Live chat",
            Chat,
            "support",
            &["support", "information"],
            Active,
            Some(1.2),
        ),
        touchpoint(
            "virtual-assistant",
            "Virtual assistant",
            Chatbot,
            "digital",
            &["information", "support"],
            Active,
            Some(0.1),
        ),
        touchpoint(
            "instagram",
            "Instagram",
            Social,
            "marketing",
            &["information"],
            Active,
            None,
        ),
        touchpoint(
            "facebook",
            "Facebook page",
            Social,
            "marketing",
            &["information", "complaint"],
            Active,
            None,
        ),
        touchpoint(
            "store-rome-01",
            "Store Rome, Via del Corso",
            Store,
            "retail",
            &["purchase", "support", "post-sale"],
            Active,
            Some(6.0),
        ),
        touchpoint(
            "store-milan-02",
            "Store Milan, Corso Buenos Aires",
            Store,
            "retail",
            &["purchase", "support", "post-sale"],
            Active,
            Some(6.0),
        ),
        touchpoint(
            "kiosk-roma-termini",
            "Kiosk, Roma Termini",
            Kiosk,
            "retail",
            &["information", "purchase"],
            Active,
            Some(0.5),
        ),
        touchpoint(
            "store-signage",
            "In-store screens",
            Signage,
            "marketing",
            &["information"],
            Active,
            None,
        ),
        touchpoint(
            "smart-router",
            "Voce smart router",
            Iot,
            "network",
            &[],
            Active,
            None,
        ),
        touchpoint(
            "business-fax",
            "Business fax line",
            Fax,
            "sales",
            &["purchase"],
            Retired,
            None,
        ),
        touchpoint(
            "field-sales",
            "Business field sales",
            SalesRep,
            "sales",
            &["purchase", "post-sale"],
            Active,
            Some(25.0),
        ),
        touchpoint(
            "nps-survey",
            "NPS and CSAT surveys",
            Survey,
            "customer-experience",
            &["complaint"],
            Active,
            Some(0.02),
        ),
        touchpoint(
            "technician-booking",
            "Online technician booking",
            Web,
            "network",
            &["installation", "post-sale"],
            Planned,
            None,
        ),
        touchpoint(
            "other-partners",
            "Partner resellers",
            Other,
            "sales",
            &["purchase"],
            Active,
            None,
        ),
    ];
    for t in &mut list {
        if t.channel == Iot {
            t.presence = Some(Presence::Physical);
        }
    }
    list
}

struct Customer {
    user_id: String,
    email: String,
    phone: String,
    loyalty_id: String,
    first_name: &'static str,
    last_name: &'static str,
    city: &'static str,
    store: &'static str,
    birth_date: String,
    postcode: String,
}

const CITIES: [(&str, &str); 4] = [
    ("Roma", "store-rome-01"),
    ("Milano", "store-milan-02"),
    ("Torino", "store-milan-02"),
    ("Napoli", "store-rome-01"),
];
const PRODUCTS: [(&str, &str, f64); 6] = [
    ("fibra-1g", "broadband", 29.9),
    ("mobile-100gb", "mobile", 9.9),
    ("router-wifi7", "devices", 149.0),
    ("tv-sport", "tv", 19.9),
    ("phone-a55", "devices", 379.0),
    ("insurance", "services", 4.9),
];

/// The demo's identity rules: the defaults, with a wider review band so that a
/// newcomer finds possible matches to decide.
fn demo_identity_rules() -> anyhow::Result<std::sync::Arc<unavoce_core::identity::IdentityRules>> {
    let mut config = unavoce_core::identity::IdentityConfig::default();
    config.matching.lower = DEMO_REVIEW_FROM;
    Ok(unavoce_core::identity::IdentityRules::new(config)?)
}

const DEMO_REVIEW_FROM: f64 = 0.05;

/// Generates the demo's messages, oldest first, deterministically from `seed`.
pub fn generate(customers: usize, now: Timestamp, seed: u64) -> Vec<Map<String, Value>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out: Vec<(Timestamp, Map<String, Value>)> = Vec::new();
    let mut push = |at: Timestamp, value: Value| {
        if let Value::Object(mut m) = value {
            m.insert("timestamp".into(), at.to_string().into());
            out.push((at, m));
        }
    };
    for n in 1..=customers {
        let (city, store) = CITIES[rng.usize(..CITIES.len())];
        let c = Customer {
            user_id: format!("cust-{n:05}"),
            email: format!("customer{n}@example.com"),
            phone: format!("+39 3{:02} {:07}", rng.u32(20..99), rng.u32(0..10_000_000)),
            loyalty_id: format!("L{:08}", n * 7919 % 100_000_000),
            first_name: FIRST_NAMES[rng.usize(..FIRST_NAMES.len())],
            last_name: LAST_NAMES[rng.usize(..LAST_NAMES.len())],
            city,
            store,
            birth_date: format!(
                "{}-{:02}-{:02}",
                rng.u32(1950..2004),
                rng.u32(1..13),
                rng.u32(1..29)
            ),
            postcode: format!("{:05}", rng.u32(100..99_000)),
        };
        let ago = |rng: &mut fastrand::Rng, max_days: i64| {
            now - SignedDuration::from_secs(rng.i64(3600..max_days * 86_400))
        };
        let signup = ago(&mut rng, 90);
        let anon = format!("anon-{n:05}-{}", rng.u32(1000..9999));
        // Anonymous browsing, then sign-up on the web.
        for page in ["Home", "Offers", "Fibra 1 Gbit", "Pricing"]
            .iter()
            .take(rng.usize(1..5))
        {
            let at = signup - SignedDuration::from_mins(rng.i64(5..600));
            push(
                at,
                json!({"type": "page", "anonymousId": anon, "name": page,
                "context": {"touchpoint": "web-shop", "library": {"name": "analytics.js"}}}),
            );
        }
        push(
            signup,
            json!({"type": "identify", "userId": c.user_id, "anonymousId": anon,
            "traits": {"email": c.email, "phone": c.phone, "firstName": c.first_name,
                "lastName": c.last_name, "city": c.city, "loyalty_id": c.loyalty_id,
                "birthDate": c.birth_date, "postcode": c.postcode},
            "context": {"touchpoint": "web-shop"}}),
        );
        // Some fill in a paper form at the store too: no identifier the web knows, only
        // details typed by staff, sometimes with a typo. Matching links them.
        if rng.f32() < 0.08 {
            let last_name = if rng.bool() {
                c.last_name.to_string()
            } else {
                typo(&mut rng, c.last_name)
            };
            // A quarter of the forms also get the day of birth wrong: harder to match.
            let birth_date = if rng.f32() < 0.25 {
                format!("{}{:02}", &c.birth_date[..8], rng.u32(1..29))
            } else {
                c.birth_date.clone()
            };
            // A fifth leave everything but the name and the city blank: a person must judge.
            let traits = if rng.f32() < 0.2 {
                json!({"firstName": c.first_name, "lastName": last_name, "city": c.city})
            } else {
                json!({"firstName": c.first_name, "lastName": last_name, "birthDate": birth_date,
                    "postcode": c.postcode, "city": c.city})
            };
            push(
                ago(&mut rng, 60),
                json!({"type": "identify", "anonymousId": format!("form-{n:05}"), "traits": traits,
                "context": {"touchpoint": c.store, "channel": "store"}}),
            );
        }
        let (sku, category, price) = PRODUCTS[rng.usize(..2)];
        push(
            signup + SignedDuration::from_mins(3),
            json!({"type": "track", "userId": c.user_id,
            "event": "Order Completed", "properties": {"order_id": format!("W{n:06}"),
            "revenue": price, "currency": "EUR", "products": [{"sku": sku, "category": category}]},
            "context": {"touchpoint": "web-shop"}}),
        );
        // Consent asked at sign-up; some later withdraw it for SMS.
        push(
            signup + SignedDuration::from_mins(1),
            json!({"type": "track", "userId": c.user_id,
            "event": "Consent Given", "properties": {"purpose": "service"},
            "context": {"touchpoint": "web-shop"}}),
        );
        if rng.f32() < 0.7 {
            push(
                signup + SignedDuration::from_mins(1),
                json!({"type": "track", "userId": c.user_id,
                "event": "Consent Given", "properties": {"purpose": "promotional"},
                "context": {"touchpoint": "web-shop"}}),
            );
            if rng.f32() < 0.1 {
                push(
                    ago(&mut rng, 20),
                    json!({"type": "track", "userId": c.user_id,
                    "event": "Consent Withdrawn", "properties": {"purpose": "promotional", "channel": "sms"},
                    "context": {"touchpoint": "sms-alerts"}}),
                );
            }
        }
        // The app.
        if rng.f32() < 0.6 {
            let device = format!("dev-{:08x}", rng.u32(..));
            for _ in 0..rng.usize(1..6) {
                let at = ago(&mut rng, 80);
                push(
                    at,
                    json!({"type": "screen", "userId": c.user_id, "name": "Consumption",
                    "context": {"touchpoint": "self-care-app", "device": {"id": device, "type": "android"},
                    "library": {"name": "analytics-android"}}}),
                );
            }
            if rng.bool() {
                push(
                    ago(&mut rng, 60),
                    json!({"type": "track", "userId": c.user_id, "event": "Push Opened",
                    "properties": {"campaign": "tv-sport-launch"}, "context": {"touchpoint": "app-push"}}),
                );
            }
        }
        // Store purchases by loyalty card.
        for _ in 0..rng.usize(0..3) {
            let (sku, category, price) = PRODUCTS[rng.usize(..PRODUCTS.len())];
            let at = ago(&mut rng, 85);
            push(
                at,
                json!({"type": "track", "userId": c.user_id, "event": "Order Completed",
                "traits": {"loyalty_id": c.loyalty_id},
                "properties": {"order_id": format!("S{}", rng.u32(..)), "revenue": price, "currency": "EUR",
                    "products": [{"sku": sku, "category": category}]},
                "context": {"touchpoint": c.store, "channel": "store"}}),
            );
        }
        // Campaign e-mails.
        for campaign in ["spring-offers", "tv-sport-launch"] {
            let at = ago(&mut rng, 60);
            push(
                at,
                json!({"type": "track", "userId": c.user_id, "event": "Email Sent",
                "properties": {"campaign": campaign}, "context": {"touchpoint": "newsletter"}}),
            );
            if rng.f32() < 0.4 {
                push(
                    at + SignedDuration::from_mins(rng.i64(5..2000)),
                    json!({"type": "track",
                    "userId": c.user_id, "event": "Email Opened", "properties": {"campaign": campaign},
                    "context": {"touchpoint": "newsletter"}}),
                );
            }
        }
        // A line outage for some: router alarm, a call, a case, maybe chat and WhatsApp follow-ups.
        if rng.f32() < 0.15 {
            let down = ago(&mut rng, 45);
            let case_id = format!("CASE-{n:05}");
            push(
                down,
                json!({"type": "track", "userId": c.user_id, "event": "Line Down",
                "context": {"touchpoint": "smart-router"}}),
            );
            let call = down + SignedDuration::from_mins(rng.i64(10..240));
            if rng.f32() < 0.4 {
                // The first try hung up in the queue.
                push(
                    call - SignedDuration::from_mins(rng.i64(3..9)),
                    json!({"type": "track", "userId": c.user_id, "event": "Call Abandoned",
                    "properties": {"wait_seconds": rng.u32(300..1500)},
                    "context": {"touchpoint": "call-center-milan"}}),
                );
            }
            push(
                call,
                json!({"type": "track", "userId": c.user_id, "event": "Call Received",
                "properties": {"wait_seconds": rng.u32(30..1500), "reason": "outage"},
                "traits": {"phone": c.phone}, "context": {"touchpoint": "call-center-milan"}}),
            );
            push(
                call + SignedDuration::from_mins(6),
                json!({"type": "track", "userId": c.user_id,
                "event": "Case Opened", "properties": {"case_id": case_id, "subject": "Internet outage",
                "category": "network"}, "context": {"touchpoint": "call-center-milan"}}),
            );
            let followups = ["live-chat", "whatsapp-business", "store-rome-01"];
            for tp in followups.iter().take(rng.usize(0..3)) {
                push(
                    call + SignedDuration::from_hours(rng.i64(2..40)),
                    json!({"type": "track",
                    "userId": c.user_id, "event": "Case Updated", "properties": {"case_id": case_id,
                    "note": "customer asked for news"}, "context": {"touchpoint": tp}}),
                );
            }
            if rng.f32() < 0.7 {
                let fixed = call + SignedDuration::from_hours(rng.i64(4..72));
                push(
                    fixed,
                    json!({"type": "track", "userId": c.user_id, "event": "Case Resolved",
                    "properties": {"case_id": case_id}, "context": {"touchpoint": "call-center-milan"}}),
                );
                push(
                    fixed + SignedDuration::from_hours(2),
                    json!({"type": "track", "userId": c.user_id,
                    "event": "Survey Answered", "properties": {"case_id": case_id,
                    "csat": rng.u8(1..6), "nps": rng.u8(0..11), "about_touchpoint": "call-center-milan"},
                    "context": {"touchpoint": "nps-survey"}}),
                );
            }
        }
        // Ads on Instagram and tickets at the station kiosk for a few.
        if rng.f32() < 0.1 {
            push(
                ago(&mut rng, 70),
                json!({"type": "track", "userId": c.user_id, "event": "Ad Clicked",
                "properties": {"campaign": "tv-sport-launch"}, "context": {"touchpoint": "instagram"}}),
            );
        }
        if rng.f32() < 0.04 {
            push(
                ago(&mut rng, 70),
                json!({"type": "track", "userId": c.user_id, "event": "Ticket Printed",
                "traits": {"loyalty_id": c.loyalty_id}, "context": {"touchpoint": "kiosk-roma-termini"}}),
            );
        }
        // Chatbot, social and kiosk contacts for a few.
        if rng.f32() < 0.2 {
            push(
                ago(&mut rng, 70),
                json!({"type": "track", "userId": c.user_id, "event": "Chat Started",
                "properties": {"topic": "billing"}, "context": {"touchpoint": "virtual-assistant"}}),
            );
        }
        if rng.f32() < 0.1 {
            push(
                ago(&mut rng, 70),
                json!({"type": "track", "userId": c.user_id, "event": "Comment Posted",
                "properties": {"sentiment": "negative"}, "context": {"touchpoint": "facebook"}}),
            );
        }
        if rng.f32() < 0.05 {
            push(
                ago(&mut rng, 30),
                json!({"type": "track", "userId": c.user_id, "event": "Message Received",
                "context": {"touchpoint": "telegram-bot", "channel": "telegram"}}),
            );
        }
    }
    // A misconfigured kiosk sends events without any identity: they land in the quarantine.
    for i in 0..12 {
        push(
            now - SignedDuration::from_hours(i + 1),
            json!({"type": "track", "event": "Ticket Printed",
            "context": {"touchpoint": "kiosk-roma-termini"}}),
        );
    }
    out.sort_by_key(|(at, _)| *at);
    out.into_iter()
        .enumerate()
        .map(|(i, (_, mut m))| {
            m.insert("messageId".into(), format!("demo-{seed}-{i}").into());
            m
        })
        .collect()
}
