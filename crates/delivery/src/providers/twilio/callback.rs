//! What Twilio calls back with, form-encoded and signed: its status callback on an SMS
//! it accepted (`MessageSid`, `MessageStatus`, `ErrorCode`) and an SMS from a person
//! (`From`, `Body`, `MessageSid`).

use std::collections::HashMap;

use super::TwilioConfig;
use super::signature;
use crate::config::ConfigError;
use crate::feedback::{Callback, ProviderReport, Refusal, Report};
use crate::replies::Inbound;

/// Reads Twilio's callbacks to this server, once their signature holds.
pub struct TwilioCallbacks {
    auth_token: String,
    /// Where Twilio reaches this server: it signs the whole URL it called.
    public_url: String,
}

impl TwilioCallbacks {
    /// The reader for the account `config` describes, called back at `public_url`.
    pub fn new(config: &TwilioConfig, public_url: &str) -> Result<Self, ConfigError> {
        Ok(TwilioCallbacks {
            auth_token: config.auth_token.require("delivery.sms.auth_token")?,
            public_url: public_url.trim_end_matches('/').to_string(),
        })
    }

    /// A status callback's report on an SMS; `None` when the status says nothing new
    /// (queued, sending, sent, accepted, scheduled).
    pub fn status(&self, callback: &Callback<'_>) -> Result<Option<ProviderReport>, Refusal> {
        let fields = self.fields(callback)?;
        let (Some(sid), Some(status)) = (fields.get("MessageSid"), fields.get("MessageStatus"))
        else {
            return Err(Refusal::Malformed(
                "a status callback carries MessageSid and MessageStatus".into(),
            ));
        };
        let report = match status.as_str() {
            "delivered" => Report::Delivered,
            "read" => Report::Read,
            "failed" | "undelivered" => Report::Failed(format!(
                "Twilio reports {status}{}",
                fields
                    .get("ErrorCode")
                    .map(|c| format!(" (error {c})"))
                    .unwrap_or_default()
            )),
            _ => return Ok(None),
        };
        Ok(Some(ProviderReport {
            provider_message_id: sid.clone(),
            report,
        }))
    }

    /// An SMS from a person.
    pub fn inbound(&self, callback: &Callback<'_>) -> Result<Inbound, Refusal> {
        let mut fields = self.fields(callback)?;
        let Some(from) = fields.remove("From") else {
            return Err(Refusal::Malformed("an inbound message carries From".into()));
        };
        Ok(Inbound {
            from,
            text: fields.remove("Body").unwrap_or_default(),
            provider_id: fields.remove("MessageSid"),
        })
    }

    /// A callback's form fields, once its signature holds.
    fn fields(&self, callback: &Callback<'_>) -> Result<HashMap<String, String>, Refusal> {
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(callback.body)
            .map_err(|e| Refusal::Malformed(format!("not a form: {e}")))?;
        let url = format!("{}{}", self.public_url, callback.path_and_query);
        if !signature::holds(
            &self.auth_token,
            &url,
            &fields,
            callback.header(signature::HEADER),
        ) {
            return Err(Refusal::Forged("Twilio"));
        }
        Ok(fields.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Credential, Pace};
    use crate::providers::twilio::twilio_signature;

    const TOKEN: &str = "twilio-auth-token";

    fn callbacks() -> TwilioCallbacks {
        let config = TwilioConfig {
            api_url: "http://x".into(),
            account_sid: "AC1".into(),
            auth_token: Credential {
                value: Some(TOKEN.into()),
                env: None,
            },
            from: Some("+15005550006".into()),
            messaging_service_sid: None,
            pace: Pace::default(),
        };
        TwilioCallbacks::new(&config, "https://unavoce.example/").unwrap()
    }

    /// Twilio calling `path` with `fields`, signed under `token`: the body and the
    /// signature header.
    fn call(path: &str, fields: &[(&str, &str)], token: &str) -> (Vec<u8>, String) {
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let url = format!("https://unavoce.example{path}");
        let signature = twilio_signature(token, &url, &fields);
        let body = serde_urlencoded::to_string(&fields).unwrap().into_bytes();
        (body, signature)
    }

    fn callback<'a>(path: &'a str, body: &'a [u8], signature: &'a str) -> Callback<'a> {
        Callback {
            path_and_query: path,
            headers: vec![
                ("content-type", "application/x-www-form-urlencoded"),
                ("X-Twilio-Signature", signature),
            ],
            body,
        }
    }

    #[test]
    fn a_status_callback_is_a_report_on_the_message_twilio_knows_by_its_sid() {
        let c = callbacks();
        let path = "/webhooks/twilio/status";
        let report = |fields: &[(&str, &str)]| {
            let (body, signature) = call(path, fields, TOKEN);
            c.status(&callback(path, &body, &signature))
        };
        let on = |report| {
            Ok(Some(ProviderReport {
                provider_message_id: "SM1".into(),
                report,
            }))
        };
        let status = |s| {
            [
                ("MessageSid", "SM1"),
                ("MessageStatus", s),
                ("To", "+39333"),
            ]
        };
        assert_eq!(report(&status("delivered")), on(Report::Delivered));
        assert_eq!(report(&status("read")), on(Report::Read));
        assert_eq!(
            report(&[
                ("MessageSid", "SM1"),
                ("MessageStatus", "undelivered"),
                ("ErrorCode", "30003"),
            ]),
            on(Report::Failed(
                "Twilio reports undelivered (error 30003)".into()
            ))
        );
        assert_eq!(
            report(&status("failed")),
            on(Report::Failed("Twilio reports failed".into()))
        );
        for nothing_new in ["queued", "sending", "sent", "accepted", "scheduled"] {
            assert_eq!(report(&status(nothing_new)), Ok(None), "{nothing_new}");
        }
        assert_eq!(
            report(&[("MessageSid", "SM1")]),
            Err(Refusal::Malformed(
                "a status callback carries MessageSid and MessageStatus".into()
            ))
        );
    }

    #[test]
    fn a_callback_is_read_only_when_twilio_signed_the_url_it_called_and_the_form() {
        let c = callbacks();
        let fields = [("MessageSid", "SM1"), ("MessageStatus", "delivered")];
        let path = "/webhooks/twilio/status?attempt=2";
        let (body, signature) = call(path, &fields, TOKEN);
        assert!(c.status(&callback(path, &body, &signature)).is_ok());
        let forged = Err(Refusal::Forged("Twilio"));
        let (_, guessed) = call(path, &fields, "guess");
        assert_eq!(c.status(&callback(path, &body, &guessed)), forged);
        let elsewhere = "/webhooks/twilio/status";
        assert_eq!(c.status(&callback(elsewhere, &body, &signature)), forged);
        let unsigned = Callback {
            headers: Vec::new(),
            ..callback(path, &body, &signature)
        };
        assert_eq!(c.status(&unsigned), forged);
        let (other_body, _) = call(path, &[("MessageSid", "SM2")], TOKEN);
        assert_eq!(c.status(&callback(path, &other_body, &signature)), forged);
    }

    #[test]
    fn an_inbound_sms_is_who_sent_what_under_twilios_id() {
        let c = callbacks();
        let path = "/webhooks/twilio/inbound";
        let inbound = |fields: &[(&str, &str)]| {
            let (body, signature) = call(path, fields, TOKEN);
            c.inbound(&callback(path, &body, &signature))
        };
        assert_eq!(
            inbound(&[
                ("MessageSid", "SM-in-1"),
                ("From", "+393331234567"),
                ("To", "+15005550006"),
                ("Body", "Stop"),
            ]),
            Ok(Inbound {
                from: "+393331234567".into(),
                text: "Stop".into(),
                provider_id: Some("SM-in-1".into()),
            })
        );
        assert_eq!(
            inbound(&[("From", "+393331234567")]),
            Ok(Inbound {
                from: "+393331234567".into(),
                text: String::new(),
                provider_id: None,
            })
        );
        assert_eq!(
            inbound(&[("Body", "Stop")]),
            Err(Refusal::Malformed("an inbound message carries From".into()))
        );
    }
}
