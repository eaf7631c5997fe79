//! A file-backed KMS for development: tenant KEKs in one JSON file readable by its owner only.
//!
//! Not for production: the KEKs sit on disk in the clear. The file is created with mode
//! 0600 and rewritten atomically (temporary file, then rename) on every change; the KMS
//! refuses to start if the file is readable or writable by group or others.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::kms::{KekTable, Kms};
use crate::{CryptoError, KekEpoch};

/// The file-backed development KMS.
pub struct LocalFileKms {
    path: PathBuf,
    table: Mutex<KekTable>,
}

impl std::fmt::Debug for LocalFileKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalFileKms")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl LocalFileKms {
    /// Opens the key file, creating it (mode 0600) if absent; refuses a file that group or
    /// others may read or write.
    ///
    /// Several processes may share the file (the handler, the query API, the admin service):
    /// every operation takes a lock on `<file>.lock` (exclusive to change, shared to read)
    /// and re-reads the file, so a KEK one process creates or destroys is seen by all.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CryptoError> {
        let path = path.as_ref().to_path_buf();
        let kms = Self {
            table: Mutex::new(load(&path)?),
            path,
        };
        kms.with(Access::Change, |_| Ok(()))?;
        Ok(kms)
    }

    /// Runs `f` on the table as it is on disk, under the file lock; persists a change.
    fn with<T>(
        &self,
        access: Access,
        f: impl FnOnce(&mut KekTable) -> Result<T, CryptoError>,
    ) -> Result<T, CryptoError> {
        let store = |e: std::io::Error| CryptoError::Store(format!("lock {}: {e}", self.path.display()));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.path.with_extension("lock"))
            .map_err(store)?;
        match access {
            Access::Read => lock.lock_shared().map_err(store)?,
            Access::Change => lock.lock().map_err(store)?,
        }
        let mut table = self
            .table
            .lock()
            .map_err(|_| CryptoError::Store("kms lock poisoned".into()))?;
        *table = load(&self.path)?;
        let out = f(&mut table)?;
        if access == Access::Change {
            self.persist(&table)?;
        }
        Ok(out)
    }

    fn persist(&self, table: &KekTable) -> Result<(), CryptoError> {
        let store = |e: std::io::Error| CryptoError::Store(format!("write {}: {e}", self.path.display()));
        let mut doc = serde_json::Map::new();
        for (tenant, keks) in &table.tenants {
            let epochs: serde_json::Map<String, serde_json::Value> = keks
                .iter()
                .map(|(epoch, raw)| {
                    let v = raw.as_ref().map_or(serde_json::Value::Null, |r| {
                        serde_json::Value::String(hex::encode(r.as_slice()))
                    });
                    (epoch.to_string(), v)
                })
                .collect();
            doc.insert(tenant.clone(), serde_json::Value::Object(epochs));
        }
        let text = Zeroizing::new(serde_json::Value::Object(doc).to_string());
        let tmp = self.path.with_extension("tmp");
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(store)?;
        file.write_all(text.as_bytes()).map_err(store)?;
        file.sync_all().map_err(store)?;
        fs::rename(&tmp, &self.path).map_err(store)
    }
}

/// Whether an operation reads the table or changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Change,
}

/// The table in the file, or an empty one if there is no file yet.
fn load(path: &Path) -> Result<KekTable, CryptoError> {
    let insecure = |reason: String| CryptoError::InsecureKeyFile {
        path: path.display().to_string(),
        reason,
    };
    match fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(insecure(format!("mode {mode:o} lets group or others in; chmod 600 it")));
            }
            if !meta.is_file() {
                return Err(insecure("not a regular file".into()));
            }
            let text = Zeroizing::new(fs::read_to_string(path).map_err(|e| insecure(e.to_string()))?);
            parse(&text).map_err(insecure)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KekTable::default()),
        Err(e) => Err(insecure(e.to_string())),
    }
}

fn parse(text: &str) -> Result<KekTable, String> {
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not json: {e}"))?;
    let tenants = doc.as_object().ok_or("top level is not an object")?;
    let mut table = KekTable::default();
    for (tenant, epochs) in tenants {
        let epochs = epochs
            .as_object()
            .ok_or_else(|| format!("tenant {tenant} is not an object"))?;
        let mut keks = BTreeMap::new();
        for (epoch, raw) in epochs {
            let epoch: KekEpoch = epoch
                .parse()
                .map_err(|_| format!("bad epoch {epoch} of tenant {tenant}"))?;
            let raw = match raw {
                serde_json::Value::Null => None,
                serde_json::Value::String(h) => Some(Zeroizing::new(
                    hex::decode(h).map_err(|_| format!("bad key of tenant {tenant}"))?,
                )),
                _ => return Err(format!("bad key of tenant {tenant}")),
            };
            keks.insert(epoch, raw);
        }
        table.tenants.insert(tenant.clone(), keks);
    }
    Ok(table)
}

#[async_trait]
impl Kms for LocalFileKms {
    async fn current_epoch(&self, tenant: &str) -> Result<KekEpoch, CryptoError> {
        // Every new data key asks: under a shared lock and without rewriting the file when
        // the tenant has its KEK; exclusively, to create the first one, otherwise.
        if let Some(epoch) = self.with(Access::Read, |t| t.existing(tenant))? {
            return Ok(epoch);
        }
        self.with(Access::Change, |t| t.current(tenant))
    }
    async fn new_epoch(&self, tenant: &str) -> Result<KekEpoch, CryptoError> {
        self.with(Access::Change, |t| t.new_epoch(tenant))
    }
    async fn wrap(&self, tenant: &str, epoch: KekEpoch, context: &str, key: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.with(Access::Read, |t| t.wrap(tenant, epoch, context, key))
    }
    async fn unwrap(
        &self,
        tenant: &str,
        epoch: KekEpoch,
        context: &str,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.with(Access::Read, |t| t.unwrap(tenant, epoch, context, wrapped))
    }
    async fn destroy_epoch(&self, tenant: &str, epoch: KekEpoch) -> Result<(), CryptoError> {
        self.with(Access::Change, |t| {
            t.destroy_epoch(tenant, epoch);
            Ok(())
        })
    }
    async fn destroy_tenant(&self, tenant: &str) -> Result<(), CryptoError> {
        self.with(Access::Change, |t| {
            t.destroy_tenant(tenant);
            Ok(())
        })
    }
}
