//! Logs, traces and metrics set-up, once per process.
//!
//! Every service binary takes [`TelemetryArgs`] and calls [`init`]: `tracing` to stderr
//! (human-readable or JSON lines), an OpenTelemetry layer so spans carry W3C trace context
//! (which `keel_kafka::trace` moves through Kafka headers), and, only when an OTLP endpoint
//! is configured, an exporter that sends finished spans there in batches from its own
//! thread. Without an endpoint the layer uses a no-op tracer: an incoming trace context is
//! passed on unchanged and nothing is recorded or sent.
//!
//! No field value can forge or garble a log line: human-readable logs write every field
//! through [`EscapedFields`] (control characters escaped, values cut at 2 KiB) and use
//! colours only on a terminal; JSON lines escape as JSON does.

use std::fmt;
use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{ExporterBuildError, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The telemetry flags of every service binary.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TelemetryArgs {
    /// Log as JSON lines (one object per event, with the fields of its spans).
    #[arg(long, env = "KEEL_LOG_JSON", default_value_t = false)]
    pub log_json: bool,
    /// Export trace spans over OTLP/HTTP (protobuf) to this collector, e.g.
    /// `http://127.0.0.1:4318` (`/v1/traces` is appended unless given). Unset: no export.
    #[arg(long, env = "KEEL_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// What [`init`] installed; [`Telemetry::shutdown`] exports the spans still buffered.
#[must_use = "call shutdown() before the process exits, or buffered spans are lost"]
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported (an OTLP endpoint was configured and the subscriber was
    /// installed by this call).
    pub fn exports(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes buffered spans to the collector and stops the exporter; blocks until it has
    /// (bounded by the exporter's timeout). Without an exporter it does nothing.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "flushing trace spans at shutdown failed");
        }
    }
}

/// Installs the `tracing` subscriber for `service`: JSON lines when `args.log_json`, else
/// human-readable, with `filter` as the default directives (`RUST_LOG` overrides them); an
/// OpenTelemetry layer, exporting over OTLP when `args.otlp_endpoint` is set. A second call
/// in a process (tests start services in-process) installs nothing and exports nothing.
pub fn init(service: &'static str, args: &TelemetryArgs, filter: &str) -> Result<Telemetry, ExporterBuildError> {
    let provider = match args.otlp_endpoint.as_deref().filter(|e| !e.trim().is_empty()) {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(traces_url(endpoint))
                .build()?;
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(Resource::builder().with_service_name(service).build())
                    .build(),
            )
        }
        None => None,
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let json = args
        .log_json
        .then(|| tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr));
    let text = (!args.log_json).then(|| {
        tracing_subscriber::fmt::layer()
            .fmt_fields(EscapedFields)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
    });
    // One OpenTelemetry layer or the other: the SDK's tracer when exporting, else a no-op
    // tracer that still carries an incoming trace context through to outgoing headers.
    let exported = provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer(service)));
    let passed_on = provider.is_none().then(tracing_opentelemetry::layer);
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(json)
        .with(text)
        .with(exported)
        .with(passed_on)
        .try_init();
    match (installed, provider) {
        (Ok(()), provider) => Ok(Telemetry { provider }),
        // A subscriber is already installed: ours would never see a span.
        (Err(_), Some(provider)) => {
            let _ = provider.shutdown();
            Ok(Telemetry { provider: None })
        }
        (Err(_), None) => Ok(Telemetry { provider: None }),
    }
}

/// Installs the `tracing` subscriber without span export (tools and tests): JSON lines when
/// `json`, else human-readable. A second call is a no-op.
pub fn init_tracing(json: bool, filter: &str) {
    let args = TelemetryArgs {
        log_json: json,
        otlp_endpoint: None,
    };
    // Without an endpoint no exporter is built, so this cannot fail and needs no shutdown.
    let _no_exporter = init("keel", &args, filter);
}

/// How human-readable logs write fields: `name=value`, the message bare, every control
/// character of a value escaped (`\n`, `\u{1b}`) so that no value (an id, an error quoting
/// input) can start a line of its own or send a terminal escape, and values cut at
/// [`MAX_FIELD_BYTES`].
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedFields;

/// The most bytes of one field value in a human-readable log line.
pub const MAX_FIELD_BYTES: usize = 2048;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = Escaper {
            writer: &mut writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct Escaper<'a, 'writer> {
    writer: &'a mut Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl Visit for Escaper<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        // `log` records bridged into tracing carry their metadata as fields: not for the line.
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let separator = if std::mem::take(&mut self.first) { "" } else { " " };
        let text = format!("{value:?}");
        self.result = if name == "message" {
            write!(self.writer, "{separator}{}", Escaped(&text))
        } else {
            write!(self.writer, "{separator}{name}={}", Escaped(&text))
        };
    }
}

/// `text` with control characters escaped and cut at [`MAX_FIELD_BYTES`].
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut written = 0;
        for c in self.0.chars() {
            if written >= MAX_FIELD_BYTES {
                return write!(f, "…({} bytes)", self.0.len());
            }
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
            written += c.len_utf8();
        }
        Ok(())
    }
}

/// The OTLP/HTTP traces URL for a collector `endpoint` given with or without its path.
fn traces_url(endpoint: &str) -> String {
    let endpoint = endpoint.trim().trim_end_matches('/');
    if endpoint.ends_with("/v1/traces") {
        endpoint.to_owned()
    } else {
        format!("{endpoint}/v1/traces")
    }
}

/// Bucket bounds of every histogram, in seconds: 1 ms to 30 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process-wide Prometheus recorder behind the `metrics` facade, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Histograms as Prometheus histograms (`_bucket` series, which the dashboard
            // aggregates across instances), not summaries. Every Keel histogram is seconds.
            let recorder = PrometheusBuilder::new()
                .set_buckets(SECONDS_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new())
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; ours then renders nothing,
            // which the metrics test would show.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Logs what `log` does under a text subscriber with [`EscapedFields`]; returns the text.
    fn logged(log: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(EscapedFields)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let bytes = buffer
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn no_field_value_starts_a_line_or_sends_an_escape() {
        let stream = "c-1\nFORGED level=ERROR the ledger was wiped";
        let text = logged(|| {
            let span = tracing::info_span!("command", stream = %stream);
            let _entered = span.enter();
            tracing::warn!(error = %"bad\r\n\u{1b}[2Jinput", id = ?stream, "refused {}", "c\nx");
        });
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains("stream=c-1\\nFORGED"), "{text}");
        assert!(text.contains("refused c\\nx"), "{text}");
    }

    #[test]
    fn a_huge_field_value_is_cut() {
        let huge = "x".repeat(100_000);
        let text = logged(|| tracing::info!(stream = %huge, "ok"));
        assert!(text.len() < MAX_FIELD_BYTES + 200, "{} bytes", text.len());
        assert!(text.contains("…(100000 bytes)"), "{text}");
    }

    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(traces_url("http://collector:4318"), "http://collector:4318/v1/traces");
        assert_eq!(traces_url("http://collector:4318/"), "http://collector:4318/v1/traces");
        assert_eq!(
            traces_url("http://collector:4318/v1/traces"),
            "http://collector:4318/v1/traces"
        );
    }

    #[test]
    fn telemetry_flags_default_to_text_logs_and_no_export() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            telemetry: TelemetryArgs,
        }
        let cli = Cli::parse_from(["svc"]);
        assert!(!cli.telemetry.log_json);
        assert_eq!(cli.telemetry.otlp_endpoint, None);
        let cli = Cli::parse_from(["svc", "--log-json", "--otlp-endpoint", "http://c:4318"]);
        assert!(cli.telemetry.log_json);
        assert_eq!(cli.telemetry.otlp_endpoint.as_deref(), Some("http://c:4318"));
    }
}
