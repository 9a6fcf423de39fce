//! Logging on stderr: `[DP]` lines (the contract, [`dp_line`]), other diagnostics
//! (`RUST_LOG`), and the final one-sentence result, all in one format (text or JSON)
//! with time stamps in the pipeline zone. [`init`] is called once per process.

pub mod dp_line;
pub mod redact;

use std::fmt::Write as _;
use std::sync::OnceLock;

use chrono_tz::Tz;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

pub use dp_line::{keys, DpLine, Status, Step};
use redact::redact;

pub(crate) const DP_TARGET: &str = "dp";

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The format and zone [`init`] chose, for [`sentence`].
static CHOSEN: OnceLock<(LogFormat, Tz)> = OnceLock::new();

/// Installs the stderr logger. Time stamps are in the pipeline zone (`+09:00` for Seoul).
/// Called once per process; later calls change nothing.
pub fn init(format: LogFormat, tz: Tz) {
    if CHOSEN.set((format, tz)).is_err() {
        return;
    }
    // The SDK warns on every GET of an object uploaded in parts with per-part checksums
    // ("part-level checksum which can't be validated"): normal for raw drops, and nothing
    // a user can act on, so it stays out of the nightly log unless RUST_LOG asks. So do
    // aws-config's warnings while it looks for a region or a profile (IMDS dumps, missing
    // config files): when that fails, the run's own error says what to set.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "warn,dp=info,featurepipe=info,aws_sdk_s3::http_response_checksum=error,\
             aws_config=error",
        )
    });
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .event_format(LineFormat { format, tz })
        .try_init();
}

struct LineFormat {
    format: LogFormat,
    tz: Tz,
}

/// Collects an event's fields: ours (`logfmt`, `json`) or a plain `message`.
#[derive(Default)]
struct Fields {
    logfmt: Option<String>,
    json: Option<String>,
    message: String,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        match field.name() {
            "logfmt" => self.logfmt = Some(text),
            "json" => self.json = Some(text),
            "message" => self.message = text,
            other => {
                let _ = write!(self.message, " {other}={text}");
            }
        }
    }
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let ts = now(self.tz);
        let level = event.metadata().level().as_str();
        let is_dp = event.metadata().target() == DP_TARGET;
        match (self.format, is_dp) {
            (LogFormat::Text, true) => {
                let body = fields.logfmt.unwrap_or_default();
                writeln!(writer, "{ts} {level} [DP] {body}")
            }
            (LogFormat::Text, false) => {
                writeln!(writer, "{ts} {level} {}", redact(&fields.message))
            }
            (LogFormat::Json, true) => {
                // `json` is a complete object of the line's fields; prepend ts/level/tag.
                let body = fields.json.unwrap_or_else(|| "{}".into());
                let inner = body.strip_prefix('{').unwrap_or(&body);
                let sep = if inner.starts_with('}') { "" } else { "," };
                writeln!(
                    writer,
                    "{{\"ts\":\"{ts}\",\"level\":\"{level}\",\"tag\":\"DP\"{sep}{inner}"
                )
            }
            (LogFormat::Json, false) => {
                let obj = serde_json::json!({
                    "ts": ts, "level": level, "message": redact(&fields.message),
                });
                writeln!(writer, "{obj}")
            }
        }
    }
}

/// The format asked for on the command line (`--log-format json`) or in `DP_LOG_FORMAT`,
/// for what is printed before (or without) [`init`]: a rejected command line, a panic.
pub fn requested_format() -> LogFormat {
    let args: Vec<String> = std::env::args().collect();
    let from_flag = args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--log-format=")
            .or_else(|| (a == "--log-format").then(|| args.get(i + 1).map(String::as_str))?)
    });
    let chosen = from_flag
        .map(str::to_string)
        .or_else(|| std::env::var("DP_LOG_FORMAT").ok());
    match chosen.as_deref() {
        Some("json") => LogFormat::Json,
        _ => LogFormat::Text,
    }
}

/// Prints a sentence for the person or script reading stderr (the last line of a failed
/// run, a skip note), in the chosen log format: `featurepipe: error: ...` as text, or one
/// JSON object with `--log-format json`. Redacted like every log line.
pub fn sentence(is_error: bool, text: &str) {
    let text = redact(text);
    let (format, tz) = CHOSEN.get().copied().unwrap_or_else(|| {
        (
            requested_format(),
            crate::values::execution_date::DEFAULT_TIMEZONE,
        )
    });
    match format {
        LogFormat::Text => eprintln!("{text}"),
        LogFormat::Json => {
            let level = if is_error { "ERROR" } else { "INFO" };
            let obj = serde_json::json!({ "ts": now(tz), "level": level, "message": text });
            eprintln!("{obj}");
        }
    }
}

/// Writes `bytes` on stdout at once, where commands put what a program reads (a report,
/// the JSON result line). A reader that stopped reading (`featurepipe versions list |
/// head`) is not an error: the rest is dropped and the command's own exit code stands, as
/// its work is done. Any other failure (a full disk behind `> file`) is returned.
pub fn write_stdout(bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// [`write_stdout`] where the work is already done and its exit code must stand: a
/// failure to write is a warning.
pub fn stdout(text: &str) {
    if let Err(e) = write_stdout(text.as_bytes()) {
        tracing::warn!("could not write to stdout: {e}");
    }
}

fn now(tz: Tz) -> String {
    chrono::Utc::now()
        .with_timezone(&tz)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}
