//! Resolving the write and admin keys: flags or environment, else the data folder,
//! else freshly generated and kept there.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Keys as kept in `keys.json` in the data folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredKeys {
    pub write_key: String,
    pub admin_key: String,
}

/// The keys in force, and whether they came from the data folder (and so should be
/// shown to the operator once at start-up).
pub struct ResolvedKeys {
    pub write_key: String,
    pub admin_key: String,
    pub from_data_dir: bool,
}

/// Resolves the keys for a server using `data_dir`.
pub fn resolve(
    data_dir: &Path,
    write_key: Option<String>,
    admin_key: Option<String>,
) -> anyhow::Result<ResolvedKeys> {
    if let (Some(write_key), Some(admin_key)) = (&write_key, &admin_key) {
        return Ok(ResolvedKeys {
            write_key: write_key.clone(),
            admin_key: admin_key.clone(),
            from_data_dir: false,
        });
    }
    let stored = load_or_create(data_dir)?;
    Ok(ResolvedKeys {
        from_data_dir: true,
        write_key: write_key.unwrap_or(stored.write_key),
        admin_key: admin_key.unwrap_or(stored.admin_key),
    })
}

/// The fewest characters a key may have: shorter ones can be guessed.
pub const MIN_KEY_CHARS: usize = 24;

/// Refuses, before anything starts, a key shorter than [`MIN_KEY_CHARS`], a write key
/// that is also the admin key (whoever holds a write key, such as every visitor of a
/// site with a browser SDK, would hold the whole API), and two sources sharing a write
/// key (their events could not be told apart). `write_keys` are (source, key) pairs.
pub fn check(admin_key: &str, write_keys: &[(&str, &str)]) -> anyhow::Result<()> {
    if admin_key.chars().count() < MIN_KEY_CHARS {
        anyhow::bail!(
            "the admin key is shorter than {MIN_KEY_CHARS} characters: give a longer one \
             (--admin-key, UNAVOCE_ADMIN_KEY), or leave it out to have one generated"
        );
    }
    for (i, (source, key)) in write_keys.iter().enumerate() {
        if key.chars().count() < MIN_KEY_CHARS {
            anyhow::bail!(
                "the write key of source {source:?} is shorter than {MIN_KEY_CHARS} characters: \
                 give a longer one, or leave the default source's out to have one generated"
            );
        }
        if *key == admin_key {
            anyhow::bail!(
                "the write key of source {source:?} is the admin key: a write key is public \
                 (browsers and apps carry it), so it must differ from the admin key"
            );
        }
        if let Some((other, _)) = write_keys[..i].iter().find(|(_, k)| k == key) {
            anyhow::bail!("sources {other:?} and {source:?} have the same write key");
        }
    }
    Ok(())
}

fn load_or_create(data_dir: &Path) -> anyhow::Result<StoredKeys> {
    let path = data_dir.join("keys.json");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid keys file", path.display()));
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data folder {}", data_dir.display()))?;
    let keys = StoredKeys {
        write_key: format!("wk_{}", uuid::Uuid::new_v4().simple()),
        admin_key: format!(
            "ak_{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ),
    };
    write_private(&path, &serde_json::to_string_pretty(&keys)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(keys)
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_shared_or_public_admin_keys_are_refused_with_the_reason() {
        let admin = "admin-key-0123456789abcdef";
        let write = "write-key-0123456789abcdef";
        assert!(check(admin, &[("default", write)]).is_ok());
        let refused =
            |admin: &str, writes: &[(&str, &str)]| check(admin, writes).unwrap_err().to_string();
        assert!(refused("short", &[("default", write)]).contains("admin key is shorter than 24"));
        assert!(refused(admin, &[("default", "short-write-key")]).contains("source \"default\""));
        assert!(refused(admin, &[("default", admin)]).contains("is the admin key"));
        assert!(
            refused(admin, &[("default", write), ("pos", write)])
                .contains("\"default\" and \"pos\" have the same write key")
        );
    }
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}
