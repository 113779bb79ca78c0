//! Signed links in messages: a person's unsubscribe link carries an HMAC-SHA256 of
//! their profile id under a secret of this installation, so nobody can withdraw someone
//! else's consent by guessing a link.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use unavoce_core::identity::ProfileId;
use unavoce_store::{EventLog, StoreError};

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
                log.put_setting(SECRET_SETTING, URL_SAFE_NO_PAD.encode(&secret).into())
                    .await?;
                secret
            }
        };
        Ok(Links {
            secret,
            public_url: public_url.trim_end_matches('/').to_string(),
        })
    }

    fn mac(&self, profile: ProfileId) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(format!("unsubscribe:{profile}").as_bytes());
        mac
    }

    /// The person's unsubscribe link.
    pub fn unsubscribe_url(&self, profile: ProfileId) -> String {
        let token = URL_SAFE_NO_PAD.encode(self.mac(profile).finalize().into_bytes());
        format!("{}/unsubscribe/{profile}/{token}", self.public_url)
    }

    /// Whether `token` is the person's (compared in constant time).
    pub fn verify_unsubscribe(&self, profile: ProfileId, token: &str) -> bool {
        match URL_SAFE_NO_PAD.decode(token) {
            Ok(bytes) => self.mac(profile).verify_slice(&bytes).is_ok(),
            Err(_) => false,
        }
    }
}
