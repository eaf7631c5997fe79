//! One grammar for every id that enters Keel from outside: tenants, streams, actors (and
//! the actors they act for), data subjects, in commands, admin commands and query paths.
//!
//! An id is 1 to [`MAX_ID_BYTES`] bytes of ASCII letters and digits and the marks
//! `- _ . : @ + = ~`, starting with a letter or a digit. So an id is safe as it stands in
//! a URL path segment, a Kafka key (`tenant/stream`: no `/` inside), a CQL key (far below
//! the 65,535-byte limit), a log line (no control characters, no escapes, no spaces) and
//! a command-line argument (no leading `-`). Emails (`ops+bot@example.com`), UUIDs and
//! dotted names are ids.
//!
//! System streams are named by the system, not by senders: `keel.<kind>:<id>` (the
//! erasure of subject `S` is stream `keel.erasure:S`), so a stream id may carry a system
//! prefix of up to [`MAX_SYSTEM_PREFIX_BYTES`] before an id of the full length.
//!
//! Every entry point checks its ids with [`check`] (or [`check_stream`]) before anything
//! else reads them, and refuses the input with [`InvalidId::CODE`] otherwise.

use std::fmt;

/// The most bytes an id may have.
pub const MAX_ID_BYTES: usize = 256;

/// The most bytes of a system stream's prefix (`keel.erasure:`), beyond [`MAX_ID_BYTES`].
pub const MAX_SYSTEM_PREFIX_BYTES: usize = 32;

/// The prefix of every system stream name.
pub const SYSTEM_PREFIX: &str = "keel.";

/// What an id may hold, for error messages and docs.
pub const GRAMMAR: &str =
    "1 to 256 bytes of ASCII letters, digits and - _ . : @ + = ~, starting with a letter or digit";

/// An id that breaks the grammar: which field, and what is wrong with it. Its message
/// never repeats the id (it may be 70 KB, or hold a line break).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {problem}; an id is {GRAMMAR}")]
pub struct InvalidId {
    /// The field that held it, e.g. `stream_id`.
    pub field: &'static str,
    /// What is wrong.
    pub problem: Problem,
}

impl InvalidId {
    /// The stable reason of a refusal for an invalid id (command results, HTTP errors).
    pub const CODE: &'static str = "invalid_id";
}

/// What is wrong with an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// It has no bytes.
    Empty,
    /// It has this many bytes, more than the limit.
    TooLong(usize),
    /// It starts with a mark, not a letter or digit.
    BadStart,
    /// The byte at this index is not allowed (control characters, spaces, `/`, non-ASCII).
    BadByte(usize),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("is empty"),
            Self::TooLong(bytes) => write!(f, "is {bytes} bytes, over the limit of {MAX_ID_BYTES}"),
            Self::BadStart => f.write_str("does not start with a letter or digit"),
            Self::BadByte(at) => write!(f, "has a byte that is not allowed at index {at}"),
        }
    }
}

/// Whether `byte` may appear in an id.
const fn allowed(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b':' | b'@' | b'+' | b'=' | b'~')
}

/// Checks `id`, the value of `field`, against the grammar.
pub fn check(field: &'static str, id: &str) -> Result<(), InvalidId> {
    let invalid = |problem| Err(InvalidId { field, problem });
    let bytes = id.as_bytes();
    match bytes.first() {
        None => return invalid(Problem::Empty),
        Some(first) if !first.is_ascii_alphanumeric() => return invalid(Problem::BadStart),
        Some(_) => {}
    }
    if bytes.len() > MAX_ID_BYTES {
        return invalid(Problem::TooLong(bytes.len()));
    }
    match bytes.iter().position(|byte| !allowed(*byte)) {
        Some(at) => invalid(Problem::BadByte(at)),
        None => Ok(()),
    }
}

/// Whether `id` is a valid id.
pub fn is_valid(id: &str) -> bool {
    check("id", id).is_ok()
}

/// Checks a stream id: an id, or a system stream `keel.<kind>:<id>` whose prefix is at
/// most [`MAX_SYSTEM_PREFIX_BYTES`] bytes.
pub fn check_stream(field: &'static str, stream: &str) -> Result<(), InvalidId> {
    if let Some((prefix, id)) = system_parts(stream) {
        if prefix.len() > MAX_SYSTEM_PREFIX_BYTES {
            return Err(InvalidId {
                field,
                problem: Problem::TooLong(stream.len()),
            });
        }
        check(field, &prefix[..prefix.len() - 1])?;
        return check(field, id).map_err(|InvalidId { problem, .. }| InvalidId {
            field,
            problem: match problem {
                Problem::BadByte(at) => Problem::BadByte(at + prefix.len()),
                other => other,
            },
        });
    }
    check(field, stream)
}

/// `keel.<kind>:` and the rest, if `stream` is named like a system stream.
fn system_parts(stream: &str) -> Option<(&str, &str)> {
    let rest = stream.strip_prefix(SYSTEM_PREFIX)?;
    let colon = rest.find(':')?;
    let split = SYSTEM_PREFIX.len() + colon + 1;
    Some((&stream[..split], &stream[split..]))
}

/// Checks free text a person wrote (a reason): at most `max_bytes`, no control characters.
pub fn check_text(field: &'static str, text: &str, max_bytes: usize) -> Result<(), InvalidText> {
    if text.len() > max_bytes {
        return Err(InvalidText {
            field,
            problem: format!("is {} bytes, over the limit of {max_bytes}", text.len()),
        });
    }
    if text.chars().any(char::is_control) {
        return Err(InvalidText {
            field,
            problem: "holds a control character".into(),
        });
    }
    Ok(())
}

/// Text that is too long or holds control characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {problem}")]
pub struct InvalidText {
    /// The field that held it.
    pub field: &'static str,
    /// What is wrong.
    pub problem: String,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn ids_people_use_are_valid() {
        for id in [
            "acme",
            "c-001",
            "support-bot",
            "ops+bot@example.com",
            "4bf92f35-77b3-4da6-a3ce-929d0e0e4736",
            "orders.eu:42",
            "a",
            &"x".repeat(MAX_ID_BYTES),
        ] {
            assert_eq!(check("id", id), Ok(()), "{id}");
        }
    }

    #[test]
    fn each_kind_of_bad_id_is_named() {
        let problem = |id: &str| check("stream_id", id).map_err(|e| e.problem);
        assert_eq!(problem(""), Err(Problem::Empty));
        assert_eq!(problem(&"x".repeat(70_000)), Err(Problem::TooLong(70_000)));
        assert_eq!(problem("-rf"), Err(Problem::BadStart));
        assert_eq!(problem(".."), Err(Problem::BadStart));
        assert_eq!(problem("c\nforged"), Err(Problem::BadByte(1)));
        assert_eq!(problem("c\0"), Err(Problem::BadByte(1)));
        assert_eq!(problem("a/b"), Err(Problem::BadByte(1)));
        assert_eq!(problem("a b"), Err(Problem::BadByte(1)));
        assert_eq!(problem("\u{1b}[31m"), Err(Problem::BadStart));
        assert_eq!(problem("caf\u{e9}"), Err(Problem::BadByte(3)));
    }

    #[test]
    fn the_message_never_repeats_the_id() {
        let error = check("stream_id", "c\nFORGED line").err().map(|e| e.to_string());
        let message = error.unwrap_or_default();
        assert!(
            message.starts_with("stream_id has a byte that is not allowed"),
            "{message}"
        );
        assert!(!message.contains("FORGED"), "{message}");
    }

    #[test]
    fn a_system_stream_carries_a_full_length_id_after_its_prefix() {
        let subject = "s".repeat(MAX_ID_BYTES);
        assert_eq!(check_stream("stream_id", &format!("keel.erasure:{subject}")), Ok(()));
        assert_eq!(check_stream("stream_id", "keel.tenant-erasure"), Ok(()));
        assert!(check_stream("stream_id", &format!("keel.erasure:{subject}x")).is_err());
        assert!(check_stream("stream_id", "keel.erasure:").is_err());
        assert!(check_stream("stream_id", "keel.erasure:a\nb").is_err());
        assert!(check_stream("stream_id", &format!("keel.{}:a", "k".repeat(40))).is_err());
    }

    #[test]
    fn text_is_bounded_and_free_of_control_characters() {
        assert_eq!(check_text("reason", "ticket DSR-42, per art. 17", 100), Ok(()));
        assert!(check_text("reason", &"r".repeat(101), 100).is_err());
        assert!(check_text("reason", "a\nb", 100).is_err());
    }

    proptest! {
        #[test]
        fn any_string_is_judged_without_panic_and_valid_ids_stay_valid(id in ".{0,300}") {
            let verdict = check("id", &id);
            if verdict.is_ok() {
                prop_assert!(id.len() <= MAX_ID_BYTES && id.bytes().all(allowed));
            }
        }

        #[test]
        fn every_id_of_the_grammar_is_valid(id in "[A-Za-z0-9][A-Za-z0-9._:@+=~-]{0,255}") {
            prop_assert_eq!(check("id", &id), Ok(()));
        }
    }
}
