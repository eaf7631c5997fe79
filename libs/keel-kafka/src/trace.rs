//! W3C trace context through Kafka headers.
//!
//! A record may carry a `traceparent` (and `tracestate`) header as the W3C Trace Context
//! specification defines it for HTTP. The handler's span for a command continues the
//! command's context and writes its own on the events and the result it produces; the
//! projector's span for an event continues the event's. Spans get an OpenTelemetry context
//! from the `tracing-opentelemetry` layer that `keel_service::telemetry::init` installs;
//! without that layer [`TraceHeaders::of_span`] is empty, and a caller passes the incoming
//! headers on instead, so a trace is never cut.

use std::collections::BTreeMap;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header that names the trace and the parent span.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header with vendor-specific trace state.
pub const TRACESTATE: &str = "tracestate";

/// The most bytes of a `traceparent` taken from a record (version 00 is 55).
const MAX_TRACEPARENT_BYTES: usize = 128;
/// The most bytes of a `tracestate` taken from a record: the 512 characters the W3C
/// specification asks every vendor to pass on. A longer one is dropped, not cut (a cut list
/// member would be garbage).
pub const MAX_TRACESTATE_BYTES: usize = 512;

/// The trace context headers of one record (`traceparent`, `tracestate`), empty if none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceHeaders(BTreeMap<String, String>);

impl TraceHeaders {
    /// The trace context headers of a consumed record; a header that is not UTF-8, not a
    /// valid `traceparent` or over its bound ([`MAX_TRACESTATE_BYTES`]) counts as absent,
    /// so nothing a sender puts there is copied unbounded onward.
    pub fn from_record<H: Headers>(headers: Option<&H>) -> Self {
        let mut found = BTreeMap::new();
        for header in crate::headers::read(headers) {
            let bound = match header.key.as_str() {
                TRACEPARENT => MAX_TRACEPARENT_BYTES,
                TRACESTATE => MAX_TRACESTATE_BYTES,
                _ => continue,
            };
            if let Some(value) = header
                .value
                .filter(|value| value.len() <= bound)
                .and_then(|v| String::from_utf8(v).ok())
            {
                found.insert(header.key, value);
            }
        }
        let candidate = Self(found);
        if candidate.context_is_valid() {
            candidate
        } else {
            Self::default()
        }
    }

    /// The headers that name `span` as the parent of what follows it; empty if the span has
    /// no valid trace context (no OpenTelemetry layer, or the span is disabled).
    pub fn of_span(span: &tracing::Span) -> Self {
        let mut headers = Self::default();
        TraceContextPropagator::new().inject_context(&span.context(), &mut headers);
        if headers.context_is_valid() {
            headers
        } else {
            Self::default()
        }
    }

    /// Makes `span`, not yet entered, a child of the trace these headers carry (nothing if
    /// they carry none). Returns whether it did.
    pub fn continue_in(&self, span: &tracing::Span) -> bool {
        self.traceparent().is_some() && span.set_parent(self.context()).is_ok()
    }

    /// These headers if they carry a trace context, else `other`.
    pub fn or(self, other: &Self) -> Self {
        if self.traceparent().is_some() {
            self
        } else {
            other.clone()
        }
    }

    /// The `traceparent` value, if any.
    pub fn traceparent(&self) -> Option<&str> {
        self.0.get(TRACEPARENT).map(String::as_str)
    }

    /// Bytes these headers add to a record (keys and values).
    pub fn encoded_len(&self) -> usize {
        self.0.iter().map(|(key, value)| key.len() + value.len()).sum()
    }

    /// `headers` with these added.
    pub fn add_to(&self, headers: OwnedHeaders) -> OwnedHeaders {
        self.0.iter().fold(headers, |headers, (key, value)| {
            headers.insert(Header {
                key: key.as_str(),
                value: Some(value.as_str()),
            })
        })
    }

    fn context(&self) -> opentelemetry::Context {
        TraceContextPropagator::new().extract(self)
    }

    fn context_is_valid(&self) -> bool {
        use opentelemetry::trace::TraceContextExt;
        self.traceparent().is_some() && self.context().span().span_context().is_valid()
    }
}

impl Extractor for TraceHeaders {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

impl Injector for TraceHeaders {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn record_headers(traceparent: &str) -> OwnedHeaders {
        OwnedHeaders::new()
            .insert(Header {
                key: "keel-event-id",
                value: Some("e-1"),
            })
            .insert(Header {
                key: TRACEPARENT,
                value: Some(traceparent),
            })
    }

    #[test]
    fn a_valid_traceparent_is_read_and_written_back_unchanged() {
        let read = TraceHeaders::from_record(Some(&record_headers(PARENT)));
        assert_eq!(read.traceparent(), Some(PARENT));
        let written = read.add_to(OwnedHeaders::new());
        assert_eq!(TraceHeaders::from_record(Some(&written)), read);
    }

    #[test]
    fn a_malformed_or_missing_traceparent_is_no_context() {
        let malformed = TraceHeaders::from_record(Some(&record_headers("00-not-a-trace-01")));
        assert_eq!(malformed, TraceHeaders::default());
        assert_eq!(TraceHeaders::from_record::<OwnedHeaders>(None), TraceHeaders::default());
    }

    #[test]
    fn an_oversized_tracestate_is_dropped_and_the_traceparent_kept() {
        let huge = format!("keel={}", "a".repeat(1_000_000));
        let headers = record_headers(PARENT).insert(Header {
            key: TRACESTATE,
            value: Some(&huge),
        });
        let read = TraceHeaders::from_record(Some(&headers));
        assert_eq!(read.traceparent(), Some(PARENT));
        assert_eq!(read.get(TRACESTATE), None);
        assert!(read.encoded_len() < 100);
    }

    #[test]
    fn without_a_tracing_layer_a_span_has_no_context_and_the_incoming_one_is_passed_on() {
        let incoming = TraceHeaders::from_record(Some(&record_headers(PARENT)));
        let span = tracing::info_span!("command");
        assert!(!incoming.continue_in(&span), "no subscriber: nothing to continue in");
        let outgoing = TraceHeaders::of_span(&span).or(&incoming);
        assert_eq!(outgoing.traceparent(), Some(PARENT));
    }

    fn trace_id(traceparent: &str) -> &str {
        traceparent.split('-').nth(1).unwrap_or_default()
    }

    #[test]
    fn a_span_that_continues_a_record_names_the_same_trace_and_itself_as_parent() {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt;
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let outgoing = tracing::subscriber::with_default(subscriber, || {
            let incoming = TraceHeaders::from_record(Some(&record_headers(PARENT)));
            let span = tracing::info_span!("command");
            assert!(incoming.continue_in(&span));
            TraceHeaders::of_span(&span)
        });
        let traceparent = outgoing.traceparent().unwrap_or_default();
        assert_eq!(trace_id(traceparent), trace_id(PARENT), "{traceparent}");
        assert_ne!(traceparent, PARENT, "the span is the new parent");
    }
}
