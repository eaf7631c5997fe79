//! Tests of the local infrastructure script, `infra/infra.sh`: a second `up` reuses the
//! running servers, and a port held by someone else is a clear, prompt error that starts
//! and downloads nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use keel_testkit::TestResult;

/// Generous: a busy-port failure takes well under a second; this only catches a hang.
const HANG_BOUND: Duration = Duration::from_secs(90);

/// `up` on the shared stack is serialised across this file's tests.
static STACK: Mutex<()> = Mutex::new(());

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn shared_local_dir() -> PathBuf {
    std::env::var_os("KEEL_LOCAL_DIR").map_or_else(|| repo_root().join(".local"), PathBuf::from)
}

/// Runs `infra.sh` with `args`, with `.local/` at `local_dir`, failing if it hangs.
fn infra(args: &[&str], local_dir: &Path) -> TestResult<Output> {
    let mut child = Command::new("bash")
        .arg(repo_root().join("infra/infra.sh"))
        .args(args)
        .env("KEEL_LOCAL_DIR", local_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running infra/infra.sh")?;
    let started = Instant::now();
    while child.try_wait()?.is_none() {
        if started.elapsed() > HANG_BOUND {
            child.kill()?;
            bail!("infra.sh {args:?} still running after {HANG_BOUND:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(child.wait_with_output()?)
}

fn pids(local_dir: &Path) -> TestResult<(String, String)> {
    let read = |name: &str| {
        std::fs::read_to_string(local_dir.join("run").join(format!("{name}.pid")))
            .with_context(|| format!("reading the {name} pid file"))
    };
    Ok((read("kafka")?, read("cassandra")?))
}

/// Makes sure the shared stack runs, so that its ports are held.
fn shared_stack_up() -> TestResult<PathBuf> {
    let local_dir = shared_local_dir();
    let output = infra(&["up"], &local_dir)?;
    if !output.status.success() {
        bail!("infra.sh up failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(local_dir)
}

#[test]
fn second_up_reuses_the_running_servers() -> TestResult {
    let _guard = STACK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let local_dir = shared_stack_up()?;
    let before = pids(&local_dir)?;

    let again = infra(&["up"], &local_dir)?;
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        again.status.success(),
        "second up failed: {}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(stdout.contains("kafka already running"), "{stdout}");
    assert!(stdout.contains("cassandra already running"), "{stdout}");
    assert!(
        stdout.contains("kafka ready") && stdout.contains("cassandra ready"),
        "{stdout}"
    );
    assert_eq!(pids(&local_dir)?, before, "a second up must not restart anything");
    Ok(())
}

fn assert_busy_port_is_reported(server: &str, port: u16) -> TestResult {
    let _guard = STACK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    shared_stack_up()?;
    // A second stack in an empty folder: it finds the first one's ports taken.
    let elsewhere = tempfile::tempdir()?;

    let output = infra(&["up", server], elsewhere.path())?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "up must fail when port {port} is taken");
    assert!(
        stderr.contains(&format!("port {port} is already in use")),
        "unclear error: {stderr}"
    );
    assert!(
        stderr.contains(&format!("{server} cannot start")),
        "unclear error: {stderr}"
    );
    assert!(
        !elsewhere.path().join(server).exists(),
        "nothing is fetched or formatted"
    );
    Ok(())
}

#[test]
fn busy_kafka_port_is_a_clear_error_not_a_hang() -> TestResult {
    assert_busy_port_is_reported("kafka", 9092)
}

#[test]
fn busy_cql_port_is_a_clear_error_not_a_hang() -> TestResult {
    assert_busy_port_is_reported("cassandra", 9042)
}

/// A process that looks like a server of the stack in `local_dir` to anything reading
/// command lines: the markers every server carries, as separate arguments.
struct Decoy(std::process::Child);

impl Decoy {
    fn of(server: &str, local_dir: &Path) -> TestResult<Self> {
        let child = Command::new("python3")
            .args(["-c", "import time; time.sleep(600)"])
            .arg(format!("-Dkeel.infra={server}"))
            .arg(format!("-Dkeel.local={}", local_dir.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting a decoy")?;
        Ok(Self(child))
    }

    fn alive(&mut self) -> TestResult<bool> {
        Ok(self.0.try_wait()?.is_none())
    }
}

impl Drop for Decoy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn down_stops_only_the_servers_of_its_own_checkout() -> TestResult {
    let _guard = STACK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let shared = shared_stack_up()?;
    let shared_pids = pids(&shared)?;
    let ours = tempfile::tempdir()?;
    let other = tempfile::tempdir()?;
    let mut leftover = Decoy::of("cassandra", &std::fs::canonicalize(ours.path())?)?;
    let mut elsewhere = Decoy::of("kafka", &std::fs::canonicalize(other.path())?)?;

    let output = infra(&["down"], ours.path())?;
    assert!(
        output.status.success(),
        "down failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // `down` kills with SIGKILL: give the kernel a moment to reap.
    let deadline = Instant::now() + Duration::from_secs(10);
    while leftover.alive()? && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!leftover.alive()?, "a leftover server of this checkout survived down");
    assert!(elsewhere.alive()?, "down killed another checkout's server");
    for pid in [&shared_pids.0, &shared_pids.1] {
        let pid = pid.trim();
        assert!(
            Path::new(&format!("/proc/{pid}")).exists(),
            "down in another folder killed the shared stack's process {pid}"
        );
    }
    Ok(())
}
