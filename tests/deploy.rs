//! Checks of `deploy/`: the dashboard and the alert rules parse, and every `keel_*` metric
//! they name is one a service emits (so a renamed metric cannot silently blank a panel).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use keel_testkit::TestResult;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Metric names in `metrics::counter!("…")`, `gauge!` and `histogram!` calls of the sources.
fn emitted_metrics() -> TestResult<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for folder in ["services", "libs"] {
        let mut stack = vec![root().join(folder)];
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                for entry in std::fs::read_dir(&path)? {
                    stack.push(entry?.path());
                }
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let text = std::fs::read_to_string(&path)?;
                for macro_name in ["counter!(", "gauge!(", "histogram!("] {
                    for piece in text.split(macro_name).skip(1) {
                        if let Some(name) = piece
                            .trim_start()
                            .strip_prefix('"')
                            .and_then(|rest| rest.split('"').next())
                        {
                            names.insert(name.to_owned());
                        }
                    }
                }
            }
        }
    }
    Ok(names)
}

/// `keel_*` metric names in a PromQL expression (histogram series map to their metric).
fn referenced(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("keel_"))
        .map(|word| {
            word.trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count")
                .to_owned()
        })
        .collect()
}

fn check(exprs: &[String], emitted: &BTreeSet<String>, file: &str) {
    assert!(!exprs.is_empty(), "{file} has no expressions");
    for expr in exprs {
        for metric in referenced(expr) {
            assert!(
                emitted.contains(&metric),
                "{file} uses {metric}, which no service emits (in `{expr}`)"
            );
        }
    }
}

#[test]
fn the_dashboard_names_only_metrics_the_services_emit() -> TestResult {
    let emitted = emitted_metrics()?;
    assert!(
        emitted.contains("keel_handler_commands_total"),
        "the source scan finds metrics: {emitted:?}"
    );
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        root().join("deploy/grafana/keel-dashboard.json"),
    )?)?;
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|panel| panel["targets"].as_array().into_iter().flatten())
        .filter_map(|target| target["expr"].as_str().map(str::to_owned))
        .collect();
    check(&exprs, &emitted, "keel-dashboard.json");
    Ok(())
}

#[test]
fn the_alert_rules_name_only_metrics_the_services_emit() -> TestResult {
    let emitted = emitted_metrics()?;
    let text = std::fs::read_to_string(root().join("deploy/grafana/alerts.yml"))?;
    let json: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let rules: serde_json::Value = serde_json::from_str(&json)?;
    let rules: Vec<&serde_json::Value> = rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .collect();
    for rule in &rules {
        assert!(
            rule["alert"].is_string() && rule["expr"].is_string(),
            "a rule needs alert and expr: {rule}"
        );
    }
    let exprs: Vec<String> = rules
        .iter()
        .filter_map(|rule| rule["expr"].as_str().map(str::to_owned))
        .collect();
    check(&exprs, &emitted, "alerts.yml");
    Ok(())
}
