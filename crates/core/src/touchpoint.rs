//! Touchpoints: the registered points of contact between the company and its customers.

use serde::{Deserialize, Serialize};

use crate::channel::ChannelKind;

/// Whether a touchpoint is a place or device people go to, or a digital surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    Physical,
    Digital,
}

/// Where a touchpoint is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TouchpointStatus {
    #[default]
    Active,
    Planned,
    Retired,
}

/// A registered point of contact (`web-shop`, `call-center-milan`, `store-rome-01`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Touchpoint {
    /// Stable identifier, as events carry it in `context.touchpoint`.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// The channel kind this touchpoint belongs to.
    pub channel: ChannelKind,
    /// Physical or digital; defaults from the channel kind when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<Presence>,
    /// The department that owns it (`sales`, `support`, `marketing`, ...).
    pub department: String,
    /// Customer needs it serves (`information`, `purchase`, `support`, ...).
    #[serde(default)]
    pub needs: Vec<String>,
    #[serde(default)]
    pub status: TouchpointStatus,
    /// Cost of one interaction, in the company's currency, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_interaction: Option<f64>,
    /// Interactions it can handle per day, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
}

/// Why a touchpoint definition is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TouchpointError {
    #[error(
        "touchpoint id {0:?} must be 1-64 characters of lower-case letters, digits, '-', '_' or '.'"
    )]
    InvalidId(String),
    #[error("touchpoint {0:?} has an empty name")]
    EmptyName(String),
    #[error("touchpoint {0:?} has a negative cost per interaction")]
    NegativeCost(String),
}

impl Touchpoint {
    /// Physical or digital, as declared or as usual for its channel kind.
    pub fn presence(&self) -> Presence {
        self.presence
            .unwrap_or(if self.channel.is_usually_physical() {
                Presence::Physical
            } else {
                Presence::Digital
            })
    }

    /// Checks the definition; returns the first problem found.
    pub fn validate(&self) -> Result<(), TouchpointError> {
        if !is_valid_id(&self.id) {
            return Err(TouchpointError::InvalidId(self.id.clone()));
        }
        if self.name.trim().is_empty() {
            return Err(TouchpointError::EmptyName(self.id.clone()));
        }
        if self
            .cost_per_interaction
            .is_some_and(|c| c < 0.0 || c.is_nan())
        {
            return Err(TouchpointError::NegativeCost(self.id.clone()));
        }
        Ok(())
    }
}

fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Touchpoint {
        Touchpoint {
            id: "store-rome-01".into(),
            name: "Rome, Via del Corso".into(),
            channel: ChannelKind::Store,
            presence: None,
            department: "retail".into(),
            needs: vec!["purchase".into()],
            status: TouchpointStatus::Active,
            cost_per_interaction: Some(4.5),
            capacity: None,
        }
    }

    #[test]
    fn presence_defaults_from_channel() {
        assert_eq!(store().presence(), Presence::Physical);
        let web = Touchpoint {
            channel: ChannelKind::Web,
            ..store()
        };
        assert_eq!(web.presence(), Presence::Digital);
    }

    #[test]
    fn validation_names_the_problem() {
        assert!(store().validate().is_ok());
        let bad = Touchpoint {
            id: "Store Rome".into(),
            ..store()
        };
        assert_eq!(
            bad.validate(),
            Err(TouchpointError::InvalidId("Store Rome".into()))
        );
        let neg = Touchpoint {
            cost_per_interaction: Some(-1.0),
            ..store()
        };
        assert!(matches!(
            neg.validate(),
            Err(TouchpointError::NegativeCost(_))
        ));
    }
}
