//! Query strings and path ids: the query API.

use super::*;

/// What a query string is appended to.
pub(super) const QUERY_PATH: &str = "/v1/acme/customers/c-42?";

pub(super) fn percent_encoded(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, byte| {
        let _ = write!(out, "%{byte:02X}");
        out
    })
}

/// Percent-decoding as a path extractor does it; a `%` without two hex digits stays.
pub(super) fn percent_decoded(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u8::from_str_radix(digits, 16).ok());
        match decoded {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// Query strings of read-your-writes parameters, and path segments.
pub(super) struct QueryTarget {
    pub(super) corpus: Vec<Vec<u8>>,
}

impl QueryTarget {
    pub(super) fn new() -> Self {
        let seeds = [
            "after=0:42",
            "after=3:1000&wait_ms=500&on_timeout=stale",
            "on_timeout=fail",
            "wait_ms=0",
            "",
            "after=0%3A42",
            "after=-1:5",
            "after=1:2&after=3:4",
            "unknown=1",
            "after=2147483648:0",
            "wait_ms=18446744073709551616",
            "c-42",
            "keel.erasure:c-42",
            "%ff%fe",
        ];
        let mut corpus: Vec<Vec<u8>> = seeds.iter().map(|seed| seed.as_bytes().to_vec()).collect();
        corpus.push("x".repeat(257).into_bytes());
        Self { corpus }
    }

    /// `key=value` with a value for that key, valid or nearly so (one in five: anything).
    pub(super) fn parameter(rng: &mut StdRng, key: &str) -> String {
        let number = |rng: &mut StdRng| -> String {
            match rng.gen_range(0..6) {
                0 => (*pick(
                    rng,
                    &[
                        "0",
                        "-1",
                        "2147483647",
                        "2147483648",
                        "9223372036854775807",
                        "9223372036854775808",
                        "+5",
                        "007",
                        "1e3",
                        " 1",
                        "",
                        "0x10",
                        "1.0",
                    ],
                ))
                .to_owned(),
                1 => "9".repeat(rng.gen_range(1..1000)),
                _ => rng.gen_range(-2_i64..100_000).to_string(),
            }
        };
        let value = match (key, rng.gen_range(0..10)) {
            (_, 0) => percent_encoded(&random_bytes(rng, 32)),
            (_, 1) => text(rng),
            ("wait_ms", _) => number(rng),
            ("on_timeout", _) => (*pick(
                rng,
                &["fail", "stale", "STALE", "", "fail%00", "st+ale", "%", "st%61le"],
            ))
            .to_owned(),
            (_, 2) => format!("{}%3A{}", number(rng), number(rng)),
            (_, 3) => format!("{}:{}:{}", number(rng), number(rng), number(rng)),
            (_, 4) => number(rng),
            _ => format!("{}:{}", number(rng), number(rng)),
        };
        match rng.gen_range(0..10) {
            0 => key.to_owned(),
            1 => format!("{key}=={value}"),
            _ => format!("{key}={value}"),
        }
    }
}

impl Decoder for QueryTarget {
    fn corpus(&self) -> &[Vec<u8>] {
        &self.corpus
    }

    fn generate(&mut self, rng: &mut StdRng) -> Option<Vec<u8>> {
        const KEYS: [&str; 3] = ["after", "wait_ms", "on_timeout"];
        const ODD_KEYS: [&str; 9] = [
            "after",
            "wait_ms",
            "on_timeout",
            "AFTER",
            "after[]",
            "",
            "x",
            "after%00",
            "on%5Ftimeout",
        ];
        let keys: Vec<&str> = if rng.gen_bool(0.8) {
            KEYS.into_iter().filter(|_| rng.gen_bool(0.6)).collect()
        } else {
            (0..rng.gen_range(0..=12)).map(|_| *pick(rng, &ODD_KEYS)).collect()
        };
        let parameters: Vec<String> = keys.into_iter().map(|key| Self::parameter(rng, key)).collect();
        let separator = *pick(rng, &["&", "&", "&", ";", "&&"]);
        let mut query = parameters.join(separator);
        if rng.gen_bool(0.05) {
            query.push_str(pick::<&str>(rng, &["#fragment", "&", "=", " ", "%"]));
        }
        Some(query.into_bytes())
    }

    fn feed(&self, input: &[u8]) -> Result<Answer, String> {
        let mut answer = Answer::Refused;
        let uri = [QUERY_PATH.as_bytes(), input].concat();
        if let Ok(uri) = Uri::try_from(uri.as_slice()) {
            match Query::<Consistency>::try_from_uri(&uri) {
                Ok(Query(consistency)) => {
                    let position = consistency.position();
                    if let Ok(Some(position)) = &position
                        && (position.partition < 0 || position.offset < 0)
                    {
                        return Err(format!("after= gave the negative position {position:?}"));
                    }
                    if position.is_ok() && consistency.stale_allowed().is_ok() {
                        answer = Answer::Accepted;
                    }
                }
                Err(rejection) => {
                    let _ = rejection.body_text();
                }
            }
        }
        // The input as a path segment: as it arrives, and percent-decoded as axum's `Path`
        // hands it over (a segment that does not decode to UTF-8 is refused before).
        let decoded = percent_decoded(input);
        let raw = String::from_utf8_lossy(input);
        for id in [std::str::from_utf8(&decoded).ok(), Some(raw.as_ref())]
            .into_iter()
            .flatten()
        {
            if keel_ids::check("customer", id).is_ok() && !id_shaped(id, keel_ids::MAX_ID_BYTES) {
                return Err("keel_ids::check accepted an id outside its grammar".into());
            }
            let stream_bound = keel_ids::MAX_ID_BYTES + keel_ids::MAX_SYSTEM_PREFIX_BYTES;
            if keel_ids::check_stream("stream", id).is_ok() && !id_shaped(id, stream_bound) {
                return Err("keel_ids::check_stream accepted a stream outside its grammar".into());
            }
        }
        Ok(answer)
    }
}
