//! Dead letters: records a service could not process, copied to the DLQ with why, bounded.
//!
//! A dead letter's value is the raw record, cut to fit [`MAX_DEAD_LETTER_BYTES`] with its
//! headers (the whole original stays in its source topic for its retention, and
//! `keel-sha256` names it exactly). Headers say:
//!
//! | header | what |
//! |---|---|
//! | `keel-reason` | the stable reason (`undecodable`, `invalid_id`, `payload_too_large`, …) |
//! | `keel-error` | `<reason>: <message>`, at most 1 KiB |
//! | `keel-source` | `topic/partition/offset` of the original |
//! | `keel-original-bytes` | the original value's size |
//! | `keel-sha256` | hex SHA-256 of the original value |
//! | `keel-truncated` | `true` when the value is cut short |
//! | `keel-command-id`, `keel-event-id` | when the id could be read |
//! | `traceparent`, `tracestate` | the original's trace context, when it carried a valid one |
//!
//! No other header of the original is copied: a sender's headers are outside input.

use rdkafka::message::{Header, OwnedHeaders};
use sha2::{Digest, Sha256};

use crate::trace::TraceHeaders;

/// The most bytes a dead letter holds, value and headers together, far below any broker's
/// record limit, so that dead-lettering can never fail for size.
pub const MAX_DEAD_LETTER_BYTES: usize = 64 * 1024;

/// The most bytes of a dead letter's `keel-error`.
const MAX_ERROR_BYTES: usize = 1024;

/// Why and from where a record is dead-lettered.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    /// The stable reason, e.g. `invalid_id`.
    pub reason: &'a str,
    /// What was wrong, for people.
    pub error: &'a str,
    /// The topic the record was read from.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The command id, when it could be read.
    pub command_id: Option<String>,
    /// The event id, for an event.
    pub event_id: Option<String>,
}

impl DeadLetter<'_> {
    /// The DLQ record for `raw`: its value (cut to fit) and headers, with `trace` passed on.
    pub fn record(&self, raw: &[u8], trace: &TraceHeaders) -> (Vec<u8>, OwnedHeaders) {
        let error = cut(&format!("{}: {}", self.reason, self.error), MAX_ERROR_BYTES);
        let mut fields: Vec<(&str, String)> = vec![
            ("keel-reason", cut(self.reason, 64)),
            ("keel-error", error),
            (
                "keel-source",
                format!("{}/{}/{}", self.topic, self.partition, self.offset),
            ),
            ("keel-original-bytes", raw.len().to_string()),
            ("keel-sha256", hex::encode(Sha256::digest(raw))),
        ];
        if let Some(id) = &self.command_id {
            fields.push(("keel-command-id", cut(id, 64)));
        }
        if let Some(id) = &self.event_id {
            fields.push(("keel-event-id", cut(id, 64)));
        }
        let room = MAX_DEAD_LETTER_BYTES
            .saturating_sub(trace.encoded_len())
            .saturating_sub(fields.iter().map(|(key, value)| key.len() + value.len()).sum::<usize>())
            .saturating_sub("keel-truncated".len() + "false".len());
        let kept = raw.len().min(room);
        let truncated = if kept < raw.len() { "true" } else { "false" };
        fields.push(("keel-truncated", truncated.to_owned()));
        let headers = fields.iter().fold(OwnedHeaders::new(), |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value.as_str()),
            })
        });
        (raw[..kept].to_vec(), trace.add_to(headers))
    }
}

/// `text` cut to at most `max` bytes on a character boundary, marked when cut.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use rdkafka::message::Headers;

    use super::*;

    fn letter() -> DeadLetter<'static> {
        DeadLetter {
            reason: "payload_too_large",
            error: "1040000 bytes, the limit is 262144",
            topic: "keel.commands",
            partition: 3,
            offset: 42,
            command_id: Some("4bf92f35-77b3-4da6-a3ce-929d0e0e4736".into()),
            event_id: None,
        }
    }

    fn size(value: &[u8], headers: &OwnedHeaders) -> usize {
        value.len()
            + headers
                .iter()
                .map(|header| header.key.len() + header.value.map_or(0, <[u8]>::len))
                .sum::<usize>()
    }

    fn header(headers: &OwnedHeaders, key: &str) -> Option<String> {
        headers
            .iter()
            .find(|header| header.key == key)
            .and_then(|header| header.value)
            .map(|value| String::from_utf8_lossy(value).into_owned())
    }

    #[test]
    fn a_small_record_is_copied_whole() {
        let (value, headers) = letter().record(b"not avro", &TraceHeaders::default());
        assert_eq!(value, b"not avro");
        assert_eq!(header(&headers, "keel-truncated").as_deref(), Some("false"));
        assert_eq!(header(&headers, "keel-source").as_deref(), Some("keel.commands/3/42"));
        assert_eq!(header(&headers, "keel-reason").as_deref(), Some("payload_too_large"));
    }

    #[test]
    fn a_megabyte_record_and_a_megabyte_error_fit_the_bound() {
        let raw = vec![7_u8; 1_040_000];
        let long_error = "e".repeat(1_000_000);
        let letter = DeadLetter {
            error: &long_error,
            ..letter()
        };
        let (value, headers) = letter.record(&raw, &TraceHeaders::default());
        assert!(
            size(&value, &headers) <= MAX_DEAD_LETTER_BYTES,
            "{}",
            size(&value, &headers)
        );
        assert_eq!(header(&headers, "keel-truncated").as_deref(), Some("true"));
        assert_eq!(header(&headers, "keel-original-bytes").as_deref(), Some("1040000"));
        assert_eq!(
            header(&headers, "keel-sha256"),
            Some(hex::encode(Sha256::digest(&raw))),
            "the digest is of the whole original"
        );
        assert!(header(&headers, "keel-error").is_some_and(|error| error.len() <= MAX_ERROR_BYTES));
    }

    #[test]
    fn cutting_respects_characters() {
        assert_eq!(cut("héllo", 3), "…");
        assert_eq!(cut("hello", 5), "hello");
        assert!(cut(&"é".repeat(1000), 1024).len() <= 1024);
    }
}
