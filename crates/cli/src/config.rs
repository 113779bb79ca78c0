//! The configuration file (`unavoce.toml`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;
use unavoce_core::Touchpoint;
use unavoce_core::analytics::{AnalyticsConfig, AnalyticsRules};
use unavoce_core::identity::{IdentityConfig, IdentityRules};
use unavoce_core::journey::{Journey, JourneyConfig};
use unavoce_core::message::{Message, MessageConfig};
use unavoce_core::policy::{Policies, PolicyConfig};
use unavoce_core::profile::{ComputedTrait, default_computed_traits};
use unavoce_core::retention::{RetentionConfig, RetentionRules};
use unavoce_core::subscription::{Subscription, SubscriptionConfig};
use unavoce_delivery::DeliveryConfig;
use unavoce_platform::Blueprint;
use unavoce_projections::SegmentDefinition;
use unavoce_store::Durability;

/// The whole configuration file. Every section is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub ingest: IngestSection,
    /// Where the data is kept: the embedded SQLite store in the data folder (the
    /// default), or a PostgreSQL database that several nodes share.
    #[serde(default)]
    pub store: crate::store::StoreSection,
    /// Several nodes on one PostgreSQL store: the NATS server that wakes them.
    #[serde(default)]
    pub cluster: crate::cluster::ClusterSection,
    /// Extra sources, each with its own write key.
    #[serde(default)]
    pub sources: Vec<SourceSection>,
    /// The registered touchpoints.
    #[serde(default)]
    pub touchpoints: Vec<Touchpoint>,
    /// Identity resolution: identifier types, priorities, limits, blocked values.
    #[serde(default)]
    pub identity: IdentityConfig,
    /// Computed traits; the defaults (orders_90d, lifetime_value, ...) when none.
    #[serde(default)]
    pub computed_traits: Vec<ComputedTrait>,
    /// What the reports count: goal, funnel stages, abandonment, census thresholds.
    #[serde(default)]
    pub analytics: AnalyticsConfig,
    /// The policy gate: consent modes, suppression rules, caps, quiet hours.
    #[serde(default)]
    pub policies: PolicyConfig,
    /// Segments kept current as events arrive.
    #[serde(default)]
    pub segments: Vec<SegmentDefinition>,
    /// Journeys: triggers, steps, exit conditions, goals, control groups.
    #[serde(default)]
    pub journeys: Vec<JourneyConfig>,
    /// Messages, each rendered in every channel's style.
    #[serde(default)]
    pub messages: Vec<MessageConfig>,
    /// Department subscriptions: which insights go to which department.
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionConfig>,
    /// How messages leave: a provider per channel, retries, credentials.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Privacy: how long events are kept (retention).
    #[serde(default)]
    pub privacy: RetentionConfig,
}

impl Config {
    /// The policy gate (checked when the file was parsed).
    pub fn policies(&self) -> anyhow::Result<std::sync::Arc<Policies>> {
        Ok(std::sync::Arc::new(Policies::new(&self.policies)?))
    }

    /// The reports' rules (checked when the file was parsed).
    pub fn analytics_rules(&self) -> anyhow::Result<std::sync::Arc<AnalyticsRules>> {
        Ok(std::sync::Arc::new(AnalyticsRules::new(
            self.analytics.clone(),
        )?))
    }

    /// The computed traits in force.
    pub fn computed_traits(&self) -> Vec<ComputedTrait> {
        if self.computed_traits.is_empty() {
            default_computed_traits()
        } else {
            self.computed_traits.clone()
        }
    }

    /// What the platform runs with, reached by people and providers at `public_url`.
    pub fn blueprint(&self, public_url: String) -> anyhow::Result<Blueprint> {
        Ok(Blueprint {
            identity: IdentityRules::new(self.identity.clone())?,
            analytics: self.analytics_rules()?,
            computed: std::sync::Arc::new(self.computed_traits()),
            policies: self.policies()?,
            touchpoints: self.touchpoints.clone(),
            segments: self.segments.clone(),
            journeys: self.journeys.clone(),
            messages: self.messages.clone(),
            subscriptions: self.subscriptions.clone(),
            delivery: self.delivery.clone(),
            retention: std::sync::Arc::new(RetentionRules::new(self.privacy.clone())?),
            public_url,
            clock: std::sync::Arc::new(unavoce_projections::clock::SystemClock),
            snapshots: None,
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub listen: Option<String>,
    pub data: Option<PathBuf>,
    /// Where people and providers reach this server, for links in messages and
    /// provider callbacks (e.g. `https://cdp.example.com`) [default: http://LISTEN].
    pub public_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSection {
    /// `full` (fsync every commit; the default) or `normal` (survives a process crash,
    /// may lose the last commits on power loss).
    #[serde(default = "default_durability")]
    pub durability: String,
    /// Write requests that may queue before the API answers 503.
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
}

impl Default for IngestSection {
    fn default() -> Self {
        IngestSection {
            durability: default_durability(),
            queue_capacity: default_queue(),
        }
    }
}

fn default_durability() -> String {
    "full".into()
}

fn default_queue() -> usize {
    512
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    pub name: String,
    pub write_key: String,
}

impl IngestSection {
    /// The durability setting, checked.
    pub fn durability(&self) -> anyhow::Result<Durability> {
        match self.durability.as_str() {
            "full" => Ok(Durability::Full),
            "normal" => Ok(Durability::Normal),
            other => bail!("ingest.durability is {other:?}; expected \"full\" or \"normal\""),
        }
    }
}

/// For a command that reads a data folder: the config (as [`load`], but when neither
/// `--config` nor `./unavoce.toml` is there, the data folder's own `unavoce.toml`, as
/// `unavoce demo` writes it) and the data folder.
pub fn load_for_data(
    flag: Option<&Path>,
    data_flag: Option<PathBuf>,
) -> anyhow::Result<(Config, PathBuf)> {
    let config = load(flag)?;
    let data = crate::data_dir(data_flag, &config);
    match file_in_use(flag, &data) {
        Some(path) if flag.is_none() && path == data.join("unavoce.toml") => {
            Ok((load(Some(&path))?, data))
        }
        _ => Ok((config, data)),
    }
}

/// The config file a command with data folder `data` reads: `--config FILE`, else
/// `./unavoce.toml`, else the data folder's `unavoce.toml`; `None` when there is none
/// (the defaults).
pub fn file_in_use(flag: Option<&Path>, data: &Path) -> Option<PathBuf> {
    match flag {
        Some(path) => Some(path.to_path_buf()),
        None => [PathBuf::from("unavoce.toml"), data.join("unavoce.toml")]
            .into_iter()
            .find(|path| path.exists()),
    }
}

/// The config to use: `--config FILE`, else `./unavoce.toml` if present, else defaults.
pub fn load(flag: Option<&Path>) -> anyhow::Result<Config> {
    let path = match flag {
        Some(path) => path.to_path_buf(),
        None => {
            let default = PathBuf::from("unavoce.toml");
            if !default.exists() {
                return Ok(Config::default());
            }
            default
        }
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    parse(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// Parses and checks a config file's text.
pub fn parse(text: &str) -> anyhow::Result<Config> {
    let config: Config = toml::from_str(text)?;
    config.ingest.durability()?;
    config.cluster.check()?;
    IdentityRules::new(config.identity.clone())?;
    AnalyticsRules::new(config.analytics.clone()).context("invalid [analytics] section")?;
    Policies::new(&config.policies).context("invalid [policies] section")?;
    RetentionRules::new(config.privacy.clone()).context("invalid [privacy] section")?;
    config
        .delivery
        .retry
        .policy()
        .context("invalid [delivery] section")?;
    for computed in &config.computed_traits {
        computed.validate()?;
    }
    let mut messages = HashSet::new();
    for message in &config.messages {
        Message::new(message.clone())?;
        if !messages.insert(message.id.as_str()) {
            bail!("message {:?} is defined twice", message.id);
        }
    }
    let mut subscriptions = HashSet::new();
    for subscription in &config.subscriptions {
        Subscription::new(subscription.clone())?;
        if !subscriptions.insert(subscription.name.as_str()) {
            bail!("subscription {:?} is defined twice", subscription.name);
        }
    }
    let mut journeys = HashSet::new();
    for journey in &config.journeys {
        Journey::new(journey.clone())?;
        if let Some(clash) = unavoce_server::api::journeys::route_clash(&journey.name) {
            bail!(clash);
        }
        if !journeys.insert(journey.name.as_str()) {
            bail!("journey {:?} is defined twice", journey.name);
        }
    }
    let mut names = HashSet::new();
    for segment in &config.segments {
        segment.validate()?;
        if !names.insert(segment.name.as_str()) {
            bail!("segment {:?} is defined twice", segment.name);
        }
    }
    let mut ids = HashSet::new();
    for touchpoint in &config.touchpoints {
        touchpoint.validate()?;
        if !ids.insert(touchpoint.id.as_str()) {
            bail!("touchpoint {:?} is defined twice", touchpoint.id);
        }
    }
    for source in &config.sources {
        if source.write_key.chars().count() < crate::keys::MIN_KEY_CHARS {
            bail!(
                "the write key of source {:?} is shorter than {} characters",
                source.name,
                crate::keys::MIN_KEY_CHARS
            );
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_parses_and_bad_ones_say_why() {
        let config = parse(
            r#"
            [server]
            listen = "0.0.0.0:9000"
            [ingest]
            durability = "normal"
            [[sources]]
            name = "pos"
            write_key = "0123456789abcdef01234567"
            [[touchpoints]]
            id = "store-rome-01"
            name = "Rome store"
            channel = "store"
            department = "retail"
            needs = ["purchase", "support"]
            [[segments]]
            name = "rome-promotions"
            expression = "traits.city == 'Roma' && consents.promotional"
            "#,
        )
        .unwrap();
        assert_eq!(config.touchpoints.len(), 1);
        assert_eq!(config.segments[0].name, "rome-promotions");
        assert_eq!(config.ingest.durability().unwrap(), Durability::Normal);

        let err = parse("[ingest]\ndurability = \"sometimes\"").unwrap_err();
        assert!(err.to_string().contains("sometimes"), "{err}");
        let err = parse(
            "[[touchpoints]]\nid = \"x\"\nname = \"X\"\nchannel = \"pigeon\"\ndepartment = \"d\"",
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("pigeon"), "{err:#}");
        let err = parse("[[segments]]\nname = \"x\"\nexpression = \"cases > 0\"").unwrap_err();
        assert!(format!("{err:#}").contains("\"cases\""), "{err:#}");
        let config = parse(
            "[privacy]\nretention_days = 730\n\
             [privacy.retention_days_by_event]\n\"Page Viewed\" = 90\n\
             [privacy.retention_days_by_source]\nkiosk = 30",
        )
        .unwrap();
        assert_eq!(config.privacy.retention_days, Some(730));
        assert_eq!(config.privacy.retention_days_by_event["Page Viewed"], 90);
        let err = parse("[privacy.retention_days_by_event]\n\"Unsubscribed\" = 30").unwrap_err();
        assert!(
            format!("{err:#}").contains("a record kept until its person is erased"),
            "{err:#}"
        );
        let err = parse("[serverr]").unwrap_err();
        assert!(format!("{err:#}").contains("serverr"), "{err:#}");
    }
}
