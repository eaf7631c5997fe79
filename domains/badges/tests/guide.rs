//! `docs/your-domain.md` quotes this crate, so what it shows compiles and runs here.
//!
//! Every ```` ```rust ````, ```` ```toml ````, ```` ```json ```` and ```` ```cql ```` block of the guide
//! has a marker `<!-- file: <path from the workspace root> -->` on the line before it, and
//! appears in that file verbatim (line by line, up to the whitespace around each line);
//! Rust blocks come from this crate's `.rs` files. Shell blocks are not checked, except
//! that every command they send (`--type T --payload '<json>'`) fits its schema and
//! decodes into a [`BadgeCommand`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use keel_badges::{Badge, BadgeCommand};
use keel_codec::{CommandHeader, Wire};
use keel_envelope::{Actor, ActorKind};
use uuid::Uuid;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The languages whose blocks must be excerpts of real files.
const CHECKED: [&str; 4] = ["rust", "toml", "json", "cql"];
const GUIDE: &str = "docs/your-domain.md";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fenced block of the guide.
struct Block {
    /// The line of its opening fence, from 1.
    line: usize,
    /// Its language, e.g. `rust`.
    lang: String,
    /// The file its marker names.
    file: Option<String>,
    /// Its lines.
    lines: Vec<String>,
}

impl Block {
    fn name(&self) -> String {
        let first = self.lines.iter().find(|line| !line.trim().is_empty());
        format!(
            "{GUIDE}:{} (```{} block starting `{}`)",
            self.line,
            self.lang,
            first.map_or("", |line| line.trim())
        )
    }
}

fn blocks(guide: &str) -> Result<Vec<Block>, String> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    let mut marker = None;
    for (index, line) in guide.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (Some(_), Some("")) => blocks.extend(open.take()),
            (Some(block), _) => block.lines.push(line.to_owned()),
            (None, Some(info)) => {
                let lang = info.split([',', ' ']).next().unwrap_or_default().to_owned();
                open = Some(Block {
                    line: index + 1,
                    lang,
                    file: marker.take(),
                    lines: Vec::new(),
                });
            }
            (None, None) if line.trim().is_empty() => {}
            (None, None) => {
                marker = (line.trim().strip_prefix("<!-- file:"))
                    .and_then(|rest| rest.strip_suffix("-->"))
                    .map(|path| path.trim().to_owned());
            }
        }
    }
    match open {
        Some(block) => Err(format!("{}: never closed", block.name())),
        None => Ok(blocks),
    }
}

/// Why `block` is not an excerpt of the file its marker names, if it is not.
fn mismatch(block: &Block) -> Option<String> {
    let Some(file) = &block.file else {
        return Some(format!(
            "{}: no `<!-- file: ... -->` marker on the line before",
            block.name()
        ));
    };
    if block.lang == "rust" && !(file.starts_with("domains/badges/") && file.ends_with(".rs")) {
        return Some(format!("{}: {file} is not a .rs file of domains/badges", block.name()));
    }
    let text = match std::fs::read_to_string(root().join(file)) {
        Ok(text) => text,
        Err(error) => return Some(format!("{}: reading {file}: {error}", block.name())),
    };
    let source: Vec<&str> = text.lines().map(str::trim).collect();
    let quoted: Vec<&str> = block.lines.iter().map(|line| line.trim()).collect();
    if quoted.iter().all(|line| line.is_empty()) {
        return Some(format!("{}: empty", block.name()));
    }
    // The longest run of the block's lines found in the file, to name the first that differs.
    let matched = (0..source.len())
        .map(|start| {
            (source[start..].iter().zip(&quoted))
                .take_while(|(a, b)| a == b)
                .count()
        })
        .max()
        .unwrap_or(0);
    (matched < quoted.len()).then(|| {
        format!(
            "{}: not verbatim in {file}; its line {} `{}` differs",
            block.name(),
            matched + 1,
            quoted[matched]
        )
    })
}

#[test]
fn every_rust_toml_json_and_cql_block_of_the_guide_is_an_excerpt_of_its_file() -> TestResult {
    let guide = std::fs::read_to_string(root().join(GUIDE))?;
    let blocks = blocks(&guide)?;
    let checked: Vec<&Block> = (blocks.iter())
        .filter(|block| CHECKED.contains(&block.lang.as_str()))
        .collect();
    let langs: BTreeSet<&str> = checked.iter().map(|block| block.lang.as_str()).collect();
    assert_eq!(langs, BTreeSet::from(CHECKED), "the guide quotes every kind of file");
    let failures: Vec<String> = checked.iter().filter_map(|block| mismatch(block)).collect();
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n"));
    Ok(())
}

#[test]
fn a_changed_or_unmarked_block_is_caught() -> TestResult {
    let file = "domains/badges/src/lib.rs";
    let guide = format!(
        "<!-- file: {file} -->\n```rust\npub struct Badge;\n```\n\n<!-- file: {file} -->\n```rust\npub struct Badge2;\n```\n\n```rust\npub struct Badge;\n```\n"
    );
    let found: Vec<Option<String>> = blocks(&guide)?.iter().map(mismatch).collect();
    assert!(found[0].is_none(), "{found:?}");
    assert!(
        found[1].as_deref().is_some_and(|why| why.contains("not verbatim")),
        "{found:?}"
    );
    assert!(
        found[2].as_deref().is_some_and(|why| why.contains("no `<!-- file")),
        "{found:?}"
    );
    Ok(())
}

/// `(type, payload)` of every `keel command send ... --type T --payload '<json>'` in the
/// guide's shell blocks (a command continued over lines with `\` is one line).
fn sent(guide: &str) -> Result<Vec<(String, String)>, String> {
    let mut sent = Vec::new();
    for block in blocks(guide)?.iter().filter(|block| block.lang == "sh") {
        let script = block.lines.join("\n").replace("\\\n", " ");
        for command in script.lines().filter(|line| line.contains("command send")) {
            let after = |flag: &str| command.split(flag).nth(1).map(str::trim_start);
            let kind = after("--type ").and_then(|rest| rest.split_whitespace().next());
            let payload = after("--payload '").and_then(|rest| rest.split('\'').next());
            match (kind, payload) {
                (Some(kind), Some(payload)) => sent.push((kind.to_owned(), payload.to_owned())),
                _ => return Err(format!("{}: `{command}` has no --type T --payload '...'", block.name())),
            }
        }
    }
    Ok(sent)
}

#[test]
fn every_command_the_guide_sends_fits_its_schema_and_decodes_into_the_domain() -> TestResult {
    let guide = std::fs::read_to_string(root().join(GUIDE))?;
    let wire = Wire::new::<Badge>()?;
    let mut kinds = BTreeSet::new();
    for (kind, payload) in sent(&guide)? {
        let header = CommandHeader {
            command_id: Uuid::new_v4(),
            tenant: "acme".into(),
            stream: "b-7".into(),
            expected_version: None,
            issued_at_micros: 1,
            actor: Actor {
                kind: ActorKind::Human,
                id: "frank".into(),
                delegation: vec![],
                authorization: None,
            },
            credential: "token".into(),
            correlation_id: Uuid::new_v4(),
            causation_id: None,
        };
        let fields: serde_json::Value =
            serde_json::from_str(&payload).map_err(|error| format!("{payload}: {error}"))?;
        let bytes =
            (wire.encode_command_json(header, &kind, &fields)).map_err(|error| format!("{kind} {payload}: {error}"))?;
        let decoded = wire.decode_command::<BadgeCommand>(&bytes);
        decoded.map_err(|error| format!("{kind} {payload}: {}", error.error))?;
        kinds.insert(kind);
    }
    assert_eq!(
        kinds,
        BTreeSet::from(["IssueBadge".to_owned(), "ReturnBadge".to_owned()])
    );
    Ok(())
}
