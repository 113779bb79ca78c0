//! The Voce Telecom demo company, built in a fresh data folder for `unavoce demo`.
//!
//! "Voce Telecom" sells broadband and mobile lines through a web shop, an app, stores,
//! a call center, chat, WhatsApp and social channels. Its customers leave traces on
//! all of them: visits, purchases, calls, cases opened and resolved, surveys, campaign
//! e-mails, router alarms. Everything is ingested through the same intake as live data.

mod company;
mod customers;

use std::path::Path;

use anyhow::{Context, bail};
use jiff::Timestamp;
use serde_json::json;
use unavoce_core::Touchpoint;
use unavoce_core::policy::Policies;
use unavoce_intake::{Intake, Item, ItemBody, Submission};
use unavoce_platform::{Blueprint, ReadSide};
use unavoce_store::{SqliteLog, SqliteOptions};

pub use company::{Company, identity_rules, touchpoints};
pub use customers::generate;

const MARKER: &str = ".unavoce-demo";

/// Builds the demo company in the fresh folder `data` (refusing to wipe a folder it did
/// not create): its configuration file, `customers` customers' histories through the
/// intake, matching, a dry-run promotion and a real offer by e-mail into the outbox;
/// prints what the reports find. Answers the company, to serve it.
pub async fn build(data: &Path, customers: usize) -> anyhow::Result<Company> {
    prepare_folder(data)?;
    let mailbox = std::path::absolute(data.join("mailbox"))?;
    let company = Company::new(&mailbox)?;
    let touchpoints = &company.touchpoints;
    std::fs::write(
        data.join("unavoce.toml"),
        toml::to_string(&DemoConfig {
            delivery: &company.delivery,
            messages: &company.messages,
            segments: &company.segments,
            journeys: &company.journeys,
            subscriptions: &company.subscriptions,
            touchpoints,
        })?,
    )?;

    let started = std::time::Instant::now();
    let log = std::sync::Arc::new(SqliteLog::open(
        data,
        SqliteOptions {
            durability: unavoce_store::Durability::Normal,
            ..SqliteOptions::default()
        },
    )?);
    let intake = Intake::new(log.clone()).with_touchpoints(touchpoints);
    let messages = generate(customers, Timestamp::now(), 7);
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
            identity: identity_rules()?,
            touchpoints: touchpoints.clone(),
            ..Blueprint::defaults("http://demo.invalid")?
        },
    )
    .await?;
    let matching = identity
        .run_matching()
        .await
        .map_err(|e| anyhow::anyhow!("matching failed: {e}"))?;
    let engagement = unavoce_engagement::Engagement::new(
        identity.clone(),
        log.clone(),
        unavoce_core::live::Live::new(std::sync::Arc::new(Policies::new(&Default::default())?)),
    );
    let promotion = engagement
        .broadcast(
            &unavoce_engagement::Broadcast {
                message: "tv-sport-launch".into(),
                audience: unavoce_core::audience::Audience::parse("stage != 'lapsed'")?,
                purpose: "promotional".into(),
                channel: "auto".into(),
                optimise_send_time: false,
                fallback_after: None,
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
                fallback_after: None,
                dry_run: false,
                list_limit: 0,
                renders: vec!["email"],
            },
            Timestamp::now(),
        )
        .await?;
    let mut sizes = Vec::new();
    for segment in &company.segments {
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
        customers,
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
        company
            .journeys
            .iter()
            .map(|j| j.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(company)
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

/// What to try once the demo is served: where, with which keys.
pub fn guide(listen: &str, write_key: &str, admin_key: &str) -> String {
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
