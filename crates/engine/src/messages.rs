//! The message catalog: messages from the config file and the API, checked when
//! defined, rendered for a person on any of their channels.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use jiff::Timestamp;
use unavoce_core::identity::ProfileId;
use unavoce_core::message::{Message, MessageConfig, MessageError, Personalisation, Rendering};
use unavoce_store::{EventLog, StoreError};

use crate::IdentityProjection;

/// Where messages defined through the API are kept.
const MESSAGES_SETTING: &str = "engagement.messages";

/// Why a message cannot be defined.
#[derive(Debug, thiserror::Error)]
pub enum MessageDefinitionError {
    #[error(transparent)]
    Invalid(#[from] MessageError),
    #[error("message {0:?} already exists")]
    Exists(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A message and where it was defined (`config` or `api`).
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    pub message: Arc<Message>,
    pub origin: &'static str,
}

/// The messages.
pub struct Messages {
    identity: Arc<IdentityProjection>,
    /// The address unsubscribe links start with.
    public_url: String,
    defined: RwLock<BTreeMap<String, CatalogEntry>>,
}

impl Messages {
    /// The config file's messages and those defined earlier through the API.
    pub async fn open(
        identity: Arc<IdentityProjection>,
        public_url: String,
        configured: &[MessageConfig],
    ) -> Result<Arc<Self>, MessageDefinitionError> {
        let mut defined = BTreeMap::new();
        for config in configured {
            if defined.contains_key(&config.id) {
                return Err(MessageDefinitionError::Exists(config.id.clone()));
            }
            let message = Arc::new(Message::new(config.clone())?);
            defined.insert(
                config.id.clone(),
                CatalogEntry {
                    message,
                    origin: "config",
                },
            );
        }
        let log: &Arc<dyn EventLog> = identity.log();
        let stored: Vec<MessageConfig> = match log.setting(MESSAGES_SETTING).await? {
            Some(value) => serde_json::from_value(value).unwrap_or_default(),
            None => Vec::new(),
        };
        for config in stored {
            match Message::new(config.clone()) {
                Ok(message) if !defined.contains_key(&config.id) => {
                    let message = Arc::new(message);
                    defined.insert(
                        config.id.clone(),
                        CatalogEntry {
                            message,
                            origin: "api",
                        },
                    );
                }
                Ok(_) => {
                    tracing::warn!(message = %config.id, "a message defined through the API is now also in the config file; the config's definition is used")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a stored message no longer holds; it is not used")
                }
            }
        }
        Ok(Arc::new(Messages {
            identity,
            public_url: public_url.trim_end_matches('/').to_string(),
            defined: RwLock::new(defined),
        }))
    }

    /// Defines a message through the API, checked at once.
    pub async fn define(&self, config: MessageConfig) -> Result<(), MessageDefinitionError> {
        let message = Message::new(config.clone())?;
        let stored: Vec<MessageConfig> = {
            let defined = self.defined.read().unwrap_or_else(|e| e.into_inner());
            if defined.contains_key(&config.id) {
                return Err(MessageDefinitionError::Exists(config.id));
            }
            defined
                .values()
                .filter(|e| e.origin == "api")
                .map(|e| e.message.config.clone())
                .chain(std::iter::once(config.clone()))
                .collect()
        };
        self.identity
            .log()
            .put_setting(
                MESSAGES_SETTING,
                serde_json::to_value(&stored).unwrap_or_default(),
            )
            .await?;
        let message = Arc::new(message);
        self.defined
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                config.id,
                CatalogEntry {
                    message,
                    origin: "api",
                },
            );
        Ok(())
    }

    /// Every message.
    pub fn list(&self) -> Vec<CatalogEntry> {
        self.defined
            .read()
            .map(|d| d.values().cloned().collect())
            .unwrap_or_default()
    }

    /// One message.
    pub fn get(&self, id: &str) -> Option<CatalogEntry> {
        self.defined.read().ok()?.get(id).cloned()
    }

    /// A message rendered for a person on each of `channels`: the rendering, or why it
    /// cannot be (a value too long for the channel's limits, say).
    pub fn preview(
        &self,
        message: &Message,
        profile: ProfileId,
        channels: &[&str],
        now: Timestamp,
    ) -> Vec<(String, Result<Rendering, MessageError>)> {
        let (facts, _) = self.identity.person(profile, now);
        let url = format!("{}/unsubscribe/{profile}", self.public_url);
        let person = Personalisation::new(&profile.to_string(), &facts, url);
        channels
            .iter()
            .map(|c| (c.to_string(), message.render(c, &person)))
            .collect()
    }
}
