//! The message catalog: messages from the config file and the API, checked when
//! defined, rendered for a person on any of their channels.

use std::sync::Arc;

use jiff::Timestamp;
use unavoce_core::identity::ProfileId;
use unavoce_core::message::{Message, MessageConfig, MessageError, Personalisation, Rendering};
use unavoce_core::profile::ProfileFacts;
use unavoce_store::StoreError;

use unavoce_projections::IdentityProjection;
use unavoce_projections::catalog::{Catalog, CatalogError, Configured, Definition};

use crate::Links;

/// The catalog's kind for messages.
pub struct MessageKind;

impl Definition for MessageKind {
    type Item = Message;
    type Config = MessageConfig;
    type Error = MessageError;
    const SETTING: &'static str = "engagement.messages";

    fn name(config: &MessageConfig) -> &str {
        &config.id
    }
    fn compile(config: MessageConfig) -> Result<Message, MessageError> {
        Message::new(config)
    }
    fn config(item: &Message) -> &MessageConfig {
        &item.config
    }
}

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

impl From<CatalogError<MessageError>> for MessageDefinitionError {
    fn from(e: CatalogError<MessageError>) -> Self {
        match e {
            CatalogError::Invalid(e) => Self::Invalid(e),
            CatalogError::Exists(name) => Self::Exists(name),
            CatalogError::Store(e) => Self::Store(e),
        }
    }
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
    links: Links,
    catalog: Catalog<MessageKind>,
}

impl Messages {
    /// The config file's messages and those defined earlier through the API; links
    /// start with `public_url`.
    pub async fn open(
        identity: Arc<IdentityProjection>,
        public_url: String,
        configured: &[MessageConfig],
    ) -> Result<Arc<Self>, MessageDefinitionError> {
        let catalog = Catalog::open(&**identity.log(), configured).await?;
        let links = Links::open(&**identity.log(), &public_url).await?;
        Ok(Arc::new(Messages {
            identity,
            links,
            catalog,
        }))
    }

    /// The signed links messages carry.
    pub fn links(&self) -> &Links {
        &self.links
    }

    /// Another node changed the shared setting `name` (`None`: any, perhaps): when it is the messages'
    /// definitions, reads them again.
    pub async fn take_in_setting(&self, name: Option<&str>) -> Result<(), StoreError> {
        if name.is_none_or(|name| name == <MessageKind as Definition>::SETTING) {
            self.catalog.reload(&**self.identity.log()).await?;
        }
        Ok(())
    }

    /// Checks a config file's messages, read again; every one must hold.
    pub fn check(
        configured: &[MessageConfig],
    ) -> Result<Configured<MessageKind>, MessageDefinitionError> {
        Ok(Catalog::check(configured)?)
    }

    /// Puts a config file's messages, read again and checked, in force: what is sent
    /// from now on is rendered from them.
    pub fn reconfigure(&self, configured: Configured<MessageKind>) {
        self.catalog.reconfigure(configured);
    }

    /// Defines a message through the API, checked at once.
    pub async fn define(&self, config: MessageConfig) -> Result<(), MessageDefinitionError> {
        self.catalog.define(&**self.identity.log(), config).await?;
        Ok(())
    }

    /// Every message.
    pub fn list(&self) -> Vec<CatalogEntry> {
        self.catalog
            .all()
            .into_iter()
            .map(|e| CatalogEntry {
                message: e.item,
                origin: e.origin,
            })
            .collect()
    }

    /// One message.
    pub fn get(&self, id: &str) -> Option<CatalogEntry> {
        self.catalog.get(id).map(|e| CatalogEntry {
            message: e.item,
            origin: e.origin,
        })
    }

    /// Catalog message `id` rendered for a person (their facts read at send time) on
    /// `channel`.
    pub fn render(
        &self,
        id: &str,
        channel: &str,
        profile: ProfileId,
        facts: &ProfileFacts,
    ) -> Result<Rendering, MessageError> {
        let entry = self.catalog.get(id).ok_or_else(|| MessageError {
            message: id.to_string(),
            at: "id".into(),
            problem: "is not in the message catalog".into(),
        })?;
        let url = self.links.unsubscribe_url(profile);
        let person = Personalisation::new(profile, facts, url);
        entry.item.render(channel, &person)
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
        let url = self.links.unsubscribe_url(profile);
        let person = Personalisation::new(profile, &facts, url);
        channels
            .iter()
            .map(|c| (c.to_string(), message.render(c, &person)))
            .collect()
    }
}
