//! What the reports count: the goal event, the funnel stages, abandonment, the attribution
//! window and the census thresholds. Read from the `[analytics]` table of the config file.

use serde::Deserialize;

use crate::event::{Event, EventType};

/// Funnel stages at most (a stage is a bit of an interaction's stage mask).
pub const MAX_STAGES: usize = 8;

/// Which events an entry of a list matches: `Order Completed` (a track event's name,
/// case-insensitive), `page` / `screen` / `identify` (every call of that type), or
/// `page:Pricing` (a page or screen of that name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventMatcher {
    Named(String),
    Type(EventType),
    TypeNamed(EventType, String),
}

impl EventMatcher {
    /// Parses one entry; see the type's docs.
    pub fn parse(text: &str) -> Result<Self, AnalyticsRulesError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AnalyticsRulesError::EmptyMatcher);
        }
        if let Some((kind, name)) = text.split_once(':')
            && let Ok(kind) = kind.parse::<EventType>()
        {
            return Ok(EventMatcher::TypeNamed(kind, name.trim().to_string()));
        }
        match text.parse::<EventType>() {
            Ok(EventType::Track) => Err(AnalyticsRulesError::BareTrack),
            Ok(kind) => Ok(EventMatcher::Type(kind)),
            Err(_) => Ok(EventMatcher::Named(text.to_string())),
        }
    }

    /// Whether `event` is one of the events this entry names.
    pub fn matches(&self, event: &Event) -> bool {
        let named = |name: &str| {
            event
                .name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        };
        match self {
            EventMatcher::Named(name) => event.event_type == EventType::Track && named(name),
            EventMatcher::Type(kind) => event.event_type == *kind,
            EventMatcher::TypeNamed(kind, name) => event.event_type == *kind && named(name),
        }
    }
}

/// A numeric condition on an event property (`properties.nps >= 9`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyAtLeast {
    /// A property name under `properties`.
    pub property: String,
    pub at_least: f64,
}

/// One funnel stage, as configured.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    pub name: String,
    /// Events that show a person reached the stage (see [`EventMatcher`]).
    pub events: Vec<String>,
    /// An extra condition those events must meet.
    #[serde(default, rename = "where")]
    pub condition: Option<PropertyAtLeast>,
}

/// The `[analytics]` table of the config file; every field has a default.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyticsConfig {
    /// The events that count as a conversion.
    pub goal: Vec<String>,
    /// A touchpoint converts a person who reaches a goal within this many days.
    pub conversion_days: u32,
    /// Touches up to this many days before a conversion share its credit.
    pub attribution_days: u32,
    /// Time-decay attribution halves a touch's weight every this many days.
    pub attribution_half_life_days: f64,
    /// Events that are an abandoned contact (besides any with `properties.abandoned = true`).
    pub abandonment: Vec<String>,
    /// The funnel, in order.
    pub stages: Vec<StageConfig>,
    /// The company's catalogue of customer needs, besides those its touchpoints declare.
    pub needs: Vec<String>,
    /// A touchpoint used by fewer than this share of customers is little used.
    pub little_used_share: f64,
    /// CSAT (share of satisfied answers) below this is low quality.
    pub low_csat: f64,
    /// A repeat-contact rate above this is low quality.
    pub high_repeat_contact: f64,
    /// Customers on an unregistered channel needed before the census suggests investing.
    pub unregistered_min_people: u64,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let stage = |name: &str, events: &[&str]| StageConfig {
            name: name.into(),
            events: list(events),
            condition: None,
        };
        AnalyticsConfig {
            goal: list(&["Order Completed"]),
            conversion_days: 7,
            attribution_days: 30,
            attribution_half_life_days: 7.0,
            abandonment: list(&[
                "Call Abandoned",
                "Cart Abandoned",
                "Checkout Abandoned",
                "Chat Abandoned",
            ]),
            stages: vec![
                stage(
                    "awareness",
                    &[
                        "page",
                        "screen",
                        "Email Opened",
                        "Ad Clicked",
                        "Comment Posted",
                    ],
                ),
                stage(
                    "consideration",
                    &[
                        "page:Pricing",
                        "Product Viewed",
                        "Pricing Viewed",
                        "Product Added",
                        "Checkout Started",
                    ],
                ),
                stage("purchase", &["Order Completed"]),
                stage(
                    "post-sale",
                    &[
                        "Case Opened",
                        "Call Received",
                        "Chat Started",
                        "Order Delivered",
                    ],
                ),
                StageConfig {
                    name: "advocacy".into(),
                    events: list(&["Survey Answered"]),
                    condition: Some(PropertyAtLeast {
                        property: "nps".into(),
                        at_least: 9.0,
                    }),
                },
            ],
            needs: list(&[
                "information",
                "purchase",
                "support",
                "post-sale",
                "complaint",
                "billing",
            ]),
            little_used_share: 0.05,
            low_csat: 0.6,
            high_repeat_contact: 0.3,
            unregistered_min_people: 10,
        }
    }
}

/// Why an `[analytics]` table is not acceptable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalyticsRulesError {
    #[error("an event list holds an empty entry")]
    EmptyMatcher,
    #[error("\"track\" alone would match every track event; name the event instead")]
    BareTrack,
    #[error("analytics.goal names no event")]
    NoGoal,
    #[error("analytics.stages holds {0} stages; at most {MAX_STAGES} are supported")]
    TooManyStages(usize),
    #[error("funnel stage {0:?} names no event")]
    EmptyStage(String),
    #[error("funnel stage {0:?} appears twice")]
    DuplicateStage(String),
    #[error("analytics.{0} must be a positive number")]
    NotPositive(&'static str),
    #[error("analytics.{0} must be between 0 and 1")]
    NotAShare(&'static str),
}

/// One compiled funnel stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub name: String,
    matchers: Vec<EventMatcher>,
    condition: Option<PropertyAtLeast>,
}

/// The compiled `[analytics]` rules.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsRules {
    pub config: AnalyticsConfig,
    goal: Vec<EventMatcher>,
    abandonment: Vec<EventMatcher>,
    pub stages: Vec<Stage>,
}

impl Default for AnalyticsRules {
    fn default() -> Self {
        AnalyticsRules::new(AnalyticsConfig::default()).expect("the defaults are valid")
    }
}

impl AnalyticsRules {
    /// Checks and compiles a configuration.
    pub fn new(config: AnalyticsConfig) -> Result<Self, AnalyticsRulesError> {
        let compile = |items: &[String]| -> Result<Vec<EventMatcher>, AnalyticsRulesError> {
            items.iter().map(|s| EventMatcher::parse(s)).collect()
        };
        let goal = compile(&config.goal)?;
        if goal.is_empty() {
            return Err(AnalyticsRulesError::NoGoal);
        }
        if config.stages.len() > MAX_STAGES {
            return Err(AnalyticsRulesError::TooManyStages(config.stages.len()));
        }
        let mut stages: Vec<Stage> = Vec::new();
        for stage in &config.stages {
            if stage.events.is_empty() {
                return Err(AnalyticsRulesError::EmptyStage(stage.name.clone()));
            }
            if stages.iter().any(|s| s.name == stage.name) {
                return Err(AnalyticsRulesError::DuplicateStage(stage.name.clone()));
            }
            stages.push(Stage {
                name: stage.name.clone(),
                matchers: compile(&stage.events)?,
                condition: stage.condition.clone(),
            });
        }
        if config.conversion_days == 0 {
            return Err(AnalyticsRulesError::NotPositive("conversion_days"));
        }
        if config.attribution_days == 0 {
            return Err(AnalyticsRulesError::NotPositive("attribution_days"));
        }
        if config.attribution_half_life_days.is_nan() || config.attribution_half_life_days <= 0.0 {
            return Err(AnalyticsRulesError::NotPositive(
                "attribution_half_life_days",
            ));
        }
        for (name, value) in [
            ("little_used_share", config.little_used_share),
            ("low_csat", config.low_csat),
            ("high_repeat_contact", config.high_repeat_contact),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(AnalyticsRulesError::NotAShare(name));
            }
        }
        Ok(AnalyticsRules {
            goal,
            abandonment: compile(&config.abandonment)?,
            stages,
            config,
        })
    }

    /// Whether the event is a conversion.
    pub fn is_goal(&self, event: &Event) -> bool {
        self.goal.iter().any(|m| m.matches(event))
    }

    /// Whether the event is an abandoned contact.
    pub fn is_abandoned(&self, event: &Event) -> bool {
        event
            .get("properties.abandoned")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
            || self.abandonment.iter().any(|m| m.matches(event))
    }

    /// The funnel stages the event shows, as a bit mask (bit `i` = stage `i`).
    pub fn stage_mask(&self, event: &Event) -> u8 {
        let mut mask = 0u8;
        for (i, stage) in self.stages.iter().enumerate() {
            let condition_holds = stage.condition.as_ref().is_none_or(|c| {
                event
                    .get(&format!("properties.{}", c.property))
                    .and_then(number)
                    .is_some_and(|v| v >= c.at_least)
            });
            if condition_holds && stage.matchers.iter().any(|m| m.matches(event)) {
                mask |= 1 << i;
            }
        }
        mask
    }
}

/// A number, written as a JSON number or as text.
pub(crate) fn number(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
