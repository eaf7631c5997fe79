//! A fuzzer on stable Rust for every decoder of outside input (`make fuzz`; issue "Fault
//! isolation", item 11): no panic, no hang, memory bounded, whatever a sender puts on the wire.
//!
//! Each [`Target`] is one decoder as the service that owns it calls it:
//!
//! | target | decoder | who feeds it |
//! |---|---|---|
//! | `command` | `Wire::decode_command::<SupportCommand>` | the command handler |
//! | `admin` | `Wire::decode_command::<AdminCommand>` | the admin service |
//! | `event` | `Wire::read_event` | the projector, replays, the trails |
//! | `credential` | `Authenticator::authenticate` | every command and query |
//! | `headers` | `TraceHeaders::from_record`, then `DeadLetter::record` | every consumer |
//! | `query` | `Query<Consistency>`, `keel_ids::check` and `check_stream` | the query API |
//!
//! An input is a seed of the target's corpus under stacked mutations (bit flips, interesting
//! bytes, inserted, deleted and duplicated ranges, splices, and for Avro: huge length
//! prefixes and another schema's fingerprint), an input the target builds knowing its format
//! (envelopes of odd field values, tokens with edited segments or re-signed odd claims,
//! header lists, query strings), or random bytes. A [`Finding`] is a panic, a broken property
//! (a dead letter over its bound, a forged credential accepted, an accepted envelope out of
//! bounds) or peak RSS over [`MEMORY_LIMIT_BYTES`]; its input is saved as
//! `<findings dir>/<target>-<n>.bin`. A call that runs past [`HANG_LIMIT`] ends the process:
//! a watchdog prints the input and exits with status 2.
//!
//! A run is repeatable: every input follows from the seed and the number of threads. The
//! `keel-fuzz` binary runs it at scale; the `fuzz_smoke` test runs it small.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe, PanicHookInfo};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::Query;
use axum::http::Uri;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey};
use keel_auth::{Actor, ActorKind, Authenticator, Authorization, Claims, TenantAuth, TenantKey, TokenIssuer};
use keel_codec::{CommandHeader, Wire, to_wire_actor};
use keel_customer_support::{Customer, SupportCommand};
use keel_domain::WireSchemas;
use keel_envelope::{
    COMMAND_ENVELOPE, CommandEnvelope, EventEnvelope, KeyRef, KeyScope, SchemaRegistry, SealedField, SealedPayload,
};
use keel_erasure::{AdminCommand, System};
use keel_kafka::trace::{TRACEPARENT, TRACESTATE, TraceHeaders};
use keel_kafka::{DeadLetter, MAX_DEAD_LETTER_BYTES};
use keel_query::fresh::Consistency;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

mod command;
mod credential;
mod event;
mod headers;
mod mutate;
mod query;
mod run;
mod values;

use command::*;
use credential::*;
use event::*;
use headers::*;
use mutate::*;
use query::*;
use run::*;
use values::*;

/// The longest input fed to a decoder.
pub const MAX_INPUT_BYTES: usize = 256 * 1024;
/// A call that runs longer is a hang: the watchdog ends the process.
pub const HANG_LIMIT: Duration = Duration::from_secs(5);
/// The bound on the process's peak RSS over a whole run.
pub const MEMORY_LIMIT_BYTES: u64 = 1 << 30;
/// Current RSS at which the watchdog stops the run before it hurts the machine.
const ABORT_RSS_BYTES: u64 = 3 << 30;
/// The longest random input.
const MAX_RANDOM_BYTES: usize = 4096;
/// Inputs saved per target; further findings are counted, not saved.
const MAX_SAVED_PER_TARGET: usize = 32;
/// Distinct finding messages kept per worker.
const MAX_MESSAGES_PER_WORKER: usize = 16;

/// What a run does.
#[derive(Debug, Clone)]
pub struct FuzzConfig {
    /// Inputs fed to each target.
    pub inputs: u64,
    /// The seed every input follows from.
    pub seed: u64,
    /// Worker threads per target (the inputs are split between them).
    pub threads: usize,
    /// Where findings' inputs are saved.
    pub findings_dir: PathBuf,
    /// Names of the targets to run; every target when empty.
    pub only: Vec<String>,
}

impl FuzzConfig {
    /// `inputs` per target from `seed`, on two threads, findings saved under the workspace's
    /// git-ignored `.local/fuzz/findings`.
    pub fn new(inputs: u64, seed: u64) -> Self {
        Self {
            inputs,
            seed,
            threads: 2,
            findings_dir: default_findings_dir(),
            only: Vec::new(),
        }
    }
}

/// `.local/fuzz/findings` in the workspace root (git-ignored).
pub fn default_findings_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(".local/fuzz/findings")
}

/// One decoder under test.
#[derive(Clone, Copy)]
pub struct Target {
    /// Its name in tables, `--only` and findings' file names.
    pub name: &'static str,
    /// The decoder, as the table in the module docs names it.
    pub decoder: &'static str,
    build: fn() -> anyhow::Result<Box<dyn Decoder>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Every target, in the order a run feeds them.
pub const TARGETS: [Target; 6] = [
    Target {
        name: "command",
        decoder: "Wire::decode_command::<SupportCommand>",
        build: || Ok(Box::new(CommandTarget::support()?)),
    },
    Target {
        name: "admin",
        decoder: "Wire::decode_command::<AdminCommand>",
        build: || Ok(Box::new(CommandTarget::admin()?)),
    },
    Target {
        name: "event",
        decoder: "Wire::read_event",
        build: || Ok(Box::new(EventTarget::new()?)),
    },
    Target {
        name: "credential",
        decoder: "Authenticator::authenticate",
        build: || Ok(Box::new(CredentialTarget::new()?)),
    },
    Target {
        name: "headers",
        decoder: "TraceHeaders::from_record + DeadLetter::record",
        build: || Ok(Box::new(HeadersTarget::new())),
    },
    Target {
        name: "query",
        decoder: "Query<Consistency> + keel_ids::check/check_stream",
        build: || Ok(Box::new(QueryTarget::new())),
    },
];

/// The target named `name`.
pub fn target(name: &str) -> anyhow::Result<&'static Target> {
    TARGETS.iter().find(|target| target.name == name).with_context(|| {
        let names: Vec<_> = TARGETS.iter().map(|target| target.name).collect();
        format!("no fuzz target {name:?}; the targets are {}", names.join(", "))
    })
}

/// How a decoder answered an input, when the answer broke nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// It took the input: a command or event decoded, a credential authenticated, a trace
    /// context kept from the headers, the read-your-writes parameters understood.
    Accepted,
    /// It refused the input with an error.
    Refused,
}

/// What made an input a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    /// The decoder panicked.
    Panic,
    /// The decoder answered, but broke a property of its target.
    Violation,
    /// Peak RSS went over [`MEMORY_LIMIT_BYTES`] while the target ran (the inputs in flight
    /// are saved as suspects).
    Memory,
    /// Building an input with a library's encoder panicked (not a decoder; no input saved).
    Generator,
}

/// One finding.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The target.
    pub target: &'static str,
    /// What happened.
    pub kind: FindingKind,
    /// The panic (with its location) or the broken property.
    pub message: String,
    /// Where its input is saved, when it was (the first few per target are).
    pub input: Option<PathBuf>,
}

/// One target's figures.
#[derive(Debug, Clone)]
pub struct TargetReport {
    /// The target.
    pub name: &'static str,
    /// Inputs fed.
    pub inputs: u64,
    /// Inputs the decoder accepted (see [`Answer::Accepted`]): how deep the inputs reach.
    pub accepted: u64,
    /// Wall time, generation of the inputs included.
    pub elapsed: Duration,
    /// The longest single decoder call.
    pub slowest: Duration,
    /// Calls that panicked.
    pub panics: u64,
    /// Inputs that were findings of any kind (panics included).
    pub findings: u64,
    /// The first findings with distinct messages of each worker: every saved input is one.
    pub samples: Vec<Finding>,
    /// The process's peak RSS when the target finished, if the platform tells.
    pub peak_rss_bytes: Option<u64>,
}

/// A whole run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The seed it ran from.
    pub seed: u64,
    /// Per target, in run order.
    pub targets: Vec<TargetReport>,
    /// The process's peak RSS at the end, if the platform tells.
    pub peak_rss_bytes: Option<u64>,
}

impl Report {
    /// Findings of every target.
    pub fn findings(&self) -> u64 {
        self.targets.iter().map(|target| target.findings).sum()
    }
}

/// Runs every selected target with `config`, calling `on_target` as each one finishes.
///
/// Panics of the decoders are caught and recorded; while this runs the panic hook records
/// instead of printing. A hang ends the process (see [`HANG_LIMIT`]).
pub fn run(config: &FuzzConfig, mut on_target: impl FnMut(&TargetReport)) -> anyhow::Result<Report> {
    anyhow::ensure!(config.threads >= 1, "at least one thread is needed");
    for name in &config.only {
        target(name)?;
    }
    let selected: Vec<(usize, &'static Target)> = TARGETS
        .iter()
        .enumerate()
        .filter(|(_, target)| config.only.is_empty() || config.only.iter().any(|name| name == target.name))
        .collect();
    let watch = Watch::new(config.threads, config.findings_dir.clone());
    let _capture = PanicCapture::install();
    let targets = std::thread::scope(|scope| {
        scope.spawn(|| watch.guard());
        let result = selected
            .iter()
            .map(|(index, target)| {
                let report = run_target(config, *index, target, &watch)?;
                on_target(&report);
                Ok(report)
            })
            .collect::<anyhow::Result<Vec<_>>>();
        watch.stop.store(true, Ordering::Relaxed);
        result
    })?;
    Ok(Report {
        seed: config.seed,
        targets,
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// Feeds one saved input to target `name`: `Ok(Ok(answer))` when the decoder handles it,
/// `Ok(Err(finding))` when it panics or breaks its target's property.
pub fn replay(name: &str, input: &[u8]) -> anyhow::Result<Result<Answer, String>> {
    let decoder = (target(name)?.build)()?;
    let _capture = PanicCapture::install();
    Ok(match panic::catch_unwind(AssertUnwindSafe(|| decoder.feed(input))) {
        Ok(outcome) => outcome,
        Err(payload) => Err(panic_message(payload.as_ref())),
    })
}

/// The process's peak resident set size (`VmHWM`), on Linux.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_status_kib("VmHWM:").map(|kib| kib * 1024)
}

fn current_rss_bytes() -> Option<u64> {
    proc_status_kib("VmRSS:").map(|kib| kib * 1024)
}

fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}
