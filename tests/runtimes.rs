//! The services are runtimes: a runtime crate depends on no domain crate, so a team plugs its
//! own domain in from an app crate of its own (issue 17). Checked on the resolved dependency
//! graph (`cargo metadata`), normal dependencies only, transitively.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

use anyhow::Context;
use keel_testkit::TestResult;
use serde_json::Value;

/// The crates that hold a domain.
const DOMAINS: [&str; 3] = ["keel-customer-support", "keel-approvals", "keel-badges"];

/// The runtimes, and the libraries whose ports and read models they offer every domain.
const RUNTIMES: [&str; 7] = [
    "keel-handler",
    "keel-projector",
    "keel-query",
    "keel-admin",
    "keel-results",
    "keel-projection",
    "keel-trails",
];

/// Package name → names of its normal dependencies, from `cargo metadata`.
fn normal_dependencies() -> TestResult<HashMap<String, Vec<String>>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--offline",
            "--manifest-path",
        ])
        .arg(root.join("Cargo.toml"))
        .output()
        .context("running cargo metadata")?;
    anyhow::ensure!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout)?;
    let names: HashMap<&str, &str> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|package| Some((package["id"].as_str()?, package["name"].as_str()?)))
        .collect();
    let mut graph = HashMap::new();
    for node in metadata["resolve"]["nodes"].as_array().into_iter().flatten() {
        let Some(name) = node["id"].as_str().and_then(|id| names.get(id)) else {
            continue;
        };
        let normal = node["deps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|dep| {
                dep["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|kind| kind["kind"].is_null())
            })
            .filter_map(|dep| dep["pkg"].as_str().and_then(|id| names.get(id)))
            .map(|name| (*name).to_owned())
            .collect();
        graph.insert((*name).to_owned(), normal);
    }
    Ok(graph)
}

#[test]
fn the_runtimes_depend_on_no_domain_crate() -> TestResult {
    let graph = normal_dependencies()?;
    for runtime in RUNTIMES {
        let mut seen = BTreeSet::new();
        let mut todo = vec![runtime.to_owned()];
        while let Some(name) = todo.pop() {
            if seen.insert(name.clone()) {
                todo.extend(graph.get(&name).cloned().unwrap_or_default());
            }
        }
        anyhow::ensure!(seen.len() > 1, "{runtime} is not in the dependency graph");
        let domains: Vec<&str> = DOMAINS
            .iter()
            .copied()
            .filter(|domain| seen.contains(*domain))
            .collect();
        anyhow::ensure!(domains.is_empty(), "{runtime} depends on {domains:?}");
    }
    Ok(())
}

#[test]
fn each_app_registers_its_domain() -> TestResult {
    let graph = normal_dependencies()?;
    let apps: [(&str, &[&str]); 3] = [
        (
            "keel-support-app",
            &[
                "keel-customer-support",
                "keel-support-projections",
                "keel-support-query",
            ],
        ),
        (
            "keel-approvals-app",
            &["keel-approvals", "keel-approvals-projections", "keel-approvals-query"],
        ),
        ("keel-badges", &["keel-handler", "keel-projector", "keel-query"]),
    ];
    for (app, registered) in apps {
        let dependencies = graph.get(app).with_context(|| format!("{app} is in the workspace"))?;
        for dependency in registered {
            anyhow::ensure!(
                dependencies.iter().any(|dep| dep == dependency),
                "{dependency} is not in {app}'s {dependencies:?}"
            );
        }
    }
    Ok(())
}

/// The second worked domain and the guide's are written only against Keel's public crates:
/// none of their crates depends on the first domain's.
#[test]
fn the_other_domains_need_nothing_of_the_first() -> TestResult {
    let graph = normal_dependencies()?;
    let crates = [
        "keel-approvals",
        "keel-approvals-projections",
        "keel-approvals-query",
        "keel-approvals-app",
        "keel-badges",
    ];
    for domain_crate in crates {
        let mut seen = BTreeSet::new();
        let mut todo = vec![domain_crate.to_owned()];
        while let Some(name) = todo.pop() {
            if seen.insert(name.clone()) {
                todo.extend(graph.get(&name).cloned().unwrap_or_default());
            }
        }
        let first: Vec<&String> = seen
            .iter()
            .filter(|name| name.starts_with("keel-") && name.contains("support"))
            .collect();
        anyhow::ensure!(first.is_empty(), "{domain_crate} depends on {first:?}");
    }
    Ok(())
}
