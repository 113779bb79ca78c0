//! Delivery: the outbox worker ([`Dispatcher`]) and the providers that carry messages
//! to people — SMTP ([`Smtp`]), the Twilio Messages API ([`Twilio`]), the WhatsApp
//! Cloud API ([`Whatsapp`]) and signed webhooks ([`Webhook`]) — with the pacing,
//! back-off and tracking they need.

mod address;
pub mod config;
mod insight;
mod outbox;
mod provider;
mod record;
mod reports;
mod smtp;
pub mod tracking;
mod twilio;
pub mod verify;
mod webhook;
mod whatsapp;

pub use config::DeliveryConfig;
pub use outbox::{
    Dispatcher, LaneInfo, OPT_OUT_MESSAGE, OPT_OUT_PURPOSE, Platform, opt_out_message,
};
pub use provider::{Accepted, Envelope, Failure, Provider};
pub use record::{DELIVERY_SOURCE, RecordError, record_about};
pub use reports::{Keyword, ReplyOutcome, Report, ReportError, keyword};
pub use smtp::Smtp;
pub use twilio::Twilio;
pub use webhook::{Webhook, signature};
pub use whatsapp::{Whatsapp, request_body};
