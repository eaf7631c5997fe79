//! `make fuzz`: feeds every decoder of outside input (command and admin envelopes, event
//! envelopes, credentials, record headers, query parameters) millions of generated and
//! mutated inputs, and prints one line per decoder. Needs no servers.
//!
//! The harness is `keel_integration_tests::fuzz`. The seed is printed so a run can be
//! repeated (`KEEL_FUZZ_SEED`, with the same thread count); each finding's input is saved
//! under `.local/fuzz/findings/`, and `--replay <file>` feeds one saved input again.
//!
//! Exit status: 0 without findings, 1 with findings, 2 on a hang (a decoder call past 5 s),
//! 3 when RSS runs away.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use keel_integration_tests::fuzz::{self, FuzzConfig, MEMORY_LIMIT_BYTES, Report, TargetReport};

#[derive(Debug, Parser)]
#[command(about = "Keel's fuzzer: every decoder of outside input, no panic, no hang, memory bounded")]
struct Args {
    /// Inputs fed to each decoder.
    #[arg(long, env = "KEEL_FUZZ_INPUTS", default_value_t = 10_000_000)]
    inputs: u64,
    /// The seed every input follows from; a random one when absent (always printed).
    #[arg(long, env = "KEEL_FUZZ_SEED")]
    seed: Option<u64>,
    /// Worker threads per decoder (a seed repeats a run only with the same count).
    #[arg(long, env = "KEEL_FUZZ_THREADS", default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    threads: u8,
    /// Run only these decoders, comma-separated (command, admin, event, credential, headers, query).
    #[arg(long, env = "KEEL_FUZZ_ONLY", value_delimiter = ',')]
    only: Vec<String>,
    /// Where findings' inputs are saved.
    #[arg(long, env = "KEEL_FUZZ_FINDINGS", default_value_os_t = fuzz::default_findings_dir())]
    findings: PathBuf,
    /// Feed this one saved input again (its target is the file name up to the last `-`,
    /// unless `--only` names one) and say what happens.
    #[arg(long)]
    replay: Option<PathBuf>,
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    if let Some(file) = &args.replay {
        return replay(file, args.only.first().map(String::as_str));
    }
    let seed = args.seed.unwrap_or_else(rand::random);
    let config = FuzzConfig {
        inputs: args.inputs,
        seed,
        threads: usize::from(args.threads),
        findings_dir: args.findings,
        only: args.only,
    };
    println!(
        "keel-fuzz: {} inputs per decoder, seed {seed} (KEEL_FUZZ_SEED={seed}), {} threads",
        config.inputs, config.threads
    );
    println!(
        "{:<11} {:>11} {:>9} {:>9} {:>10} {:>12} {:>7} {:>9} {:>9}",
        "decoder", "inputs", "accepted", "seconds", "inputs/s", "slowest µs", "panics", "findings", "peak MiB"
    );
    let report = fuzz::run(&config, print_row)?;
    print_summary(&report);
    Ok(if report.findings() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_row(target: &TargetReport) {
    let seconds = target.elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        target.inputs as f64 / seconds
    } else {
        0.0
    };
    let accepted = if target.inputs > 0 {
        100.0 * target.accepted as f64 / target.inputs as f64
    } else {
        0.0
    };
    println!(
        "{:<11} {:>11} {:>8.1}% {:>9.1} {:>10.0} {:>12} {:>7} {:>9} {:>9}",
        target.name,
        target.inputs,
        accepted,
        seconds,
        rate,
        target.slowest.as_micros(),
        target.panics,
        target.findings,
        target
            .peak_rss_bytes
            .map_or("?".to_owned(), |bytes| (bytes >> 20).to_string()),
    );
}

fn print_summary(report: &Report) {
    let peak = report
        .peak_rss_bytes
        .map_or("unknown".to_owned(), |bytes| format!("{} MiB", bytes >> 20));
    println!(
        "peak RSS {peak} (bound {} MiB); seed {} (KEEL_FUZZ_SEED={})",
        MEMORY_LIMIT_BYTES >> 20,
        report.seed,
        report.seed
    );
    let findings = report.findings();
    if findings == 0 {
        println!("no findings");
        return;
    }
    println!("{findings} findings:");
    for finding in report.targets.iter().flat_map(|target| &target.samples) {
        let input = finding
            .input
            .as_ref()
            .map_or("input not saved".to_owned(), |path| format!("input {}", path.display()));
        println!("- {} {:?} ({input}): {}", finding.target, finding.kind, finding.message);
    }
}

fn replay(file: &std::path::Path, target: Option<&str>) -> anyhow::Result<ExitCode> {
    let input = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let named = file
        .file_stem()
        .and_then(|stem| stem.to_str())
        .and_then(|stem| stem.split_once('-'))
        .map(|(target, _)| target);
    let target = target
        .or(named)
        .with_context(|| format!("name the target of {} with --only", file.display()))?;
    match fuzz::replay(target, &input)? {
        Ok(answer) => {
            println!(
                "{target}: {} ({} bytes) handled: {answer:?}",
                file.display(),
                input.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(finding) => {
            println!("{target}: {} is a finding: {finding}", file.display());
            Ok(ExitCode::FAILURE)
        }
    }
}
