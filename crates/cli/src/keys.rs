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

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}
