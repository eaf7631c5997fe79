//! The command payload schemas of every domain under a directory (`--schemas`): what lets
//! `keel command send` encode a command of any domain from JSON, knowing none of the
//! domains' Rust types.
//!
//! A command schema is an `.avsc` file, at any depth, whose record's namespace ends in
//! `.commands` (`schemas/customer-support/commands/IssueRefund.v1.avsc` is
//! `dev.keel.support.commands.IssueRefund`); every other file is left alone, and so are
//! Keel's own admin commands (`dev.keel.system.commands`: `keel admin` sends those, to the
//! admin topic). A command type is the record's name; where two namespaces both define it,
//! the namespace must be given.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use keel_codec::{CommandHeader, Wire};

/// The suffix of the namespaces that hold command payload schemas.
const COMMANDS: &str = ".commands";

/// The namespace of Keel's admin commands, which `keel admin` sends, not `command send`.
const SYSTEM_COMMANDS: &str = "dev.keel.system.commands";

/// One version of one command payload schema, as read.
#[derive(Debug, Clone)]
struct Document {
    /// Where it was read.
    path: PathBuf,
    /// Its record's namespace, e.g. `dev.keel.support.commands`.
    namespace: String,
    /// Its record's name: the command type.
    name: String,
    /// Its `keel.schema_version` (1 when absent).
    version: i64,
    /// The document as parsed, to tell a copy from a conflicting definition.
    json: serde_json::Value,
    /// The document.
    text: String,
}

/// Every command payload schema under a directory, every version.
#[derive(Debug, Clone)]
pub struct CommandSchemas {
    root: PathBuf,
    documents: Vec<Document>,
}

impl CommandSchemas {
    /// Reads the command schemas under `root`, at any depth. A directory with none is an
    /// error (the wrong `--schemas`), and so is a name defined twice at one version with two
    /// different documents.
    pub fn load(root: &Path) -> anyhow::Result<Self> {
        let mut files = Vec::new();
        avsc_files(root, &mut files)
            .with_context(|| format!("reading the schemas under {} (--schemas, KEEL_SCHEMAS)", root.display()))?;
        let mut documents: Vec<Document> = Vec::new();
        for path in files {
            let Some(document) = read(&path)? else { continue };
            let same = documents.iter().find(|known| {
                (&known.namespace, &known.name, known.version)
                    == (&document.namespace, &document.name, document.version)
            });
            match same {
                Some(known) if known.json == document.json => {}
                Some(known) => anyhow::bail!(
                    "{} and {} both define {}.{} version {}, differently",
                    known.path.display(),
                    document.path.display(),
                    document.namespace,
                    document.name,
                    document.version
                ),
                None => documents.push(document),
            }
        }
        anyhow::ensure!(
            !documents.is_empty(),
            "no command schemas under {} (*.avsc files of a record in a *{COMMANDS} namespace); \
             pass --schemas or set KEEL_SCHEMAS",
            root.display()
        );
        Ok(Self {
            root: root.to_owned(),
            documents,
        })
    }

    /// The command types by namespace.
    pub fn types(&self) -> BTreeMap<&str, BTreeSet<&str>> {
        let mut types: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for document in &self.documents {
            types
                .entry(document.namespace.as_str())
                .or_default()
                .insert(document.name.as_str());
        }
        types
    }

    /// The namespace whose schemas define `command_type`: `namespace` when given, else the
    /// only one that does.
    pub fn namespace_of(&self, command_type: &str, namespace: Option<&str>) -> anyhow::Result<String> {
        let types = self.types();
        if let Some(namespace) = namespace {
            let Some(names) = types.get(namespace) else {
                anyhow::bail!(
                    "no command schemas of namespace {namespace} under {}; its namespaces: {}",
                    self.root.display(),
                    types.keys().copied().collect::<Vec<_>>().join(", ")
                );
            };
            anyhow::ensure!(
                names.contains(command_type),
                "namespace {namespace} has no command type {command_type}; its types: {}",
                names.iter().copied().collect::<Vec<_>>().join(", ")
            );
            return Ok(namespace.to_owned());
        }
        let defining: Vec<&str> = types
            .iter()
            .filter(|(_, names)| names.contains(command_type))
            .map(|(namespace, _)| *namespace)
            .collect();
        match defining.as_slice() {
            [namespace] => Ok((*namespace).to_owned()),
            [] => anyhow::bail!(
                "unknown command type {command_type}; the schemas under {} define {}",
                self.root.display(),
                types
                    .iter()
                    .map(|(namespace, names)| format!(
                        "{} ({namespace})",
                        names.iter().copied().collect::<Vec<_>>().join(", ")
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            several => anyhow::bail!(
                "command type {command_type} is defined in namespaces {}: pick one with --namespace",
                several.join(", ")
            ),
        }
    }

    /// The codec of the commands of `namespace`, every version of each.
    pub fn wire(&self, namespace: &str) -> anyhow::Result<Wire> {
        let documents = self
            .documents
            .iter()
            .filter(|document| document.namespace == namespace)
            .map(|document| document.text.as_str());
        // A command codec never names an event; the events' namespace only completes it.
        let events = format!("{}.events", namespace.strip_suffix(COMMANDS).unwrap_or(namespace));
        Wire::from_schemas(documents, namespace, &events)
            .with_context(|| format!("the command schemas of {namespace} under {}", self.root.display()))
    }

    /// The command message of type `command_type` (of `namespace`, when several define it)
    /// with the payload `fields`, under the type's newest schema version: what the handler's
    /// `Wire::decode_command` reads back into the domain's command.
    pub fn encode(
        &self,
        header: CommandHeader,
        command_type: &str,
        namespace: Option<&str>,
        fields: &serde_json::Value,
    ) -> anyhow::Result<Vec<u8>> {
        let namespace = self.namespace_of(command_type, namespace)?;
        self.wire(&namespace)?
            .encode_command_json(header, command_type, fields)
            .with_context(|| format!("--payload does not fit {namespace}.{command_type}"))
    }
}

/// Every `.avsc` file under `dir`, in a stable order.
fn avsc_files(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries = std::fs::read_dir(dir)?.collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::path);
    for entry in entries {
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            avsc_files(&path, files)?;
        } else if path.extension().is_some_and(|extension| extension == "avsc") {
            files.push(path);
        }
    }
    Ok(())
}

/// The schema in `path` when it is a command's; `None` for any other schema.
fn read(path: &Path) -> anyhow::Result<Option<Document>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let Some(name) = json.get("name").and_then(serde_json::Value::as_str) else {
        return Ok(None);
    };
    // A dotted name carries its namespace and overrides the `namespace` attribute.
    let (namespace, name) = match name.rsplit_once('.') {
        Some((namespace, name)) => (namespace, name),
        None => (
            json.get("namespace").and_then(serde_json::Value::as_str).unwrap_or(""),
            name,
        ),
    };
    if !namespace.ends_with(COMMANDS)
        || namespace == SYSTEM_COMMANDS
        || json.get("type").and_then(serde_json::Value::as_str) != Some("record")
    {
        return Ok(None);
    }
    Ok(Some(Document {
        path: path.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        version: json
            .get("keel.schema_version")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(1),
        json,
        text,
    }))
}

#[cfg(test)]
mod tests;
