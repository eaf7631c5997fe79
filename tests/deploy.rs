//! Checks of `deploy/` and the `Dockerfile`, which cannot be run here (no Docker engine, no
//! cluster): they are parsed and held against the sources instead.
//!
//! - The dashboard and the alert rules name only `keel_*` metrics a service emits.
//! - `compose.yaml` and `k8s/` run every service; every `KEEL_*` variable they set goes
//!   through the binary's own clap parser, so a name the binary does not read, a value its
//!   flag rejects or a required variable left out fails here as it would at start.
//! - Probes, healthchecks, Services and Prometheus targets use the ops address each service
//!   is given; the image builds and ships every binary the manifests run.
//! - Strimzi's topics match keel-kafka's layout, and the services reach the Kafka and the
//!   ScyllaDB the operators' resources define.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Command, CommandFactory, Subcommand};
use keel_kafka::topics::{TopicNames, TopicSettings, TopicSpec, command_path_topics, segment_for};
use keel_testkit::TestResult;
use serde::Deserialize;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The text of every `.rs` file under `services/` and `libs/`.
fn sources() -> TestResult<Vec<String>> {
    let mut texts = Vec::new();
    for folder in ["services", "libs"] {
        let mut stack = vec![root().join(folder)];
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                for entry in std::fs::read_dir(&path)? {
                    stack.push(entry?.path());
                }
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                texts.push(std::fs::read_to_string(&path)?);
            }
        }
    }
    Ok(texts)
}

/// The string literals that follow `marker` in the sources.
fn literals_after(marker: &str) -> TestResult<BTreeSet<String>> {
    let mut found = BTreeSet::new();
    for text in sources()? {
        for piece in text.split(marker).skip(1) {
            if let Some(literal) = piece
                .trim_start()
                .strip_prefix('"')
                .and_then(|rest| rest.split('"').next())
            {
                found.insert(literal.to_owned());
            }
        }
    }
    Ok(found)
}

/// Metric names in `metrics::counter!("…")`, `gauge!` and `histogram!` calls of the sources.
fn emitted_metrics() -> TestResult<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for macro_name in ["counter!(", "gauge!(", "histogram!("] {
        names.extend(literals_after(macro_name)?);
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

// ---------------------------------------------------------------------------------------------
// The services and their binaries.

/// A Keel service as deployed: its binary and the variable that sets the address of its
/// `/healthz`, `/readyz` and `/metrics` (the query API serves them beside the API).
struct Service {
    binary: &'static str,
    ops_variable: &'static str,
}

const SERVICES: [Service; 4] = [
    Service {
        binary: "keel-handler",
        ops_variable: "KEEL_OPS_ADDR",
    },
    Service {
        binary: "keel-projector",
        ops_variable: "KEEL_OPS_ADDR",
    },
    Service {
        binary: "keel-query",
        ops_variable: "KEEL_QUERY_ADDR",
    },
    Service {
        binary: "keel-admin",
        ops_variable: "KEEL_OPS_ADDR",
    },
];

fn service(binary: &str) -> Option<&'static Service> {
    SERVICES.iter().find(|service| service.binary == binary)
}

/// The flags and `KEEL_*` variables of a binary, as its own clap parser declares them: a
/// service's `main.rs` parses its config and keel-service's telemetry flags.
fn command_of(binary: &str) -> Option<Command> {
    let service = match binary {
        "keel-handler" => keel_handler::HandlerConfig::command(),
        "keel-projector" => return Some(keel_projector::cli::Cli::command()),
        "keel-query" => return Some(keel_query::Cli::command()),
        "keel-admin" => keel_admin::AdminConfig::command(),
        "keel" => return Some(keel_cli()),
        _ => return None,
    };
    Some(keel_service::telemetry::TelemetryArgs::augment_args(service))
}

/// `keel`'s command tree: `Top` of services/keel-cli/src/main.rs (private to the binary),
/// rebuilt from the library's subcommands.
fn keel_cli() -> Command {
    Command::new("keel")
        .subcommand(keel_cli::dev::Dev::augment_subcommands(Command::new("dev")))
        .subcommand(keel_cli::dev::TokenArgs::augment_args(Command::new("token")))
        .subcommand(keel_cli::command::Topics::augment_subcommands(Command::new("topics")))
        .subcommand(keel_cli::command::CommandCli::augment_subcommands(Command::new(
            "command",
        )))
        .subcommand(Command::new("projections").subcommand(keel_cql::CqlArgs::augment_args(Command::new("serving"))))
        .subcommand(keel_cli::admin::Admin::augment_subcommands(Command::new("admin")))
}

fn declares(binary: &str, variable: &str) -> bool {
    command_of(binary).is_some_and(|command| {
        command
            .get_arguments()
            .any(|arg| arg.get_env() == Some(OsStr::new(variable)))
    })
}

/// `KEEL_*` names in `env = "…"` attributes of the sources.
fn declared_variables() -> TestResult<BTreeSet<String>> {
    Ok(literals_after("env =")?
        .into_iter()
        .filter(|name| name.starts_with("KEEL_"))
        .collect())
}

/// The binaries the workspace's services build: their `[[bin]]` names, or the package's
/// name when it has a `src/main.rs` and no `[[bin]]`.
fn service_binaries() -> TestResult<BTreeSet<String>> {
    let mut binaries = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("services"))? {
        let folder = entry?.path();
        let Ok(manifest) = std::fs::read_to_string(folder.join("Cargo.toml")) else {
            continue;
        };
        let (mut section, mut package, mut bins) = ("", None, Vec::new());
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line;
            } else if let Some(name) = line.strip_prefix("name = ").map(|name| name.trim_matches('"')) {
                match section {
                    "[package]" => package = Some(name.to_owned()),
                    "[[bin]]" => bins.push(name.to_owned()),
                    _ => {}
                }
            }
        }
        if bins.is_empty() && folder.join("src/main.rs").exists() {
            bins.extend(package);
        }
        binaries.extend(bins);
    }
    Ok(binaries)
}

/// A flag's value in the environment: `true` or `false`, which every reading clap offers
/// accepts.
fn flag_value(name: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("{name}={other:?}: a flag takes true or false")),
    }
}

/// Drops the `env` of every argument, so the test process's own `KEEL_*` variables (the
/// test servers' addresses) cannot stand in for ones a manifest leaves out.
fn without_env(command: Command) -> Command {
    command
        .mut_args(|arg| arg.env(None::<&'static str>))
        .mut_subcommands(without_env)
}

/// Parses `argv` (a container's command, binary first) with the `KEEL_*` variables of `env`
/// as the binary would: each variable becomes the flag that declares it (an unknown one is
/// an error), and the binary's parser checks every value and that no required flag is
/// missing.
fn parse_as_binary(argv: &[String], env: &BTreeMap<String, String>) -> Result<(), String> {
    let binary = argv.first().ok_or("the command is empty")?;
    let root_command = command_of(binary).ok_or_else(|| format!("{binary} is not a binary of the services"))?;
    let mut leaf = &root_command;
    for word in &argv[1..] {
        match leaf.find_subcommand(word) {
            Some(subcommand) => leaf = subcommand,
            None => break,
        }
    }
    let mut args = argv.to_vec();
    for (name, value) in env.iter().filter(|(name, _)| name.starts_with("KEEL_")) {
        let arg = leaf
            .get_arguments()
            .find(|arg| arg.get_env() == Some(OsStr::new(name)))
            .ok_or_else(|| format!("`{}` does not read {name}", argv.join(" ")))?;
        let long = arg.get_long().ok_or_else(|| format!("{name} has no long flag"))?;
        if arg.get_action().takes_values() {
            args.push(format!("--{long}={value}"));
        } else if flag_value(name, value)? {
            args.push(format!("--{long}"));
        }
    }
    without_env(root_command)
        .try_get_matches_from(args)
        .map(drop)
        .map_err(|error| format!("`{}`: {}", argv.join(" "), error.render()))
}

/// The port of a service's ops address in `env`, which must be set and reachable from
/// outside the container.
fn ops_port(service: &Service, env: &BTreeMap<String, String>) -> Result<u16, String> {
    let variable = service.ops_variable;
    if !declares(service.binary, variable) {
        return Err(format!("{} no longer declares {variable}", service.binary));
    }
    let value = env
        .get(variable)
        .ok_or_else(|| format!("{} needs {variable} (its default binds 127.0.0.1)", service.binary))?;
    let address: SocketAddr = value
        .parse()
        .map_err(|_| format!("{variable}={value} is not an address"))?;
    if address.ip().is_loopback() {
        return Err(format!(
            "{variable}={value} cannot be reached from outside the container"
        ));
    }
    Ok(address.port())
}

// ---------------------------------------------------------------------------------------------
// YAML.

fn deploy() -> PathBuf {
    root().join("deploy")
}

/// A YAML value as JSON, with `<<` merge keys applied.
fn yaml(text: &str) -> TestResult<Value> {
    let mut value: serde_norway::Value = serde_norway::from_str(text)?;
    value.apply_merge()?;
    Ok(serde_json::to_value(value)?)
}

/// Every non-empty document of a YAML file.
fn yaml_documents(path: &Path) -> TestResult<Vec<Value>> {
    let text = std::fs::read_to_string(path)?;
    let mut documents = Vec::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        let mut value = serde_norway::Value::deserialize(document)?;
        value.apply_merge()?;
        if !value.is_null() {
            documents.push(serde_json::to_value(value)?);
        }
    }
    Ok(documents)
}

/// A scalar as the text a process would see.
fn text(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

/// A command: a list of words, or a string split on whitespace.
fn words(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().map(text).collect(),
        Value::String(line) => line.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|selector| !selector.is_empty() && selector.iter().all(|(key, value)| &labels[key] == value))
}

fn report(problems: &[String]) {
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// deploy/compose.yaml.

/// The services of compose.yaml, by name.
fn compose_services() -> TestResult<serde_json::Map<String, Value>> {
    let compose = yaml(&std::fs::read_to_string(deploy().join("compose.yaml"))?)?;
    compose["services"]
        .as_object()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("compose.yaml has no services"))
}

fn compose_env(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Object(map) => map.iter().map(|(name, value)| (name.clone(), text(value))).collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|item| item.split_once('='))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// Bind mounts of a compose service: (source relative to deploy/, target).
fn compose_mounts(service: &Value) -> Vec<(String, String)> {
    service["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|volume| volume.starts_with('.'))
        .filter_map(|volume| {
            let mut parts = volume.split(':');
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect()
}

#[test]
fn compose_runs_every_service_with_variables_its_binary_declares() -> TestResult {
    let declared = declared_variables()?;
    assert!(
        declared.contains("KEEL_KAFKA_BROKERS"),
        "the source scan finds variables: {declared:?}"
    );
    let services = compose_services()?;
    let mut problems = Vec::new();
    let mut running = BTreeSet::new();
    for (name, spec) in &services {
        let command = words(&spec["command"]);
        let env = compose_env(spec);
        for variable in env.keys().filter(|variable| variable.starts_with("KEEL_")) {
            if !declared.contains(variable) {
                problems.push(format!(
                    "compose service {name} sets {variable}, which no source declares"
                ));
            }
        }
        let Some(binary) = command.first().filter(|binary| command_of(binary).is_some()) else {
            continue;
        };
        running.insert(binary.clone());
        if let Err(problem) = parse_as_binary(&command, &env) {
            problems.push(format!("compose service {name}: {problem}"));
        }
    }
    for service in &SERVICES {
        if !running.contains(service.binary) {
            problems.push(format!("compose.yaml runs no {}", service.binary));
        }
    }
    for step in [["keel", "dev", "init"], ["keel", "topics", "create"]] {
        let step = step.join(" ");
        let found = services.values().any(|spec| words(&spec["command"]).join(" ") == step);
        if !found {
            problems.push(format!("compose.yaml has no set-up step `{step}`"));
        }
    }
    report(&problems);
    Ok(())
}

#[test]
fn compose_healthchecks_ask_readyz_on_each_services_ops_address() -> TestResult {
    let mut problems = Vec::new();
    for (name, spec) in compose_services()? {
        let Some(service) = words(&spec["command"]).first().and_then(|binary| service(binary)) else {
            continue;
        };
        let port = match ops_port(service, &compose_env(&spec)) {
            Ok(port) => port,
            Err(problem) => {
                problems.push(format!("compose service {name}: {problem}"));
                continue;
            }
        };
        let probe = words(&spec["healthcheck"]["test"]).join(" ");
        let expected = format!(":{port}/readyz");
        if !probe.contains(&expected) {
            problems.push(format!(
                "compose service {name}: the healthcheck `{probe}` should ask {expected}"
            ));
        }
    }
    report(&problems);
    Ok(())
}

#[test]
fn prometheus_scrapes_every_compose_service_on_its_ops_address() -> TestResult {
    let config = yaml(&std::fs::read_to_string(deploy().join("prometheus/prometheus.yml"))?)?;
    let mut targets = BTreeSet::new();
    for job in config["scrape_configs"].as_array().into_iter().flatten() {
        let path = job["metrics_path"].as_str().unwrap_or("/metrics");
        for target in job["static_configs"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|group| group["targets"].as_array().into_iter().flatten())
        {
            targets.insert((text(target), path.to_owned()));
        }
    }
    let mut problems = Vec::new();
    for (name, spec) in compose_services()? {
        let Some(service) = words(&spec["command"]).first().and_then(|binary| service(binary)) else {
            continue;
        };
        if let Ok(port) = ops_port(service, &compose_env(&spec)) {
            let target = (format!("{name}:{port}"), "/metrics".to_owned());
            if !targets.contains(&target) {
                problems.push(format!("prometheus.yml does not scrape {target:?}: {targets:?}"));
            }
        }
    }
    report(&problems);
    Ok(())
}

/// Whether `path` matches a `rule_files` pattern (`*` within the file name only).
fn glob_matches(pattern: &str, path: &str) -> bool {
    match pattern.split_once('*') {
        Some((prefix, suffix)) => {
            path.starts_with(prefix) && path.ends_with(suffix) && !path[prefix.len()..].contains('/')
        }
        None => pattern == path,
    }
}

#[test]
fn compose_mounts_the_alerts_dashboard_and_configs_where_their_readers_look() -> TestResult {
    let services = compose_services()?;
    let mut problems = Vec::new();
    for (name, spec) in &services {
        for (source, _) in compose_mounts(spec) {
            if !deploy().join(&source).exists() {
                problems.push(format!("compose service {name} mounts {source}, which does not exist"));
            }
        }
    }
    let mounted = |service: &str, source: &str| {
        services
            .get(service)
            .map(compose_mounts)
            .into_iter()
            .flatten()
            .find(|(from, _)| from == source)
            .map(|(_, target)| target)
    };

    let config = yaml(&std::fs::read_to_string(deploy().join("prometheus/prometheus.yml"))?)?;
    let rule_files: Vec<String> = config["rule_files"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    match mounted("prometheus", "./grafana/alerts.yml") {
        Some(target) if rule_files.iter().any(|pattern| glob_matches(pattern, &target)) => {}
        other => problems.push(format!(
            "prometheus must mount ./grafana/alerts.yml where rule_files {rule_files:?} look, not at {other:?}"
        )),
    }
    let flags = words(&services["prometheus"]["command"]);
    match mounted("prometheus", "./prometheus/prometheus.yml") {
        Some(target) if flags.contains(&format!("--config.file={target}")) => {}
        other => problems.push(format!(
            "prometheus reads {flags:?}, prometheus.yml is mounted at {other:?}"
        )),
    }

    let providers = yaml(&std::fs::read_to_string(
        deploy().join("grafana/provisioning/dashboards/keel.yml"),
    )?)?;
    let folders: Vec<String> = providers["providers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|provider| text(&provider["options"]["path"]))
        .collect();
    match mounted("grafana", "./grafana/keel-dashboard.json") {
        Some(target)
            if folders
                .iter()
                .any(|folder| Path::new(&target).parent() == Some(Path::new(folder))) => {}
        other => problems.push(format!(
            "grafana must mount keel-dashboard.json in a provider folder {folders:?}, not at {other:?}"
        )),
    }
    report(&problems);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The Dockerfile.

#[test]
fn the_image_builds_and_ships_every_binary_the_manifests_run() -> TestResult {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile"))?;
    let tokens: Vec<&str> = dockerfile.split_whitespace().collect();
    let built: BTreeSet<&str> = tokens
        .windows(2)
        .filter(|pair| pair[0] == "--bin")
        .map(|pair| pair[1])
        .collect();
    let shipped: BTreeSet<&str> = dockerfile
        .lines()
        .filter(|line| line.starts_with("COPY --from=builder"))
        .flat_map(str::split_whitespace)
        .filter_map(|word| word.strip_prefix("/out/"))
        .collect();
    let mut problems = Vec::new();
    for required in ["cargo build --release --locked", "cmake", "USER 10001"] {
        if !dockerfile.contains(required) {
            problems.push(format!("the Dockerfile lacks `{required}`"));
        }
    }
    let ignored = std::fs::read_to_string(root().join(".dockerignore"))?;
    for path in ["target/", ".local/", "bench/results/"] {
        if !ignored.lines().any(|line| line.trim() == path) {
            problems.push(format!(".dockerignore does not keep out {path}"));
        }
    }

    let mut run: BTreeSet<String> = SERVICES.iter().map(|service| service.binary.to_owned()).collect();
    for spec in compose_services()?.values() {
        if spec["build"].is_object() {
            run.extend(words_first(&spec["command"]));
        }
    }
    for (_, workload) in K8s::load()?.workloads() {
        for container in containers(workload) {
            if image_name(container) == "keel" {
                run.extend(words_first(&container["command"]));
            }
        }
    }
    let binaries = service_binaries()?;
    for binary in &run {
        if !binaries.contains(binary) {
            problems.push(format!(
                "the manifests run {binary}, which no services/*/Cargo.toml builds"
            ));
        }
        if !built.contains(binary.as_str()) || !shipped.contains(binary.as_str()) {
            problems.push(format!(
                "the Dockerfile must build (--bin) and copy (/out/) {binary}: built {built:?}, shipped {shipped:?}"
            ));
        }
    }
    report(&problems);
    Ok(())
}

fn words_first(command: &Value) -> Option<String> {
    words(command).into_iter().next()
}

// ---------------------------------------------------------------------------------------------
// deploy/k8s.

/// Every object of deploy/k8s with the file it is in, and the kustomization.
struct K8s {
    objects: Vec<(String, Value)>,
    kustomization: Value,
}

impl K8s {
    fn load() -> TestResult<Self> {
        let folder = deploy().join("k8s");
        let mut objects = Vec::new();
        let mut kustomization = Value::Null;
        let mut stack = vec![folder.clone()];
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                for entry in std::fs::read_dir(&path)? {
                    stack.push(entry?.path());
                }
            } else if path.extension().is_some_and(|ext| ext == "yaml" || ext == "yml") {
                let file = path.strip_prefix(&folder)?.to_string_lossy().into_owned();
                for document in yaml_documents(&path)? {
                    if document["kind"] == "Kustomization" {
                        kustomization = document;
                    } else {
                        objects.push((file.clone(), document));
                    }
                }
            }
        }
        anyhow::ensure!(kustomization.is_object(), "deploy/k8s has no kustomization.yaml");
        objects.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Self { objects, kustomization })
    }

    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .iter()
            .map(|(_, object)| object)
            .filter(move |object| object["kind"] == kind)
    }

    fn named(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects
            .iter()
            .map(|(_, object)| object)
            .find(|object| object["kind"] == kind && object["metadata"]["name"] == name)
    }

    /// Deployments and StatefulSets, by name.
    fn workloads(&self) -> Vec<(String, &Value)> {
        self.objects
            .iter()
            .map(|(_, object)| object)
            .filter(|object| object["kind"] == "Deployment" || object["kind"] == "StatefulSet")
            .map(|object| (text(&object["metadata"]["name"]), object))
            .collect()
    }

    /// Secrets the kustomization generates, and Secret objects.
    fn secrets(&self) -> BTreeSet<String> {
        let generated = self.kustomization["secretGenerator"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|generator| text(&generator["name"]));
        let objects = self.of_kind("Secret").map(|secret| text(&secret["metadata"]["name"]));
        generated.chain(objects).collect()
    }

    /// A container's environment: its ConfigMaps (`envFrom`), then its own `env` entries
    /// (a value taken from the pod stands as `<fieldPath>`).
    fn env(&self, container: &Value) -> Result<BTreeMap<String, String>, String> {
        let mut env = BTreeMap::new();
        for source in container["envFrom"].as_array().into_iter().flatten() {
            let name = source["configMapRef"]["name"]
                .as_str()
                .ok_or_else(|| format!("envFrom {source} is not a ConfigMap (its keys cannot be checked)"))?;
            let map = self
                .named("ConfigMap", name)
                .ok_or_else(|| format!("envFrom names ConfigMap {name}, which is not in deploy/k8s"))?;
            for (key, value) in map["data"].as_object().into_iter().flatten() {
                env.insert(key.clone(), text(value));
            }
        }
        for entry in container["env"].as_array().into_iter().flatten() {
            let value = match (&entry["value"], &entry["valueFrom"]["fieldRef"]["fieldPath"]) {
                (Value::Null, Value::String(field)) => format!("<{field}>"),
                (value, _) => text(value),
            };
            env.insert(text(&entry["name"]), value);
        }
        Ok(env)
    }
}

fn pod_spec(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]
}

fn containers(workload: &Value) -> impl Iterator<Item = &Value> {
    pod_spec(workload)["containers"].as_array().into_iter().flatten()
}

fn image_name(container: &Value) -> String {
    let image = text(&container["image"]);
    image.split(':').next().unwrap_or_default().to_owned()
}

/// The port number a probe or a Service's `targetPort` names in `container`.
fn container_port(container: &Value, port: &Value) -> Option<u16> {
    match port {
        Value::Number(number) => number.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(name) => container["ports"]
            .as_array()?
            .iter()
            .find(|declared| declared["name"] == name.as_str())
            .and_then(|declared| declared["containerPort"].as_u64())
            .and_then(|n| u16::try_from(n).ok()),
        _ => None,
    }
}

/// The Keel service each workload runs: (workload, its service, its container).
fn keel_workloads(k8s: &K8s) -> Vec<(String, &'static Service, &Value, &Value)> {
    let mut found = Vec::new();
    for (name, workload) in k8s.workloads() {
        for container in containers(workload) {
            if let Some(service) = words_first(&container["command"]).and_then(|binary| service(&binary)) {
                found.push((name.clone(), service, workload, container));
            }
        }
    }
    found
}

#[test]
fn k8s_objects_are_complete_and_listed_by_the_kustomization() -> TestResult {
    let k8s = K8s::load()?;
    let mut problems = Vec::new();
    let listed: BTreeSet<String> = k8s.kustomization["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    let files: BTreeSet<String> = k8s.objects.iter().map(|(file, _)| file.clone()).collect();
    if listed != files {
        problems.push(format!(
            "kustomization.yaml lists {listed:?}, deploy/k8s holds {files:?}"
        ));
    }
    for (file, object) in &k8s.objects {
        for field in ["apiVersion", "kind"] {
            if !object[field].is_string() {
                problems.push(format!("{file}: an object without {field}: {object}"));
            }
        }
        if !object["metadata"]["name"].is_string() {
            problems.push(format!("{file}: a {} without metadata.name", object["kind"]));
        }
    }
    report(&problems);
    Ok(())
}

#[test]
fn k8s_runs_every_service_with_variables_its_binary_declares() -> TestResult {
    let k8s = K8s::load()?;
    let declared = declared_variables()?;
    let mut problems = Vec::new();
    for service in &SERVICES {
        let count = keel_workloads(&k8s)
            .iter()
            .filter(|(_, found, _, _)| found.binary == service.binary)
            .count();
        if count != 1 {
            problems.push(format!(
                "deploy/k8s runs {} in {count} workloads, not one",
                service.binary
            ));
        }
    }
    for (name, workload) in k8s.workloads() {
        for container in containers(workload) {
            let command = words(&container["command"]);
            if image_name(container) == "keel" && command_of(command.first().map_or("", String::as_str)).is_none() {
                problems.push(format!(
                    "{name} runs the keel image with {command:?}, not a Keel binary"
                ));
            }
            let env = match k8s.env(container) {
                Ok(env) => env,
                Err(problem) => {
                    problems.push(format!("{name}: {problem}"));
                    continue;
                }
            };
            for variable in env.keys().filter(|variable| variable.starts_with("KEEL_")) {
                if !declared.contains(variable) {
                    problems.push(format!("{name} sets {variable}, which no source declares"));
                }
            }
            if command_of(command.first().map_or("", String::as_str)).is_some()
                && let Err(problem) = parse_as_binary(&command, &env)
            {
                problems.push(format!("{name}: {problem}"));
            }
        }
    }
    report(&problems);
    Ok(())
}

#[test]
fn k8s_workloads_have_resources_probes_a_service_and_a_disruption_budget() -> TestResult {
    let k8s = K8s::load()?;
    let mut problems = Vec::new();
    for (name, workload) in k8s.workloads() {
        let labels = &workload["spec"]["template"]["metadata"]["labels"];
        if !labels_match(&workload["spec"]["selector"]["matchLabels"], labels) {
            problems.push(format!("{name}: its selector does not select its own pods"));
        }
        let budgets = k8s
            .of_kind("PodDisruptionBudget")
            .filter(|budget| labels_match(&budget["spec"]["selector"]["matchLabels"], labels))
            .count();
        if budgets != 1 {
            problems.push(format!("{name}: {budgets} PodDisruptionBudgets select it, not one"));
        }
        let spec = pod_spec(workload);
        let all_containers = spec["initContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(containers(workload));
        for container in all_containers {
            let resources = &container["resources"];
            for (field, value) in [
                ("requests.cpu", &resources["requests"]["cpu"]),
                ("requests.memory", &resources["requests"]["memory"]),
                ("limits.memory", &resources["limits"]["memory"]),
            ] {
                if value.is_null() {
                    problems.push(format!("{name}/{}: no resources.{field}", text(&container["name"])));
                }
            }
        }
        for volume in spec["volumes"].as_array().into_iter().flatten() {
            let missing = if let Some(map) = volume["configMap"]["name"].as_str() {
                k8s.named("ConfigMap", map)
                    .is_none()
                    .then(|| format!("ConfigMap {map}"))
            } else if let Some(secret) = volume["secret"]["secretName"].as_str() {
                (!k8s.secrets().contains(secret)).then(|| format!("Secret {secret}"))
            } else if let Some(claim) = volume["persistentVolumeClaim"]["claimName"].as_str() {
                k8s.named("PersistentVolumeClaim", claim)
                    .is_none()
                    .then(|| format!("PersistentVolumeClaim {claim}"))
            } else {
                None
            };
            if let Some(missing) = missing {
                problems.push(format!("{name} mounts {missing}, which deploy/k8s does not define"));
            }
        }
        if workload["kind"] == "StatefulSet" {
            let governing = text(&workload["spec"]["serviceName"]);
            if k8s.named("Service", &governing).is_none() {
                problems.push(format!("{name}: its serviceName {governing} is not a Service"));
            }
        }
    }

    for (name, service, workload, container) in keel_workloads(&k8s) {
        let port = match k8s.env(container).and_then(|env| ops_port(service, &env)) {
            Ok(port) => port,
            Err(problem) => {
                problems.push(format!("{name}: {problem}"));
                continue;
            }
        };
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            let get = &container[probe]["httpGet"];
            if get["path"] != path || container_port(container, &get["port"]) != Some(port) {
                problems.push(format!("{name}: {probe} should get {path} on port {port}, has {get}"));
            }
        }
        let annotations = &workload["spec"]["template"]["metadata"]["annotations"];
        if text(&annotations["prometheus.io/port"]) != port.to_string() || annotations["prometheus.io/scrape"] != "true"
        {
            problems.push(format!(
                "{name}: Prometheus annotations should scrape port {port}: {annotations}"
            ));
        }
        let labels = &workload["spec"]["template"]["metadata"]["labels"];
        let exposed = k8s.of_kind("Service").any(|candidate| {
            labels_match(&candidate["spec"]["selector"], labels)
                && candidate["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|service_port| container_port(container, &service_port["targetPort"]) == Some(port))
        });
        if !exposed {
            problems.push(format!(
                "{name}: no Service exposes its port {port} (metrics, and the API for the query)"
            ));
        }
    }
    report(&problems);
    Ok(())
}

/// A workload's replicas (1 when unset).
fn replicas(workload: &Value) -> u64 {
    workload["spec"]["replicas"].as_u64().unwrap_or(1)
}

#[test]
fn k8s_scales_handler_and_projector_out_within_the_partitions_and_runs_one_admin() -> TestResult {
    let k8s = K8s::load()?;
    let mut problems = Vec::new();
    for (name, service, workload, container) in keel_workloads(&k8s) {
        let count = replicas(workload);
        let env = k8s.env(container).map_err(anyhow::Error::msg)?;
        match service.binary {
            "keel-admin" if count != 1 => problems.push(format!("{name}: the admin service runs alone, not {count}")),
            "keel-handler" | "keel-projector" => {
                let partitions: u64 = env
                    .get("KEEL_PARTITIONS")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| {
                        topic_partitions(&k8s, env.get("KEEL_EVENTS_TOPIC").map_or("keel.events", String::as_str))
                    });
                if !(2..=partitions).contains(&count) {
                    problems.push(format!(
                        "{name}: {count} replicas; a consumer group of 2 to {partitions} (the partitions) instances"
                    ));
                }
            }
            _ => {}
        }
    }
    report(&problems);
    Ok(())
}

fn topic_name(topic: &Value) -> String {
    match topic["spec"]["topicName"].as_str() {
        Some(name) => name.to_owned(),
        None => text(&topic["metadata"]["name"]),
    }
}

fn topic_partitions(k8s: &K8s, name: &str) -> u64 {
    k8s.of_kind("KafkaTopic")
        .find(|topic| topic_name(topic) == name)
        .and_then(|topic| topic["spec"]["partitions"].as_u64())
        .unwrap_or(0)
}

/// The topic specs keel-kafka and the admin service would create with the settings the
/// handler's and the admin service's ConfigMaps give.
fn expected_topics(k8s: &K8s) -> TestResult<Vec<TopicSpec>> {
    let env_of = |binary: &str| -> TestResult<BTreeMap<String, String>> {
        let (_, _, _, container) = keel_workloads(k8s)
            .into_iter()
            .find(|(_, service, _, _)| service.binary == binary)
            .ok_or_else(|| anyhow::anyhow!("deploy/k8s runs no {binary}"))?;
        k8s.env(container).map_err(anyhow::Error::msg)
    };
    let number = |env: &BTreeMap<String, String>, name: &str| -> TestResult<u64> {
        let value = env.get(name).ok_or_else(|| anyhow::anyhow!("{name} is not set"))?;
        Ok(value.parse()?)
    };
    let handler = env_of("keel-handler")?;
    let names = TopicNames {
        commands: handler["KEEL_COMMANDS_TOPIC"].clone(),
        events: handler["KEEL_EVENTS_TOPIC"].clone(),
        results: handler["KEEL_RESULTS_TOPIC"].clone(),
        dlq: handler["KEEL_DLQ_TOPIC"].clone(),
    };
    let plaintext = Duration::from_secs(number(&handler, "KEEL_PLAINTEXT_RETENTION_HOURS")? * 3600);
    let settings = TopicSettings {
        partitions: i32::try_from(number(&handler, "KEEL_PARTITIONS")?)?,
        replication: i32::try_from(number(&handler, "KEEL_REPLICATION")?)?,
        command_retention: plaintext,
        dlq_retention: plaintext,
        ..TopicSettings::default()
    };
    let mut specs = command_path_topics(&names, &settings);

    let admin = env_of("keel-admin")?;
    let retention = Duration::from_secs(number(&admin, "KEEL_PLAINTEXT_RETENTION_HOURS")? * 3600);
    specs.push(TopicSpec {
        name: admin["KEEL_ADMIN_TOPIC"].clone(),
        partitions: i32::try_from(number(&admin, "KEEL_ADMIN_PARTITIONS")?)?,
        replication: i32::try_from(number(&admin, "KEEL_REPLICATION")?)?,
        config: vec![
            ("retention.ms", retention.as_millis().to_string()),
            ("segment.ms", segment_for(retention).as_millis().to_string()),
            ("cleanup.policy", "delete".into()),
        ],
    });
    Ok(specs)
}

#[test]
fn k8s_kafka_is_kraft_and_its_topics_are_keel_kafkas_layout() -> TestResult {
    let k8s = K8s::load()?;
    let mut problems = Vec::new();
    let kafka = k8s
        .of_kind("Kafka")
        .next()
        .ok_or_else(|| anyhow::anyhow!("deploy/k8s has no Strimzi Kafka"))?;
    let cluster = text(&kafka["metadata"]["name"]);
    let pools: Vec<&Value> = k8s
        .of_kind("KafkaNodePool")
        .filter(|pool| pool["metadata"]["labels"]["strimzi.io/cluster"] == cluster.as_str())
        .collect();
    let has_role = |role: &str| {
        pools.iter().any(|pool| {
            pool["spec"]["roles"]
                .as_array()
                .is_some_and(|roles| roles.iter().any(|r| r == role))
        })
    };
    if !has_role("controller") || !has_role("broker") {
        problems.push(format!(
            "Kafka {cluster} needs KRaft node pools with controllers and brokers"
        ));
    }
    let brokers: u64 = pools
        .iter()
        .filter(|pool| {
            pool["spec"]["roles"]
                .as_array()
                .is_some_and(|roles| roles.iter().any(|r| r == "broker"))
        })
        .map(|pool| replicas(pool))
        .sum();
    let bootstrap: BTreeSet<String> = kafka["spec"]["kafka"]["listeners"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|listener| listener["tls"] == false && listener["type"] == "internal")
        .map(|listener| format!("{cluster}-kafka-bootstrap:{}", text(&listener["port"])))
        .collect();
    for (name, _, _, container) in keel_workloads(&k8s) {
        let env = k8s.env(container).map_err(anyhow::Error::msg)?;
        if let Some(brokers) = env.get("KEEL_KAFKA_BROKERS")
            && !bootstrap.contains(brokers)
        {
            problems.push(format!(
                "{name}: KEEL_KAFKA_BROKERS={brokers}, the plain listeners are {bootstrap:?}"
            ));
        }
    }

    let expected = expected_topics(&k8s)?;
    let topics: Vec<&Value> = k8s.of_kind("KafkaTopic").collect();
    for spec in &expected {
        let Some(topic) = topics.iter().find(|topic| topic_name(topic) == spec.name) else {
            problems.push(format!("no KafkaTopic for {}", spec.name));
            continue;
        };
        if topic["metadata"]["labels"]["strimzi.io/cluster"] != cluster.as_str() {
            problems.push(format!(
                "KafkaTopic {} is not labelled for cluster {cluster}",
                spec.name
            ));
        }
        let partitions = topic["spec"]["partitions"].as_i64();
        let replication = topic["spec"]["replicas"].as_i64();
        if partitions != Some(i64::from(spec.partitions)) || replication != Some(i64::from(spec.replication)) {
            problems.push(format!(
                "KafkaTopic {}: {partitions:?} partitions × {replication:?} replicas, the services expect {} × {}",
                spec.name, spec.partitions, spec.replication
            ));
        }
        if u64::try_from(spec.replication).unwrap_or(u64::MAX) > brokers {
            problems.push(format!(
                "KafkaTopic {}: more replicas than the {brokers} brokers",
                spec.name
            ));
        }
        for (key, value) in &spec.config {
            let found = &topic["spec"]["config"][*key];
            if text(found) != *value {
                problems.push(format!(
                    "KafkaTopic {}: {key} is {found}, keel-kafka sets {value}",
                    spec.name
                ));
            }
        }
    }
    let expected_names: BTreeSet<&str> = expected.iter().map(|spec| spec.name.as_str()).collect();
    for topic in &topics {
        if !expected_names.contains(topic_name(topic).as_str()) {
            problems.push(format!("KafkaTopic {} is used by no service", topic_name(topic)));
        }
    }
    report(&problems);
    Ok(())
}

#[test]
fn k8s_services_reach_the_scylla_cluster_and_create_the_keyspace_first() -> TestResult {
    let k8s = K8s::load()?;
    let mut problems = Vec::new();
    let scylla = k8s
        .of_kind("ScyllaCluster")
        .next()
        .ok_or_else(|| anyhow::anyhow!("deploy/k8s has no ScyllaCluster"))?;
    let client = format!("{}-client", text(&scylla["metadata"]["name"]));
    let datacenter = &scylla["spec"]["datacenter"];
    let members: u64 = datacenter["racks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|rack| rack["members"].as_u64())
        .sum();
    let keyspace_cql = k8s
        .named("ConfigMap", "keel-cql")
        .map(|map| text(&map["data"]["keyspace.cql"]))
        .unwrap_or_default();
    let replication = format!("'{}': ", text(&datacenter["name"]));
    match keyspace_cql.split_once(&replication).and_then(|(_, rest)| {
        rest.split(|c: char| !c.is_ascii_digit()).next()?.parse::<u64>().ok()
    }) {
        Some(factor) if (1..=members).contains(&factor) && keyspace_cql.contains("NetworkTopologyStrategy") => {}
        _ => problems.push(format!(
            "keel-cql must create the keyspace with NetworkTopologyStrategy, {replication}<1..={members}>: {keyspace_cql}"
        )),
    }
    // The key vault's lightweight transactions are not supported in keyspaces with tablets.
    let flat = keyspace_cql.split_whitespace().collect::<Vec<_>>().join(" ");
    if !flat.contains("AND tablets = {'enabled': false}") {
        problems.push(format!(
            "keel-cql must create the keyspace with tablets disabled: {keyspace_cql}"
        ));
    }
    for (name, _, workload, container) in keel_workloads(&k8s) {
        let env = k8s.env(container).map_err(anyhow::Error::msg)?;
        let nodes = env.get("KEEL_CQL_NODES").map(String::as_str).unwrap_or_default();
        if nodes != format!("{client}:9042") {
            problems.push(format!(
                "{name}: KEEL_CQL_NODES={nodes:?}, the cluster's Service is {client}:9042"
            ));
        }
        let keyspace = env.get("KEEL_KEYSPACE").map_or("keel", String::as_str);
        let creates = keyspace_cql
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(6)
            .any(|statement| {
                statement[..5]
                    .join(" ")
                    .eq_ignore_ascii_case("create keyspace if not exists")
                    && statement[5] == keyspace
            });
        if !creates {
            problems.push(format!("{name}: keel-cql does not create its keyspace {keyspace}"));
        }
        let creates_first = pod_spec(workload)["initContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|init| {
                let command = words(&init["command"]);
                command.first().is_some_and(|program| program == "cqlsh") && command.contains(&client)
            });
        if !creates_first {
            problems.push(format!(
                "{name}: no init container creates the keyspace on {client} before the service would (replication 1)"
            ));
        }
    }
    report(&problems);
    Ok(())
}
