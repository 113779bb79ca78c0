//! The Voce Telecom company: its touchpoints, segments, messages, journeys, department
//! subscriptions, delivery and identity rules.

use std::path::Path;

use serde_json::json;
use unavoce_core::journey::JourneyConfig;
use unavoce_core::message::MessageConfig;
use unavoce_core::subscription::SubscriptionConfig;
use unavoce_core::{ChannelKind, Presence, Touchpoint, TouchpointStatus};
use unavoce_delivery::DeliveryConfig;
use unavoce_projections::SegmentDefinition;

/// The demo company's definitions: what its configuration file holds.
#[derive(Debug, Clone)]
pub struct Company {
    pub touchpoints: Vec<Touchpoint>,
    pub segments: Vec<SegmentDefinition>,
    pub journeys: Vec<JourneyConfig>,
    pub messages: Vec<MessageConfig>,
    pub subscriptions: Vec<SubscriptionConfig>,
    pub delivery: DeliveryConfig,
}

impl Company {
    /// The company, its e-mail going into the folder `mailbox`.
    pub fn new(mailbox: &Path) -> anyhow::Result<Company> {
        Ok(Company {
            touchpoints: touchpoints(),
            segments: segments(),
            journeys: journeys()?,
            messages: messages()?,
            subscriptions: subscriptions()?,
            delivery: delivery(mailbox),
        })
    }
}

/// The demo's delivery: e-mail into a folder (no mail server needed to look at them).
pub fn delivery(mailbox: &Path) -> unavoce_delivery::DeliveryConfig {
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
pub fn subscriptions() -> anyhow::Result<Vec<unavoce_core::subscription::SubscriptionConfig>> {
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
pub fn segments() -> Vec<unavoce_projections::SegmentDefinition> {
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
pub fn messages() -> anyhow::Result<Vec<unavoce_core::message::MessageConfig>> {
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
pub fn journeys() -> anyhow::Result<Vec<unavoce_core::journey::JourneyConfig>> {
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

/// The demo's identity rules: the defaults, with a wider review band so that a
/// newcomer finds possible matches to decide.
pub fn identity_rules() -> anyhow::Result<std::sync::Arc<unavoce_core::identity::IdentityRules>> {
    let mut config = unavoce_core::identity::IdentityConfig::default();
    config.matching.lower = DEMO_REVIEW_FROM;
    Ok(unavoce_core::identity::IdentityRules::new(config)?)
}

const DEMO_REVIEW_FROM: f64 = 0.05;
