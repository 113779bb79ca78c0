//! Delivery: the outbox worker ([`Dispatcher`]) and the providers that carry messages
//! to people — SMTP ([`Smtp`]), the Twilio Messages API ([`Twilio`]), the WhatsApp
//! Cloud API ([`Whatsapp`]) and signed webhooks ([`Webhook`]) — with the pacing,
//! back-off and tracking they need.

mod address;
pub mod config;
pub mod email_links;
mod feedback;
mod insight;
mod outbox;
mod provider;
mod record;
mod replies;
mod smtp;
mod twilio;
pub mod verify;
mod webhook;
mod whatsapp;

pub use config::DeliveryConfig;
pub use feedback::{Report, ReportError};
pub use outbox::{Dispatcher, LaneInfo, Platform};
pub use provider::{Accepted, Envelope, Failure, Provider};
pub use record::{DELIVERY_SOURCE, RecordError, record_about};
pub use replies::{
    Keyword, OPT_OUT_MESSAGE, OPT_OUT_PURPOSE, ReplyOutcome, keyword, opt_out_message,
};
pub use smtp::Smtp;
pub use twilio::Twilio;
pub use webhook::{Webhook, signature};
pub use whatsapp::{Whatsapp, request_body};
