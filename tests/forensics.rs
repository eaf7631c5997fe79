//! Looking at what the servers keep on disk: the repository's `.local` (where `make up`
//! keeps Kafka's log segments and Cassandra's data and commit logs) and byte scans of it.

use std::path::{Path, PathBuf};

use keel_testkit::TestResult;

/// The repository's `.local`, where `make up` keeps the servers' data.
pub fn local_dir() -> PathBuf {
    std::env::var_os("KEEL_LOCAL_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../.local"),
        PathBuf::from,
    )
}

/// Cassandra's storage: `data/` (SSTables), `commitlog/`, and the rest.
pub fn cassandra_dir() -> PathBuf {
    local_dir().join("cassandra/data")
}

/// The directories of `topic`'s partitions in Kafka's log directory.
pub fn kafka_topic_dirs(topic: &str) -> TestResult<Vec<PathBuf>> {
    let prefix = format!("{topic}-");
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(local_dir().join("kafka/data"))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name
            .strip_prefix(&prefix)
            .is_some_and(|partition| partition.parse::<u32>().is_ok())
        {
            dirs.push(entry.path());
        }
    }
    Ok(dirs)
}

/// Every file under `root`.
pub fn files_under(root: &Path) -> TestResult<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(directory) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&directory) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    Ok(files)
}

/// Files under `root` containing `needle`.
pub fn files_containing(root: &Path, needle: &[u8]) -> TestResult<Vec<PathBuf>> {
    Ok(files_under(root)?
        .into_iter()
        .filter(|path| {
            std::fs::read(path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|window| window == needle))
        })
        .collect())
}

/// Flushes `keyspace`'s memtables to SSTables (`nodetool flush`), so that the scan sees
/// what the store keeps on disk, not only its commit log.
pub fn flush_cql(keyspace: &str) -> TestResult {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let flush = std::process::Command::new("bash")
        .arg(root.join("infra/infra.sh"))
        .args(["nodetool", "flush", keyspace])
        .output()?;
    anyhow::ensure!(
        flush.status.success(),
        "nodetool flush: {}",
        String::from_utf8_lossy(&flush.stderr)
    );
    Ok(())
}

/// Everything every service in this test process logs (they run in-process), from the
/// first call on: what a log pipeline would ship, to grep for personal data.
#[derive(Clone, Default)]
pub struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// The process's captured logs, installing the capturing subscriber on first use (debug
    /// level for Keel's crates, info for the rest). Fails if another subscriber was set.
    pub fn install() -> TestResult<Self> {
        static LOGS: std::sync::OnceLock<Result<CapturedLogs, String>> = std::sync::OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = CapturedLogs::default();
            let filter = tracing_subscriber::EnvFilter::new(
                "info,keel_handler=debug,keel_projector=debug,keel_query=debug,keel_admin=debug,keel_crypto=debug,keel_codec=debug",
            );
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(false)
                .with_writer(logs.clone())
                .try_init()
                .map_err(|error| error.to_string())?;
            Ok(logs)
        })
        .clone()
        .map_err(anyhow::Error::msg)
    }

    /// What was logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)).into_owned()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
