//! SIGINT / SIGTERM: stop the run cleanly instead of dying mid-write.
//!
//! Airflow sends SIGTERM when it kills a task (timeout, clear, zombie); a person sends
//! SIGINT with Ctrl-C. The run then stops at the next safe point: the streaming pass
//! stops and aborts its staged upload, `store_features` never writes `_SUCCESS`, and
//! `summarize_run` still logs its line. Exit code 130 (SIGINT) or 143 (SIGTERM), as a
//! shell reports a process killed by that signal.

use tokio::sync::watch;

/// Which signal asked the run to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// 128 + the signal number, the shell's convention.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }
}

/// A cheap, cloneable view of "has a stop signal arrived?".
#[derive(Debug, Clone)]
pub struct Interrupt {
    rx: watch::Receiver<Option<Signal>>,
}

impl Interrupt {
    /// Starts listening for SIGINT and SIGTERM (call inside the runtime). From now on
    /// these signals no longer kill the process outright: the run must check [`Self::check`]
    /// or await [`Self::wait`].
    pub fn listen() -> Self {
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            let signal = wait_for_signal().await;
            let _ = tx.send(Some(signal));
        });
        Interrupt { rx }
    }

    /// The signal, if one has arrived.
    pub fn fired(&self) -> Option<Signal> {
        *self.rx.borrow()
    }

    /// `Err(signal)` once a signal has arrived: call at safe points (`?` turns it into
    /// the run's error).
    pub fn check(&self) -> Result<(), Signal> {
        match self.fired() {
            Some(signal) => Err(signal),
            None => Ok(()),
        }
    }

    /// Resolves when a signal arrives.
    pub async fn wait(&self) -> Signal {
        let mut rx = self.rx.clone();
        loop {
            if let Some(signal) = *rx.borrow_and_update() {
                return signal;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(unix)]
async fn wait_for_signal() -> Signal {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => Signal::Interrupt,
            _ = term.recv() => Signal::Terminate,
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Interrupt
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> Signal {
    let _ = tokio::signal::ctrl_c().await;
    Signal::Interrupt
}
