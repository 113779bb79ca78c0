//! The one way the platform records its own events about a person (consents taken by
//! an agent or an unsubscribe link, segment memberships, journeys' actions, delivery's
//! outcomes): the message, built from `unavoce_core::platform_events`, made an event of
//! the person under their user or anonymous id, through the intake like any source.

use std::sync::Arc;

use serde_json::{Map, Value};
use unavoce_core::identity::ProfileId;
use unavoce_intake::{IngestReport, Intake};
use unavoce_store::{Settlement, StoreError};

use crate::IdentityProjection;

/// Why an event about a person could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("profile {0} no longer exists or has no user or anonymous id to record under")]
    NoIdentity(ProfileId),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the event was quarantined: {0}")]
    Rejected(String),
}

/// Records the platform's events about people.
#[derive(Clone)]
pub struct Recorder {
    identity: Arc<IdentityProjection>,
    intake: Intake,
}

impl Recorder {
    pub fn new(identity: Arc<IdentityProjection>, intake: Intake) -> Self {
        Recorder { identity, intake }
    }

    /// `message` (a Segment message without identity) made an event of `profile` (or
    /// the profile it was merged into): with their user id, else their anonymous id.
    /// `None` when the profile is gone or holds neither.
    pub fn about(
        &self,
        profile: ProfileId,
        mut message: Map<String, Value>,
    ) -> Option<Map<String, Value>> {
        let identity = &self.identity;
        let (key, value) =
            identity.read(|g| g.profile(profile).and_then(|n| identity.event_identity(n)))?;
        message.insert(key.into(), value.into());
        Some(message)
    }

    /// Records `message` as an event of `profile` from `source`; a quarantined event is
    /// an error, as nothing the platform says about a person may be lost silently.
    pub async fn record_about(
        &self,
        source: &str,
        profile: ProfileId,
        message: Map<String, Value>,
        origin: Value,
    ) -> Result<(), RecordError> {
        let message = self
            .about(profile, message)
            .ok_or(RecordError::NoIdentity(profile))?;
        let report = self.record(source, vec![message], origin).await?;
        match report.rejected.first() {
            Some(r) => Err(RecordError::Rejected(r.message.clone())),
            None => Ok(()),
        }
    }

    /// Records messages that already carry their person's identity (see
    /// [`Recorder::about`]) from `source`, in one append.
    pub async fn record(
        &self,
        source: &str,
        messages: Vec<Map<String, Value>>,
        origin: Value,
    ) -> Result<IngestReport, StoreError> {
        self.intake.record(source, messages, origin).await
    }

    /// Records messages as [`Recorder::record`] does, with outbox settlements in the
    /// same transaction.
    pub async fn record_settling(
        &self,
        source: &str,
        messages: Vec<Map<String, Value>>,
        origin: Value,
        settlements: Vec<Settlement>,
    ) -> Result<IngestReport, StoreError> {
        self.intake
            .record_settling(source, messages, origin, settlements)
            .await
    }
}
