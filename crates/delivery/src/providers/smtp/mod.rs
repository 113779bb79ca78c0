//! E-mail over SMTP with `lettre`: a multipart (text and HTML) message with the
//! unsubscribe headers, a `Message-ID` derived from the idempotency key (so a
//! receiver can tell a re-sent copy), plain, STARTTLS or TLS, with or without auth.
//! Its settings are in `config.rs`.
//!
//! SMTP does not call back: a refusal is a bounce at once ([`BOUNCE`]), and opens and
//! clicks come through the e-mail's own links ([`crate::email_links`]).

use async_trait::async_trait;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use unavoce_core::message::Rendering;

use super::{Accepted, Envelope, Failure, Provider, install_crypto};
use crate::config::ConfigError;

mod config;

pub use config::SmtpConfig;

/// The TLS of `url` (`smtps://` at once, `?tls=required` by STARTTLS) trusting the
/// certificate authority in `ca_file` besides the system's.
fn trusting(url: &str, ca_file: &std::path::Path) -> Result<Tls, String> {
    let rest = url.split_once("://").map_or("", |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let pem =
        std::fs::read(ca_file).map_err(|e| format!("cannot read {}: {e}", ca_file.display()))?;
    let certificate = Certificate::from_pem(&pem)
        .map_err(|e| format!("{} is not a PEM certificate: {e}", ca_file.display()))?;
    let parameters = TlsParameters::builder(host.to_string())
        .add_root_certificate(certificate)
        .build()
        .map_err(|e| format!("cannot use {}: {e}", ca_file.display()))?;
    if url.starts_with("smtps://") {
        Ok(Tls::Wrapper(parameters))
    } else if (url
        .split_once('?')
        .map_or("", |(_, query)| query)
        .split('&'))
    .any(|pair| pair == "tls=required")
    {
        Ok(Tls::Required(parameters))
    } else {
        Err("a certificate authority needs TLS: use smtps:// or ?tls=required".into())
    }
}

/// Whether the server refused our login or security (530 authentication required, 534
/// mechanism too weak, 535 credentials invalid, 538 encryption required): a setting to
/// fix, retried meanwhile — never the person's bounce.
fn refuses_the_sender(error: &lettre::transport::smtp::Error) -> bool {
    error
        .status()
        .is_some_and(|code| matches!(code.to_string().as_str(), "530" | "534" | "535" | "538"))
}

/// How an SMTP refusal starts (a bounce).
pub(crate) const BOUNCE: &str = "refused:";

/// Where e-mails go.
enum Transport {
    Server(AsyncSmtpTransport<Tokio1Executor>),
    Folder(AsyncFileTransport<Tokio1Executor>),
}

/// The SMTP provider (or its folder stand-in).
pub struct Smtp {
    transport: Transport,
    from: Mailbox,
    domain: String,
}

impl Smtp {
    /// The provider `config` describes: a server, or a folder to write e-mails to.
    pub fn new(config: &SmtpConfig) -> Result<Self, ConfigError> {
        install_crypto();
        let invalid = |field: &str, problem: String| ConfigError::Invalid {
            field: format!("delivery.email.{field}"),
            problem,
        };
        let transport = match (&config.folder, config.url.as_str()) {
            (Some(folder), "") => {
                std::fs::create_dir_all(folder).map_err(|e| {
                    invalid("folder", format!("cannot create {}: {e}", folder.display()))
                })?;
                Transport::Folder(AsyncFileTransport::new(folder))
            }
            (None, url) if !url.is_empty() => {
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| {
                        invalid(
                            "url",
                            format!("{e} (e.g. smtp://localhost:25, smtps://mail.example.com:465)"),
                        )
                    })?
                    .timeout(Some(std::time::Duration::from_secs(30)));
                if let Some(ca_file) = &config.ca_file {
                    builder =
                        builder.tls(trusting(url, ca_file).map_err(|e| invalid("ca_file", e))?);
                }
                if let Some(user) = &config.username {
                    let password = config.password.require("delivery.email.password")?;
                    builder = builder.credentials(Credentials::new(user.clone(), password));
                }
                Transport::Server(builder.build())
            }
            _ => {
                return Err(invalid(
                    "url",
                    "give the SMTP server's url, or a folder to write the e-mails to (not both)"
                        .into(),
                ));
            }
        };
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| invalid("from", format!("{:?} is not an address: {e}", config.from)))?;
        let domain = from.email.domain().to_string();
        Ok(Smtp {
            transport,
            from,
            domain,
        })
    }

    fn compose(&self, envelope: &Envelope) -> Result<Message, Failure> {
        let Rendering::Email {
            subject,
            html,
            text,
            list_unsubscribe,
            list_unsubscribe_post,
        } = &envelope.rendering
        else {
            return Err(Failure::Permanent("not an e-mail rendering".into()));
        };
        let to: Mailbox = envelope
            .to
            .parse()
            .map_err(|e| Failure::Permanent(format!("not an e-mail address: {e}")))?;
        let raw = |name: &'static str, value: &str| {
            HeaderValue::new(HeaderName::new_from_ascii_str(name), value.to_string())
        };
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject.clone())
            .message_id(Some(format!(
                "<{}@{}>",
                envelope.idempotency_key, self.domain
            )))
            .raw_header(raw("List-Unsubscribe", list_unsubscribe))
            .raw_header(raw("List-Unsubscribe-Post", list_unsubscribe_post))
            .raw_header(raw("X-Unavoce-Key", &envelope.idempotency_key))
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(text.clone()),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(html.clone()),
                    ),
            )
            .map_err(|e| Failure::Permanent(format!("cannot compose the e-mail: {e}")))
    }
}

impl Smtp {
    /// A plain-text e-mail from this installation (a digest) to `to`, its
    /// `Message-ID` made from `key`.
    pub async fn send_text(
        &self,
        to: &str,
        subject: &str,
        text: String,
        key: &str,
    ) -> Result<Accepted, Failure> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| Failure::Permanent(format!("not an e-mail address: {e}")))?;
        let id = format!("<{key}@{}>", self.domain);
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(id.clone()))
            .header(ContentType::TEXT_PLAIN)
            .body(text)
            .map_err(|e| Failure::Permanent(format!("cannot compose the e-mail: {e}")))?;
        self.transport(message, Some(id)).await
    }

    async fn transport(&self, message: Message, id: Option<String>) -> Result<Accepted, Failure> {
        let sent = match &self.transport {
            Transport::Server(smtp) => smtp.send(message).await.map(|_| ()),
            Transport::Folder(folder) => {
                return folder
                    .send(message)
                    .await
                    .map(|_| Accepted {
                        provider_message_id: id,
                    })
                    .map_err(|e| Failure::Transient(format!("cannot write the e-mail: {e}")));
            }
        };
        match sent {
            Ok(_) => Ok(Accepted {
                provider_message_id: id,
            }),
            Err(e) if e.is_permanent() && !refuses_the_sender(&e) => {
                Err(Failure::Permanent(format!("{BOUNCE} {e}")))
            }
            Err(e) => Err(Failure::Transient(format!("not accepted: {e}"))),
        }
    }
}

#[async_trait]
impl Provider for Smtp {
    fn kind(&self) -> &'static str {
        "smtp"
    }

    async fn send(&self, envelope: &Envelope) -> Result<Accepted, Failure> {
        let message = self.compose(envelope)?;
        let id = message
            .headers()
            .get_raw("Message-ID")
            .map(|v| v.trim().to_string());
        self.transport(message, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SmtpConfig {
        SmtpConfig {
            from: "Acme <news@acme.example>".into(),
            ..SmtpConfig::default()
        }
    }

    fn problem(config: &SmtpConfig) -> String {
        match Smtp::new(config) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[tokio::test]
    async fn a_server_or_a_folder_is_needed_and_the_sender_must_be_an_address() {
        let folder = tempfile::tempdir().unwrap();
        let server = |url: &str| SmtpConfig {
            url: url.into(),
            ..config()
        };
        assert!(problem(&config()).starts_with("delivery.email.url: give the SMTP server's url"));
        let both = SmtpConfig {
            folder: Some(folder.path().into()),
            ..server("smtp://localhost:25")
        };
        assert!(problem(&both).starts_with("delivery.email.url:"));
        assert!(problem(&server("gopher://x")).starts_with("delivery.email.url:"));
        let nobody = SmtpConfig {
            from: "nobody".into(),
            ..server("smtp://localhost:25")
        };
        assert!(problem(&nobody).starts_with("delivery.email.from:"));
        assert_eq!(problem(&server("smtp://localhost:25")), "");
    }

    #[tokio::test]
    async fn an_email_has_both_parts_the_unsubscribe_headers_and_an_id_from_its_key() {
        let folder = tempfile::tempdir().unwrap();
        let smtp = Smtp::new(&SmtpConfig {
            folder: Some(folder.path().into()),
            ..config()
        })
        .unwrap();
        let envelope = Envelope {
            idempotency_key: "unavoce-7-1".into(),
            to: "ada@example.com".into(),
            rendering: Rendering::Email {
                subject: "The match in 4K".into(),
                html: "<p>Hi Ada</p>".into(),
                text: "Hi Ada".into(),
                list_unsubscribe: "<https://me/unsubscribe/1/t>".into(),
                list_unsubscribe_post: "List-Unsubscribe=One-Click",
            },
            profile_id: unavoce_core::identity::ProfileId(1),
            message: "tv-offer".into(),
            outbox_id: 7,
        };
        let accepted = smtp.send(&envelope).await.unwrap();
        assert_eq!(
            accepted.provider_message_id.as_deref(),
            Some("<unavoce-7-1@acme.example>")
        );
        let written = std::fs::read_dir(folder.path())
            .unwrap()
            .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
            .collect::<Vec<_>>();
        assert_eq!(written.len(), 1);
        let eml = &written[0];
        for expected in [
            "Message-ID: <unavoce-7-1@acme.example>",
            "List-Unsubscribe: <https://me/unsubscribe/1/t>",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            "X-Unavoce-Key: unavoce-7-1",
            "Content-Type: text/plain",
            "Content-Type: text/html",
        ] {
            assert!(eml.contains(expected), "{expected} in {eml}");
        }
        let push = Envelope {
            rendering: Rendering::Push {
                title: "Hi".into(),
                body: "Ada".into(),
            },
            ..envelope
        };
        assert!(matches!(smtp.send(&push).await, Err(Failure::Permanent(_))));
    }
}
