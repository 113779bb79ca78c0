//! The message catalog: messages from the config file and the API, checked when
//! defined, rendered for a person on any of their channels.

use std::sync::Arc;

use jiff::Timestamp;
use unavoce_core::identity::ProfileId;
use unavoce_core::message::{Message, MessageConfig, MessageError, Personalisation, Rendering};
use unavoce_core::profile::ProfileFacts;
use unavoce_store::StoreError;

use unavoce_projections::IdentityProjection;
use unavoce_projections::catalog::{
    Catalog, CatalogError, ChangeError, Configured, Definition, Edit, History, Revision, Status,
};

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
    /// The version in force (0 for the config file's).
    pub version: u32,
    /// A paused or retired message is not sent.
    pub status: Status,
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
    pub async fn define(
        &self,
        config: MessageConfig,
        edit: Edit<'_>,
    ) -> Result<(), MessageDefinitionError> {
        self.catalog
            .define(&**self.identity.log(), config, edit)
            .await?;
        Ok(())
    }

    /// Makes `config` the message's new version: what is sent from now on is rendered
    /// from it.
    pub async fn revise(
        &self,
        config: MessageConfig,
        edit: Edit<'_>,
    ) -> Result<Revision<Message>, ChangeError<MessageDefinitionError>> {
        self.catalog
            .revise(&**self.identity.log(), config, edit)
            .await
            .map_err(|e| e.map_invalid(Into::into))
    }

    /// What `config` would change in the message, checked, nothing stored.
    pub fn check_revision(
        &self,
        config: &MessageConfig,
    ) -> Result<Vec<unavoce_core::diff::FieldChange>, ChangeError<MessageDefinitionError>> {
        let (_, changes) =
            (self.catalog.check_revision(config)).map_err(|e| e.map_invalid(Into::into))?;
        Ok(changes)
    }

    /// Pauses, resumes or retires a message (a paused or retired one is not sent); the
    /// status it had.
    pub async fn set_status(
        &self,
        id: &str,
        status: Status,
        edit: Edit<'_>,
    ) -> Result<Status, ChangeError<MessageDefinitionError>> {
        self.catalog
            .set_status(&**self.identity.log(), id, status, edit)
            .await
            .map_err(|e| e.map_invalid(Into::into))
    }

    /// The versions and changes of status of a message defined through the API.
    pub fn versions(&self, id: &str) -> Option<History<MessageConfig>> {
        self.catalog.history(id)
    }

    /// Every message.
    pub fn list(&self) -> Vec<CatalogEntry> {
        self.catalog.all().into_iter().map(catalog_entry).collect()
    }

    /// One message.
    pub fn get(&self, id: &str) -> Option<CatalogEntry> {
        self.catalog.get(id).map(catalog_entry)
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
        if !entry.is_active() {
            return Err(MessageError {
                message: id.to_string(),
                at: "status".into(),
                problem: format!("is {}: it is not sent", entry.status.as_str()),
            });
        }
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

fn catalog_entry(e: unavoce_projections::catalog::Entry<Message>) -> CatalogEntry {
    CatalogEntry {
        message: e.item,
        origin: e.origin,
        version: e.version,
        status: e.status,
    }
}
