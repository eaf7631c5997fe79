//! The fuzzer in small: every decoder of outside input takes 20,000 generated and mutated
//! inputs without a panic, a broken property or runaway memory (a hang ends the test's
//! process with a failure). Needs no servers; `make fuzz` runs the same harness at scale.

use keel_integration_tests::fuzz::{self, FuzzConfig, TARGETS};
use keel_testkit::TestResult;

#[test]
fn every_decoder_of_outside_input_handles_twenty_thousand_fuzzed_inputs() -> TestResult {
    let seed = 0x6b65_656c_2d66_757a;
    let report = fuzz::run(&FuzzConfig::new(20_000, seed), |_| {})?;
    let fed: Vec<_> = report
        .targets
        .iter()
        .map(|target| (target.name, target.inputs))
        .collect();
    let expected: Vec<_> = TARGETS.iter().map(|target| (target.name, 20_000)).collect();
    assert_eq!(fed, expected, "every target is fed every input");
    let findings: Vec<String> = report
        .targets
        .iter()
        .flat_map(|target| &target.samples)
        .map(|finding| {
            format!(
                "{} {:?}: {} ({:?})",
                finding.target, finding.kind, finding.message, finding.input
            )
        })
        .collect();
    assert_eq!(report.findings(), 0, "seed {seed}: {findings:#?}");
    Ok(())
}
