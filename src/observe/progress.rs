//! Progress while a run works: a bar on a terminal, `[DP] step=progress` lines in a log.
//!
//! The pass counts what it has done into [`Counters`] (the reader task adds the bytes it
//! pulled, the scanner thread publishes its row count once per chunk: a few atomic stores
//! per MiB, nothing per row). A [`Watch`] reads them: on a terminal it draws an
//! `indicatif` bar on stderr (bytes of total, rows, MB/s, ETA), elsewhere it logs one
//! `step=progress status=started` line every `--progress-interval` seconds. `backfill`
//! uses the same watch over dates done of total.
//!
//! `status=started` on a progress line means "under way": the documented four statuses
//! stay the only ones, and a query that counts steps by `step=` never sees progress lines
//! unless it asks for `step=progress`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::log::{keys, DpLine};

/// The default of `--progress-interval`.
pub const DEFAULT_INTERVAL_SECS: u64 = 30;

/// How often the bar is redrawn (indicatif redraws at most this often anyway).
const BAR_TICK: Duration = Duration::from_millis(200);

/// How progress is shown: decided once per process from the flags and the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressSettings {
    /// Seconds between `[DP]` progress lines; `None` (`--progress-interval 0`): none.
    pub interval: Option<Duration>,
    /// Draw a bar on stderr instead of logging progress lines.
    pub bar: bool,
}

impl ProgressSettings {
    /// `interval` from `--progress-interval` (`None` for 0); a bar only when stderr is a
    /// terminal, the logs are text (`json_logs`: every stderr line must be JSON) and the
    /// environment does not ask for plain output (`NO_COLOR` set and not empty, or
    /// `TERM=dumb`).
    pub fn detect(interval: Option<Duration>, json_logs: bool) -> Self {
        ProgressSettings {
            interval,
            bar: std::io::stderr().is_terminal() && !json_logs && !plain_output_asked(),
        }
    }

    /// The same without a bar (runs inside a backfill, which draws its own).
    pub fn lines_only(self) -> Self {
        ProgressSettings { bar: false, ..self }
    }

    fn active(self) -> bool {
        self.bar || self.interval.is_some()
    }
}

/// `NO_COLOR` (no-color.org: set and not empty) or `TERM=dumb`.
fn plain_output_asked() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
    no_color || dumb
}

/// What a pass (or a backfill) has done so far, shared with the watch.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes of the raw object read (compressed bytes for `.gz` / `.zst`), or dates done.
    done: AtomicU64,
    /// Data rows scanned so far.
    rows: AtomicU64,
}

impl Counters {
    pub fn new() -> Arc<Self> {
        Arc::new(Counters::default())
    }

    /// `n` more bytes (or dates) done.
    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// The rows scanned so far.
    pub fn set_rows(&self, rows: u64) {
        self.rows.store(rows, Ordering::Relaxed);
    }

    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }
}

/// What is being counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// The raw object's bytes; `total` is its size from the HEAD, when known.
    Bytes { total: Option<u64> },
    /// A backfill's dates.
    Dates { total: u64 },
}

/// A running watch; [`Watch::finish`] stops it and clears the bar.
pub struct Watch {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Watch {
    /// Starts watching `counters`. `template` is the progress line to log (its first keys
    /// set: pipeline, `step=progress`, `status=started`, run id, ...), each time completed
    /// with the counts. Does nothing when `settings` show nothing.
    pub fn start(
        settings: ProgressSettings,
        template: DpLine,
        measure: Measure,
        counters: Arc<Counters>,
    ) -> Watch {
        if !settings.active() {
            return Watch {
                stop: None,
                task: None,
            };
        }
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(tick(settings, template, measure, counters, stopped));
        Watch {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the watch (the bar is cleared; no further line is logged).
    pub async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // A watch dropped without `finish` (the run's future was dropped) stops anyway.
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn tick(
    settings: ProgressSettings,
    template: DpLine,
    measure: Measure,
    counters: Arc<Counters>,
    mut stopped: oneshot::Receiver<()>,
) {
    let started = Instant::now();
    let bar = settings.bar.then(|| new_bar(measure));
    let period = match (&bar, settings.interval) {
        (Some(_), _) => BAR_TICK,
        (None, Some(interval)) => interval,
        (None, None) => return,
    };
    // A bar is drawn at once (a short pass still shows one); lines wait one interval.
    let first = match &bar {
        Some(_) => tokio::time::Instant::now(),
        None => tokio::time::Instant::now() + period,
    };
    let mut ticks = tokio::time::interval_at(first, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            _ = ticks.tick() => {}
        }
        match &bar {
            Some(bar) => draw(bar, measure, &counters),
            None => line(&template, measure, &counters, started.elapsed()).emit(),
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

fn new_bar(measure: Measure) -> ProgressBar {
    let (len, template) = match measure {
        Measure::Bytes { total: Some(total) } => (
            Some(total),
            "{spinner} {elapsed:>4} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {msg} \
             ({binary_bytes_per_sec}, ETA {eta})",
        ),
        Measure::Bytes { total: None } => (
            None,
            "{spinner} {elapsed:>4} {binary_bytes} {msg} ({binary_bytes_per_sec})",
        ),
        Measure::Dates { total } => (
            Some(total),
            "{spinner} {elapsed:>4} [{wide_bar}] {pos}/{len} dates {msg} (ETA {eta})",
        ),
    };
    let bar = match len {
        Some(len) => ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    // The templates above are constants; a bad one would only lose the style.
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn draw(bar: &ProgressBar, measure: Measure, counters: &Counters) {
    bar.set_position(counters.done());
    if let Measure::Bytes { .. } = measure {
        bar.set_message(format!("{} rows", counters.rows()));
    }
}

/// One progress line: the template completed with the counts so far.
pub fn line(template: &DpLine, measure: Measure, counters: &Counters, elapsed: Duration) -> DpLine {
    let done = counters.done();
    let elapsed_ms = elapsed.as_millis().min(u128::from(u64::MAX)) as u64;
    let line = template.clone();
    match measure {
        Measure::Bytes { total } => {
            let secs = elapsed.as_secs_f64();
            let mb_per_s = (secs > 0.0).then(|| done as f64 / 1e6 / secs);
            line.with(keys::BYTES_READ, done)
                .with(keys::SIZE_BYTES, total)
                .fixed(keys::PERCENT, total.map(|t| percent(done, t)), 1)
                .with(keys::ROWS, counters.rows())
                .fixed(keys::MB_PER_S, mb_per_s, 1)
                .with(keys::ELAPSED_MS, elapsed_ms)
        }
        Measure::Dates { total } => line
            .with(keys::DATES_DONE, done)
            .with(keys::DATES, total)
            .fixed(keys::PERCENT, Some(percent(done, total)), 1)
            .with(keys::ELAPSED_MS, elapsed_ms),
    }
}

/// `done` of `total` in percent, 100 for an empty total, never above 100.
fn percent(done: u64, total: u64) -> f64 {
    if total == 0 {
        100.0
    } else {
        (done as f64 * 100.0 / total as f64).min(100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{Status, Step};

    fn template() -> DpLine {
        DpLine::new("p", Step::Progress, Status::Started, "r1")
    }

    #[test]
    fn a_bytes_line_has_bytes_rows_and_percent() {
        let counters = Counters::new();
        counters.add(250_000);
        counters.add(250_000);
        counters.set_rows(1234);
        let measure = Measure::Bytes {
            total: Some(2_000_000),
        };
        let l = line(&template(), measure, &counters, Duration::from_secs(2)).logfmt();
        assert_eq!(
            l,
            "pipeline=p step=progress status=started run_id=r1 bytes_read=500000 \
             size_bytes=2000000 percent=25.0 rows=1234 mb_per_s=0.2 elapsed_ms=2000"
        );
    }

    #[test]
    fn a_dates_line_counts_dates_and_never_passes_100_percent() {
        let counters = Counters::new();
        counters.add(3);
        let l = line(
            &template(),
            Measure::Dates { total: 7 },
            &counters,
            Duration::from_millis(1500),
        )
        .logfmt();
        assert!(
            l.ends_with("dates_done=3 dates=7 percent=42.9 elapsed_ms=1500"),
            "{l}"
        );
        assert_eq!(percent(9, 7), 100.0);
        assert_eq!(percent(0, 0), 100.0);
    }

    #[test]
    fn an_unknown_size_leaves_percent_empty() {
        let counters = Counters::new();
        let l = line(
            &template(),
            Measure::Bytes { total: None },
            &counters,
            Duration::ZERO,
        )
        .logfmt();
        assert!(l.contains(" size_bytes= percent= rows=0 mb_per_s= "), "{l}");
    }
}
