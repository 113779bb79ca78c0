//! The providers, one folder each, like Vector's sinks: a provider's folder holds its
//! sending, its configuration, the signature check and parsing of what it calls back
//! with, and their tests. Adding a provider touches its folder, the [`DeliveryConfig`]
//! field that turns it on and the lane that carries it.
//!
//! What every provider does is here: take one rendered message to one address, and
//! say whether it was accepted, failed for now, or failed for good.
//!
//! [`DeliveryConfig`]: crate::DeliveryConfig

use std::time::Duration;

use async_trait::async_trait;
use unavoce_core::identity::ProfileId;
use unavoce_core::message::Rendering;

mod http;
pub mod smtp;
pub mod twilio;
pub mod webhook;
pub mod whatsapp;

/// One message to hand to a provider.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The same for every attempt at this message on this channel.
    pub idempotency_key: String,
    /// The address on the channel: an e-mail address, an E.164 number, a device id;
    /// empty where the channel has none (a call task for someone without a phone).
    pub to: String,
    /// The message as rendered for this person and channel.
    pub rendering: Rendering,
    /// The person it goes to.
    pub profile_id: ProfileId,
    /// The catalog message it was rendered from.
    pub message: String,
    /// The outbox entry it comes from.
    pub outbox_id: i64,
}

/// What a provider accepted it as.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// The provider's id for it, to match its later reports.
    pub provider_message_id: Option<String>,
}

/// Why a provider did not take a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Worth trying again (a timeout, a 5xx, an SMTP 4xx).
    Transient(String),
    /// The provider asked us to slow down (HTTP 429); wait at least `retry_after`.
    RateLimited {
        /// What the provider said.
        error: String,
        /// How long it asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// Trying again would fail again (a bad number, an SMTP 5xx, a 4xx).
    Permanent(String),
}

impl Failure {
    /// What went wrong, for the outbox entry and the logs.
    pub fn describe(&self) -> &str {
        match self {
            Failure::Transient(e) | Failure::Permanent(e) => e,
            Failure::RateLimited { error, .. } => error,
        }
    }
}

/// A provider of one channel.
#[async_trait]
pub trait Provider: Send + Sync {
    /// For logs and the API (`smtp`, `twilio`, `whatsapp`, `webhook`).
    fn kind(&self) -> &'static str;

    /// Hands one message over.
    async fn send(&self, envelope: &Envelope) -> Result<Accepted, Failure>;
}

/// Chooses the crypto TLS uses (ring), once per process.
fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Bytes as lowercase hex, as signatures are written.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
