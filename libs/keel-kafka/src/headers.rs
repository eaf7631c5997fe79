//! A record's headers, read without trusting them.
//!
//! rdkafka 0.38 reads every header key with `CStr::to_str().unwrap()` (`Headers::try_get`),
//! so a record whose header key is not UTF-8 panics whatever consumer looks at its headers,
//! and any producer speaking the protocol can send one (the broker does not check). Every
//! Keel service reads headers through [`read`], which contains that panic: such a record is
//! read as having no headers, counted and logged, and processed like any other.

use std::panic::{AssertUnwindSafe, catch_unwind};

use rdkafka::message::Headers;

/// One header of a record: its key and value (a header may have no value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    /// The key.
    pub key: String,
    /// The value, if any.
    pub value: Option<Vec<u8>>,
}

/// Every header of a record; none when one of them cannot be read (a key that is not UTF-8).
pub fn read<H: Headers>(headers: Option<&H>) -> Vec<RecordHeader> {
    let Some(headers) = headers else {
        return Vec::new();
    };
    let read = catch_unwind(AssertUnwindSafe(|| {
        headers
            .iter()
            .map(|header| RecordHeader {
                key: header.key.to_owned(),
                value: header.value.map(<[u8]>::to_vec),
            })
            .collect()
    }));
    read.unwrap_or_else(|_| {
        tracing::warn!("a record's header key is not UTF-8; its headers are ignored");
        metrics::counter!("keel_unreadable_headers_total").increment(1);
        Vec::new()
    })
}

/// The value of header `key`, if the record has it and its headers can be read.
pub fn value_of<H: Headers>(headers: Option<&H>, key: &str) -> Option<Vec<u8>> {
    read(headers).into_iter().find(|header| header.key == key)?.value
}
