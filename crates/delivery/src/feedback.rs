//! What providers report back about the messages they accepted — delivered, read,
//! failed — as the person's events (`Message Delivered`, `Message Read`, `Message
//! Failed`) and the outbox entry's delivery.

use jiff::Timestamp;
use serde_json::{Value, json};
use unavoce_store::{Settlement, StoreError};

use crate::Dispatcher;
use crate::record::{RecordError, entry_properties, record_about};

/// A provider's report on a message it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// It reached the person's device.
    Delivered,
    /// The person read it.
    Read,
    /// It did not reach them, and why.
    Failed(String),
}

/// Why something coming back could not be taken in.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The person's event could not be recorded.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The store could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Dispatcher {
    /// A provider's report on the message it knows as `provider_message_id`; false if
    /// no such message was sent.
    pub async fn provider_report(
        &self,
        provider_message_id: &str,
        report: Report,
    ) -> Result<bool, ReportError> {
        let Some(entry) = self
            .platform()
            .outbox
            .outbox_by_provider_id(provider_message_id)
            .await?
        else {
            return Ok(false);
        };
        let (event, delivery, error) = match &report {
            Report::Delivered => ("Message Delivered", "delivered", None),
            Report::Read => ("Message Read", "read", None),
            Report::Failed(error) => ("Message Failed", "failed", Some(error.clone())),
        };
        let mut properties = Value::Object(entry_properties(&entry));
        if let Some(error) = &error {
            properties["error"] = error.clone().into();
        }
        let message = json!({
            "type": "track",
            "event": event,
            "messageId": format!("delivery-{}-{delivery}", entry.id),
            "properties": properties,
        });
        record_about(self.platform(), &entry.profile_id, message).await?;
        self.platform()
            .outbox
            .settle(vec![Settlement::Reported {
                id: entry.id,
                delivery: delivery.into(),
                error,
                at: Timestamp::now(),
            }])
            .await?;
        Ok(true)
    }
}
