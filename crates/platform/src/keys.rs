//! Named API keys: making one (the key is answered once and kept only as its hash),
//! for the API and `unavoce keys`.

use jiff::Timestamp;
use unavoce_core::access::{Role, is_valid_key_name, key_hash};
use unavoce_store::{ApiKey, Governance, StoreError};

/// The name the data folder's own owner key (the admin key) goes by.
pub const ADMIN_KEY_NAME: &str = "admin";

/// Why a key could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("invalid key name {0:?}: 1 to 64 letters, digits, `.`, `-` or `_`")]
    InvalidName(String),
    #[error("a key named {0:?} exists; revoke it first, or choose another name")]
    Taken(String),
    #[error("the system's random source failed: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Makes a key named `name` with `role`; the key itself, which is kept nowhere.
pub async fn create_key(
    governance: &dyn Governance,
    name: &str,
    role: Role,
) -> Result<String, KeyError> {
    if !is_valid_key_name(name) || name == ADMIN_KEY_NAME {
        return Err(KeyError::InvalidName(name.to_string()));
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| KeyError::Random(e.to_string()))?;
    let key: String = std::iter::once("uk_".to_string())
        .chain(secret.iter().map(|b| format!("{b:02x}")))
        .collect();
    let created = governance
        .create_key(ApiKey {
            name: name.to_string(),
            role,
            key_hash: key_hash(&key),
            created_at: Timestamp::now(),
            last_used_at: None,
        })
        .await?;
    if !created {
        return Err(KeyError::Taken(name.to_string()));
    }
    Ok(key)
}

/// Keeps `admin_key` as the `admin` owner key (listed, and audited like any other),
/// replacing an earlier admin key.
pub async fn enroll_admin_key(
    governance: &dyn Governance,
    admin_key: &str,
) -> Result<(), StoreError> {
    let hash = key_hash(admin_key);
    let kept = governance.key_by_name(ADMIN_KEY_NAME).await?;
    if kept
        .as_ref()
        .is_some_and(|k| k.key_hash == hash && k.role == Role::Owner)
    {
        return Ok(());
    }
    governance
        .put_key(ApiKey {
            name: ADMIN_KEY_NAME.into(),
            role: Role::Owner,
            key_hash: hash,
            created_at: kept.map_or_else(Timestamp::now, |k| k.created_at),
            last_used_at: None,
        })
        .await
}
