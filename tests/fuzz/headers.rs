//! Record headers: `TraceHeaders::from_record`, then `DeadLetter::record`.

use super::*;

pub(super) const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Headers and a record value, framed in one input: a header count byte, then per header a
/// `u16` key length, the key, a `u32` value length (`u32::MAX`: no value) and the value (all
/// little-endian); what follows the last header is the record's value.
pub(super) fn frame(headers: &[(&[u8], Option<&[u8]>)], value: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::try_from(headers.len()).unwrap_or(u8::MAX)];
    for (key, header_value) in headers.iter().take(usize::from(u8::MAX)) {
        let key = &key[..key.len().min(usize::from(u16::MAX))];
        out.extend_from_slice(&(key.len() as u16).to_le_bytes());
        out.extend_from_slice(key);
        match header_value {
            Some(bytes) => {
                out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX - 1).to_le_bytes());
                out.extend_from_slice(bytes);
            }
            None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
    }
    out.extend_from_slice(value);
    out
}

/// The headers and record value of an input (see [`frame`]); a header cut short ends the
/// list and what remains is the value.
pub(super) fn unframe(input: &[u8]) -> (Vec<FramedHeader<'_>>, &[u8]) {
    let Some((&count, mut rest)) = input.split_first() else {
        return (Vec::new(), input);
    };
    let mut headers = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let Some((header, after)) = unframe_one(rest) else {
            break;
        };
        headers.push(header);
        rest = after;
    }
    (headers, rest)
}

/// A header's key (as text, as a client hands it over) and value.
pub(super) type FramedHeader<'a> = (String, Option<&'a [u8]>);

pub(super) fn unframe_one(input: &[u8]) -> Option<(FramedHeader<'_>, &[u8])> {
    let (key_len, rest) = input.split_first_chunk::<2>()?;
    let (key, rest) = rest.split_at_checked(usize::from(u16::from_le_bytes(*key_len)))?;
    let (value_len, rest) = rest.split_first_chunk::<4>()?;
    let value_len = u32::from_le_bytes(*value_len);
    if value_len == u32::MAX {
        return Some(((String::from_utf8_lossy(key).into_owned(), None), rest));
    }
    let (value, rest) = rest.split_at_checked(usize::try_from(value_len).ok()?)?;
    Some(((String::from_utf8_lossy(key).into_owned(), Some(value)), rest))
}

pub(super) fn hex_digits(rng: &mut StdRng, n: usize) -> String {
    (0..n).map(|_| char::from(*pick(rng, b"0123456789abcdef"))).collect()
}

/// A `traceparent`, valid or nearly so.
pub(super) fn traceparent(rng: &mut StdRng) -> Vec<u8> {
    let version = *pick(rng, &["00", "00", "01", "ff", "fe", "0", "000", "zz"]);
    let trace = match rng.gen_range(0..6) {
        0 => "0".repeat(32),
        1 => hex_digits(rng, 32).to_uppercase(),
        2 => {
            let digits = *pick(rng, &[0, 31, 33, 64]);
            hex_digits(rng, digits)
        }
        _ => hex_digits(rng, 32),
    };
    let span = match rng.gen_range(0..5) {
        0 => "0".repeat(16),
        1 => {
            let digits = *pick(rng, &[15, 17]);
            hex_digits(rng, digits)
        }
        _ => hex_digits(rng, 16),
    };
    let flags = *pick(rng, &["01", "00", "ff", "1", "001"]);
    let separator = if rng.gen_bool(0.95) { "-" } else { "_" };
    let mut value = [version, &trace, &span, flags].join(separator);
    if rng.gen_bool(0.1) {
        value.push_str(pick::<&str>(rng, &["-extra", "-", "\0", "\u{e9}"]));
    }
    value.into_bytes()
}

/// Record headers and values, as every consumer reads them and dead-letters them.
pub(super) struct HeadersTarget {
    pub(super) corpus: Vec<Vec<u8>>,
}

impl HeadersTarget {
    pub(super) fn new() -> Self {
        let parent = PARENT.as_bytes();
        let state: &[u8] = b"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
        let long_state = format!("keel={}", "a".repeat(MAX_TRACESTATE_LEN - 5)).into_bytes();
        let over_state = format!("keel={}", "a".repeat(MAX_TRACESTATE_LEN - 4)).into_bytes();
        let command_id: &[u8] = b"4bf92f35-77b3-4da6-a3ce-929d0e0e4736";
        let large = vec![0x5a; 70_000];
        let tp = TRACEPARENT.as_bytes();
        let ts = TRACESTATE.as_bytes();
        let corpus = vec![
            frame(&[(tp, Some(parent))], b"not avro"),
            frame(&[(tp, Some(parent)), (ts, Some(state))], b"\xc3\x01 a record"),
            frame(
                &[
                    (b"keel-command-id", Some(command_id)),
                    (tp, Some(parent)),
                    (ts, Some(&long_state)),
                ],
                &large,
            ),
            frame(&[(tp, Some(parent)), (ts, Some(&over_state))], b""),
            frame(&[(tp, Some(parent)), (tp, Some(b"00-not-a-trace-01"))], b"x"),
            frame(&[(b"x-custom", Some(&[0xff, 0xfe, 0x00])), (tp, None)], b"y"),
            frame(
                &[(b"keel-event-id", Some(b"e-1")), (b"TRACEPARENT", Some(parent))],
                b"z",
            ),
        ];
        Self { corpus }
    }
}

/// W3C's bound on a `tracestate`, as keel-kafka applies it.
pub(super) const MAX_TRACESTATE_LEN: usize = keel_kafka::trace::MAX_TRACESTATE_BYTES;

impl Decoder for HeadersTarget {
    fn corpus(&self) -> &[Vec<u8>] {
        &self.corpus
    }

    fn generate(&mut self, rng: &mut StdRng) -> Option<Vec<u8>> {
        let count = if rng.gen_bool(0.9) {
            rng.gen_range(0..=8)
        } else {
            rng.gen_range(0..=255)
        };
        let headers: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..count)
            .map(|_| {
                let key: Vec<u8> = match rng.gen_range(0..8) {
                    0..=2 => TRACEPARENT.into(),
                    3 | 4 => TRACESTATE.into(),
                    5 => (*pick(rng, &["keel-command-id", "keel-event-id", "Traceparent", ""])).into(),
                    _ => text(rng).into_bytes(),
                };
                let value = match rng.gen_range(0..8) {
                    0..=2 => Some(traceparent(rng)),
                    3 => Some(format!("keel={}", "a".repeat(*pick(rng, &[500, 506, 507, 508, 100_000]))).into_bytes()),
                    4 => Some(text(rng).into_bytes()),
                    5 => None,
                    _ => Some(random_bytes(rng, 600)),
                };
                (key, value)
            })
            .collect();
        let value = if rng.gen_bool(0.8) {
            random_bytes(rng, 1024)
        } else {
            vec![rng.r#gen(); *pick(rng, &[65_000, 65_536, 65_537, 200_000])]
        };
        let borrowed: Vec<(&[u8], Option<&[u8]>)> = headers
            .iter()
            .map(|(key, value)| (key.as_slice(), value.as_deref()))
            .collect();
        Some(frame(&borrowed, &value))
    }

    fn feed(&self, input: &[u8]) -> Result<Answer, String> {
        let (headers, raw) = unframe(input);
        let record = headers.iter().fold(OwnedHeaders::new(), |record, (key, value)| {
            record.insert(Header {
                key: key.as_str(),
                value: *value,
            })
        });
        let trace = TraceHeaders::from_record(Some(&record));
        let header = |name: &str| {
            headers
                .iter()
                .find(|(key, _)| key == name)
                .and_then(|(_, value)| value.map(|value| String::from_utf8_lossy(value).into_owned()))
        };
        let error = String::from_utf8_lossy(raw);
        let letter = DeadLetter {
            reason: "undecodable",
            error: &error,
            topic: "keel.commands",
            partition: 3,
            offset: 42,
            command_id: header("keel-command-id"),
            event_id: header("keel-event-id"),
        };
        let (value, dead) = letter.record(raw, &trace);
        let size = value.len()
            + dead
                .iter()
                .map(|header| header.key.len() + header.value.map_or(0, <[u8]>::len))
                .sum::<usize>();
        if size > MAX_DEAD_LETTER_BYTES {
            return Err(format!(
                "a dead letter of {size} bytes, over the bound of {MAX_DEAD_LETTER_BYTES}"
            ));
        }
        Ok(if trace.traceparent().is_some() {
            Answer::Accepted
        } else {
            Answer::Refused
        })
    }
}
