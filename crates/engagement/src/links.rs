//! Signed links in messages: a person's unsubscribe link carries an HMAC-SHA256 of
//! their profile id under a secret of this installation, so nobody can withdraw someone
//! else's consent by guessing a link; an e-mail's open pixel and click links are signed
//! the same way, so they record only what was sent and redirect only where it linked.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use unavoce_core::identity::ProfileId;
use unavoce_store::{EventLog, StoreError};

/// The route of a person's unsubscribe link: one definition for the links made here
/// and the server that answers them.
pub const UNSUBSCRIBE_ROUTE: &str = "/unsubscribe/{profile}/{token}";
/// The route of an e-mail's open pixel.
pub const OPEN_ROUTE: &str = "/t/open/{id}/{token}";
/// The route of a tracked link in an e-mail.
pub const CLICK_ROUTE: &str = "/t/click/{id}/{token}/{target}";

/// Where the secret is kept (generated at first use).
const SECRET_SETTING: &str = "engagement.link_secret";

/// Makes and checks signed links.
pub struct Links {
    secret: Vec<u8>,
    public_url: String,
}

impl Links {
    /// Links starting with `public_url`, signed with this installation's secret.
    pub async fn open(log: &dyn EventLog, public_url: &str) -> Result<Self, StoreError> {
        let stored = log
            .setting(SECRET_SETTING)
            .await?
            .and_then(|v| v.as_str().and_then(|s| URL_SAFE_NO_PAD.decode(s).ok()))
            .filter(|s| s.len() == 32);
        let secret = match stored {
            Some(secret) => secret,
            None => {
                let mut secret = vec![0u8; 32];
                getrandom::fill(&mut secret).map_err(|e| {
                    StoreError::Storage(format!("no randomness for the link secret: {e}"))
                })?;
                // Nodes starting together on a new store all keep the one stored first.
                let stored = log
                    .setting_or_insert(SECRET_SETTING, URL_SAFE_NO_PAD.encode(&secret).into())
                    .await?;
                stored
                    .as_str()
                    .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
                    .filter(|s| s.len() == 32)
                    .ok_or_else(|| {
                        StoreError::Storage("the stored link secret is not one".into())
                    })?
            }
        };
        Ok(Links {
            secret,
            public_url: public_url.trim_end_matches('/').to_string(),
        })
    }

    fn mac(&self, subject: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(subject.as_bytes());
        mac
    }

    fn token(&self, subject: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(subject).finalize().into_bytes())
    }

    /// Whether `token` signs `subject` (compared in constant time).
    fn verify(&self, subject: &str, token: &str) -> bool {
        match URL_SAFE_NO_PAD.decode(token) {
            Ok(bytes) => self.mac(subject).verify_slice(&bytes).is_ok(),
            Err(_) => false,
        }
    }

    /// The person's unsubscribe link.
    pub fn unsubscribe_url(&self, profile: ProfileId) -> String {
        let token = self.token(&format!("unsubscribe:{profile}"));
        self.url(
            UNSUBSCRIBE_ROUTE,
            &[("profile", &profile.to_string()), ("token", &token)],
        )
    }

    /// `route` with its `{name}` segments filled in, under the public address.
    fn url(&self, route: &str, values: &[(&str, &str)]) -> String {
        let mut path = route.to_string();
        for (name, value) in values {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        format!("{}{path}", self.public_url)
    }

    /// Whether `token` is the person's.
    pub fn verify_unsubscribe(&self, profile: ProfileId, token: &str) -> bool {
        self.verify(&format!("unsubscribe:{profile}"), token)
    }

    /// The open pixel of the e-mail sent as outbox entry `outbox_id`.
    pub fn open_url(&self, outbox_id: i64) -> String {
        let token = self.token(&format!("open:{outbox_id}"));
        self.url(
            OPEN_ROUTE,
            &[("id", &outbox_id.to_string()), ("token", &token)],
        )
    }

    /// Whether `token` is the open pixel's of `outbox_id`.
    pub fn verify_open(&self, outbox_id: i64, token: &str) -> bool {
        self.verify(&format!("open:{outbox_id}"), token)
    }

    /// A link in the e-mail sent as `outbox_id` that records the click and goes on to
    /// `target` (signed, so it cannot be made to redirect anywhere else).
    pub fn click_url(&self, outbox_id: i64, target: &str) -> String {
        let token = self.token(&format!("click:{outbox_id}:{target}"));
        let target = URL_SAFE_NO_PAD.encode(target.as_bytes());
        self.url(
            CLICK_ROUTE,
            &[
                ("id", &outbox_id.to_string()),
                ("token", &token),
                ("target", &target),
            ],
        )
    }

    /// The destination of a click link, if its token holds.
    pub fn verify_click(&self, outbox_id: i64, token: &str, target: &str) -> Option<String> {
        let target = String::from_utf8(URL_SAFE_NO_PAD.decode(target).ok()?).ok()?;
        self.verify(&format!("click:{outbox_id}:{target}"), token)
            .then_some(target)
    }

    /// Whether `url` is one of these links (an unsubscribe link is never tracked).
    pub fn is_own(&self, url: &str) -> bool {
        url.starts_with(&self.public_url)
    }
}
