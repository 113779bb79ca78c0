//! The `[delivery.email]` settings.

use serde::{Deserialize, Serialize};

use crate::config::{Credential, Pace};

/// E-mail over SMTP, or into a folder (one `.eml` file per message: for trying things
/// out).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// `smtp://host:25` (plain), `smtp://host:587?tls=required` (STARTTLS) or
    /// `smtps://host:465` (TLS).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// Instead of a server: the folder the e-mails are written to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<std::path::PathBuf>,
    /// A certificate authority to trust besides the system's (a PEM file), for a
    /// server whose certificate a company's own authority signed; only with `smtps://`
    /// or `?tls=required`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
    /// The user to sign in to the server as, if it asks.
    pub username: Option<String>,
    /// That user's password.
    #[serde(default)]
    pub password: Credential,
    /// The sender, e.g. `Acme <news@acme.example>`.
    pub from: String,
    /// How fast the server may be called.
    #[serde(default)]
    pub pace: Pace,
}
