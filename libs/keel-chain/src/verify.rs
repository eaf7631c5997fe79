//! Walks a stream and reports the first broken link.

use std::collections::HashSet;

use ed25519_dalek::VerifyingKey;
use keel_envelope::EventEnvelope;

use crate::{ChainError, ChainHasher, GENESIS, HASH_LEN, SignedCheckpoint};

/// What kind of tampering a broken link shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakKind {
    /// The event's content no longer matches its hash.
    Edited,
    /// A version is missing: an event was removed.
    Removed,
    /// Events are out of order.
    Reordered,
    /// An event that does not belong: a repeated version, or one not linked to its predecessor.
    Inserted,
    /// The stream ends before a signed checkpoint's version.
    TruncatedTail,
    /// The chain is self-consistent but disagrees with a signed checkpoint: it was rewritten.
    Rewritten,
}

/// The first broken link of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// What went wrong.
    pub kind: BreakKind,
    /// The stream version expected at the break.
    pub version: i64,
    /// The event found there, if any.
    pub event_id: Option<String>,
}

/// What a walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every link holds; the head hash and version of the stream.
    Intact {
        /// Last version.
        version: i64,
        /// Hash of the last event.
        head: [u8; HASH_LEN],
    },
    /// The first broken link.
    Broken(ChainBreak),
}

/// Verifies a whole stream, in log order, from version 1; optionally against a signed
/// checkpoint (whose signature is checked first).
pub fn verify_stream(
    hasher: &ChainHasher,
    events: &[EventEnvelope],
    checkpoint: Option<(&SignedCheckpoint, &VerifyingKey)>,
) -> Result<Verdict, ChainError> {
    if let Some((cp, key)) = checkpoint {
        cp.verify(key)?;
    }
    let broken = |kind, version, event: Option<&EventEnvelope>| {
        Ok(Verdict::Broken(ChainBreak {
            kind,
            version,
            event_id: event.map(|e| e.event_id.clone()),
        }))
    };
    let mut prev = GENESIS;
    let mut seen = HashSet::new();
    let mut expected: i64 = 1;
    for (i, event) in events.iter().enumerate() {
        let v = event.stream_version;
        if v != expected {
            let kind = if seen.contains(&v) {
                BreakKind::Inserted
            } else if events[i + 1..].iter().any(|e| e.stream_version == expected) || v < expected {
                BreakKind::Reordered
            } else {
                BreakKind::Removed
            };
            return broken(kind, expected, Some(event));
        }
        if hasher.hash(event)?.as_slice() != event.hash.as_slice() {
            return broken(BreakKind::Edited, expected, Some(event));
        }
        if event.prev_hash.as_slice() != prev.as_slice() {
            return broken(BreakKind::Inserted, expected, Some(event));
        }
        if let Some((cp, _)) = checkpoint
            && cp.checkpoint.version == v
            && cp.checkpoint.head.as_slice() != event.hash.as_slice()
        {
            return broken(BreakKind::Rewritten, expected, Some(event));
        }
        seen.insert(v);
        prev.copy_from_slice(&event.hash);
        expected += 1;
    }
    let last = expected - 1;
    if let Some((cp, _)) = checkpoint
        && cp.checkpoint.version > last
    {
        return broken(BreakKind::TruncatedTail, expected, None);
    }
    Ok(Verdict::Intact {
        version: last,
        head: prev,
    })
}
