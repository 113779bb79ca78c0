//! Delivery: the outbox worker ([`Dispatcher`]) and the providers that carry messages
//! to people — SMTP ([`Smtp`]), the Twilio Messages API ([`Twilio`]), the WhatsApp
//! Cloud API ([`Whatsapp`]) and signed webhooks ([`Webhook`]) — with the pacing,
//! back-off and tracking they need; and what comes back, as the person's events:
//! providers' reports and callbacks ([`Callback`]), replies with STOP and START, opens
//! and clicks. Each provider's folder (`providers/<name>/`) holds its sending, its
//! settings, its signature check and the reading of its callbacks.

mod address;
pub mod config;
pub mod email_links;
mod feedback;
mod insight;
mod outbox;
mod providers;
mod record;
mod replies;
pub mod verify;

pub use config::DeliveryConfig;
pub use feedback::{Callback, CallbackError, ProviderReport, Refusal, Report, ReportError};
pub use outbox::{Dispatcher, LaneInfo, Platform, Providers};
pub use providers::smtp::Smtp;
pub use providers::twilio::{self, Twilio};
pub use providers::webhook::{Webhook, signature};
pub use providers::whatsapp::{self, Whatsapp, request_body};
pub use providers::{Accepted, Envelope, Failure, Provider};
pub use record::record_about;
pub use replies::{
    Inbound, Keyword, OPT_OUT_MESSAGE, OPT_OUT_PURPOSE, ReplyOutcome, keyword, opt_out_message,
};
pub use unavoce_core::platform_events::DELIVERY_SOURCE;
pub use unavoce_projections::RecordError;
