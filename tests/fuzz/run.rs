//! The runner: workers, the watchdog, panic capture.

use super::*;

/// One decoder, as a worker thread holds it.
pub(super) trait Decoder {
    /// Well-formed inputs (and a few of other decoders) to mutate.
    fn corpus(&self) -> &[Vec<u8>];
    /// An input built with knowledge of the format, if building one succeeds.
    fn generate(&mut self, rng: &mut StdRng) -> Option<Vec<u8>>;
    /// Feeds one input: whether the decoder accepted it, or (`Err`) the property of the
    /// target its answer broke.
    fn feed(&self, input: &[u8]) -> Result<Answer, String>;
}

/// What one worker thread is calling, for the watchdog.
#[derive(Default)]
pub(super) struct InFlight {
    pub(super) target: &'static str,
    pub(super) since: Option<Instant>,
    pub(super) input: Vec<u8>,
}

/// Inputs in flight (and their targets) when something went wrong.
pub(super) type Suspects = Vec<(&'static str, Vec<u8>)>;

/// The watchdog's view of the workers, and the findings directory.
pub(super) struct Watch {
    pub(super) slots: Vec<Mutex<InFlight>>,
    pub(super) stop: AtomicBool,
    pub(super) findings_dir: PathBuf,
    /// The inputs in flight when peak RSS first went over the bound.
    pub(super) memory_alarm: Mutex<Option<Suspects>>,
    pub(super) alarmed: AtomicBool,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Watch {
    pub(super) fn new(threads: usize, findings_dir: PathBuf) -> Self {
        Self {
            slots: (0..threads).map(|_| Mutex::new(InFlight::default())).collect(),
            stop: AtomicBool::new(false),
            findings_dir,
            memory_alarm: Mutex::new(None),
            alarmed: AtomicBool::new(false),
        }
    }

    /// Every 50 ms: ends the process on a call past [`HANG_LIMIT`] (status 2) or on RSS past
    /// [`ABORT_RSS_BYTES`] (status 3); notes the inputs in flight when peak RSS first
    /// passes [`MEMORY_LIMIT_BYTES`].
    pub(super) fn guard(&self) {
        while !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
            for slot in &self.slots {
                let slot = lock(slot);
                let Some(since) = slot.since else { continue };
                let running = since.elapsed();
                if running > HANG_LIMIT {
                    let saved = save_input(&self.findings_dir, slot.target, "hang", &slot.input);
                    eprintln!(
                        "hang: one call of target {} has run for {:.1} s; input of {} bytes {}; first 256 bytes: {}",
                        slot.target,
                        running.as_secs_f64(),
                        slot.input.len(),
                        saved_at(&saved),
                        hex(&slot.input[..slot.input.len().min(256)]),
                    );
                    std::process::exit(2);
                }
            }
            if !self.alarmed.load(Ordering::Relaxed) && peak_rss_bytes().is_some_and(|peak| peak > MEMORY_LIMIT_BYTES) {
                let suspects = self
                    .slots
                    .iter()
                    .map(|slot| lock(slot))
                    .filter(|slot| slot.since.is_some())
                    .map(|slot| (slot.target, slot.input.clone()))
                    .collect();
                *lock(&self.memory_alarm) = Some(suspects);
                self.alarmed.store(true, Ordering::Relaxed);
            }
            if let Some(rss) = current_rss_bytes().filter(|rss| *rss > ABORT_RSS_BYTES) {
                let in_flight: Vec<_> = self.slots.iter().map(|slot| lock(slot).target).collect();
                eprintln!(
                    "memory: RSS is {} MiB, over {} MiB; stopping (targets in flight: {in_flight:?})",
                    rss >> 20,
                    ABORT_RSS_BYTES >> 20
                );
                std::process::exit(3);
            }
        }
    }
}

thread_local! {
    /// The last panic of this thread, as the panic hook described it.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

pub(super) type PanicHook = Box<dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static>;

/// Replaces the panic hook by one that records the panic (message and location) for the
/// panicking thread instead of printing it; the previous hook comes back on drop.
pub(super) struct PanicCapture {
    pub(super) previous: Option<PanicHook>,
}

impl PanicCapture {
    pub(super) fn install() -> Self {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(|info| {
            LAST_PANIC.with(|last| *last.borrow_mut() = Some(info.to_string()));
        }));
        Self {
            previous: Some(previous),
        }
    }
}

impl Drop for PanicCapture {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            panic::set_hook(previous);
        }
    }
}

/// The recorded description of this thread's last panic, or the payload's text.
pub(super) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    LAST_PANIC.with(|last| last.borrow_mut().take()).unwrap_or_else(|| {
        payload
            .downcast_ref::<&str>()
            .map(|text| (*text).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic with a non-text payload".to_owned())
    })
}

/// Saves a finding's input; the path, or why it could not be saved.
pub(super) fn save_input(dir: &Path, target: &str, tag: &str, input: &[u8]) -> Result<PathBuf, String> {
    let path = dir.join(format!("{target}-{tag}.bin"));
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&path, input))
        .map(|()| path.clone())
        .map_err(|error| format!("could not be saved to {}: {error}", path.display()))
}

pub(super) fn saved_at(saved: &Result<PathBuf, String>) -> String {
    match saved {
        Ok(path) => format!("saved to {}", path.display()),
        Err(reason) => reason.clone(),
    }
}

/// What one worker saw.
#[derive(Default)]
pub(super) struct WorkerOutcome {
    pub(super) inputs: u64,
    pub(super) accepted: u64,
    pub(super) slowest: Duration,
    pub(super) panics: u64,
    pub(super) findings: u64,
    pub(super) samples: Vec<Finding>,
}

/// What the workers of one target share.
pub(super) struct Lane<'a> {
    pub(super) target: &'static Target,
    pub(super) watch: &'a Watch,
    pub(super) slot: &'a Mutex<InFlight>,
    pub(super) saved: &'a AtomicUsize,
}

impl Lane<'_> {
    pub(super) fn record(&self, outcome: &mut WorkerOutcome, kind: FindingKind, message: String, input: Option<&[u8]>) {
        outcome.findings += 1;
        if outcome.samples.iter().any(|sample| sample.message == message)
            || outcome.samples.len() >= MAX_MESSAGES_PER_WORKER
        {
            return;
        }
        let input = input.and_then(|input| {
            let n = self.saved.fetch_add(1, Ordering::Relaxed) + 1;
            (n <= MAX_SAVED_PER_TARGET).then(|| {
                save_input(&self.watch.findings_dir, self.target.name, &n.to_string(), input)
                    .unwrap_or_else(PathBuf::from)
            })
        });
        outcome.samples.push(Finding {
            target: self.target.name,
            kind,
            message,
            input,
        });
    }
}

pub(super) fn run_target(
    config: &FuzzConfig,
    index: usize,
    target: &'static Target,
    watch: &Watch,
) -> anyhow::Result<TargetReport> {
    let started = Instant::now();
    let saved = AtomicUsize::new(0);
    let threads = config.threads as u64;
    let outcomes: Vec<anyhow::Result<WorkerOutcome>> = std::thread::scope(|scope| {
        let workers: Vec<_> = watch
            .slots
            .iter()
            .enumerate()
            .map(|(worker, slot)| {
                let inputs = config.inputs / threads + u64::from((worker as u64) < config.inputs % threads);
                let seed = derive_seed(config.seed, index, worker);
                let lane = Lane {
                    target,
                    watch,
                    slot,
                    saved: &saved,
                };
                scope.spawn(move || fuzz(&lane, seed, inputs))
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a worker of target {} panicked", target.name)))
            })
            .collect()
    });
    let mut report = TargetReport {
        name: target.name,
        inputs: 0,
        accepted: 0,
        elapsed: Duration::ZERO,
        slowest: Duration::ZERO,
        panics: 0,
        findings: 0,
        samples: Vec::new(),
        peak_rss_bytes: None,
    };
    for outcome in outcomes {
        let outcome = outcome?;
        report.inputs += outcome.inputs;
        report.accepted += outcome.accepted;
        report.slowest = report.slowest.max(outcome.slowest);
        report.panics += outcome.panics;
        report.findings += outcome.findings;
        report.samples.extend(outcome.samples);
    }
    report.elapsed = started.elapsed();
    report.peak_rss_bytes = peak_rss_bytes();
    if let Some(suspects) = lock(&watch.memory_alarm).take() {
        report.findings += 1;
        let peak = report.peak_rss_bytes.unwrap_or_default();
        let mut inputs = Vec::new();
        for (n, (suspect_target, input)) in suspects.iter().enumerate() {
            let tag = format!("memory-{}", n + 1);
            inputs.push(saved_at(&save_input(&watch.findings_dir, suspect_target, &tag, input)));
        }
        report.samples.push(Finding {
            target: target.name,
            kind: FindingKind::Memory,
            message: format!(
                "peak RSS {} MiB, over the bound of {} MiB; inputs in flight: {}",
                peak >> 20,
                MEMORY_LIMIT_BYTES >> 20,
                if inputs.is_empty() {
                    "none".to_owned()
                } else {
                    inputs.join("; ")
                }
            ),
            input: None,
        });
    }
    Ok(report)
}

/// A seed per target and worker, apart from the others (splitmix64 of the three).
pub(super) fn derive_seed(seed: u64, target: usize, worker: usize) -> u64 {
    let mut z = seed ^ (((target as u64) << 32) | worker as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One worker: builds its own decoder and feeds it `inputs` inputs.
pub(super) fn fuzz(lane: &Lane<'_>, seed: u64, inputs: u64) -> anyhow::Result<WorkerOutcome> {
    let mut decoder = (lane.target.build)().with_context(|| format!("building fuzz target {}", lane.target.name))?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut outcome = WorkerOutcome::default();
    let corpus = decoder.corpus().to_vec();
    let mutator = Mutator::new(&corpus);
    for _ in 0..inputs {
        let input = match next_input(decoder.as_mut(), &mutator, &mut rng) {
            Ok(input) => input,
            Err(message) => {
                lane.record(&mut outcome, FindingKind::Generator, message, None);
                continue;
            }
        };
        let started = {
            let mut slot = lock(lane.slot);
            slot.target = lane.target.name;
            slot.input.clear();
            slot.input.extend_from_slice(&input);
            let now = Instant::now();
            slot.since = Some(now);
            now
        };
        let result = panic::catch_unwind(AssertUnwindSafe(|| decoder.feed(&input)));
        let took = started.elapsed();
        lock(lane.slot).since = None;
        outcome.inputs += 1;
        outcome.slowest = outcome.slowest.max(took);
        match result {
            Ok(Ok(Answer::Accepted)) => outcome.accepted += 1,
            Ok(Ok(Answer::Refused)) => {}
            Ok(Err(violation)) => lane.record(&mut outcome, FindingKind::Violation, violation, Some(&input)),
            Err(payload) => {
                outcome.panics += 1;
                let message = panic_message(payload.as_ref());
                lane.record(&mut outcome, FindingKind::Panic, message, Some(&input));
            }
        }
    }
    Ok(outcome)
}

/// The next input: random bytes (15 %), one the target builds (35 %, sometimes mutated
/// further), or a mutated seed. `Err` when building one panicked.
pub(super) fn next_input(decoder: &mut dyn Decoder, mutator: &Mutator, rng: &mut StdRng) -> Result<Vec<u8>, String> {
    let roll = rng.gen_range(0..100);
    let mut input = if roll < 15 {
        random_bytes(rng, MAX_RANDOM_BYTES)
    } else {
        let built = if roll < 50 {
            panic::catch_unwind(AssertUnwindSafe(|| decoder.generate(rng)))
                .map_err(|payload| format!("while building an input: {}", panic_message(payload.as_ref())))?
        } else {
            None
        };
        match built {
            Some(mut input) => {
                if rng.gen_bool(0.2) {
                    mutator.mutate(rng, &mut input, 2);
                }
                input
            }
            None => {
                let mut input = pick(rng, mutator.corpus).clone();
                mutator.mutate(rng, &mut input, 8);
                input
            }
        }
    };
    input.truncate(MAX_INPUT_BYTES);
    Ok(input)
}
