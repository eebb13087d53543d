//! Installs the log subscriber: stderr, level from -v/-q unless RUST_LOG says otherwise.
//!
//! `serve` logs from its event loop, which must never wait on a slow or full stderr pipe. Its
//! lines therefore go through a bounded queue to a thread of their own that writes them: when
//! the queue is full a line is dropped and counted, and the count is written as a line of its
//! own once stderr takes lines again. The format of the lines is the same either way. The
//! other commands write their lines directly, in order with the rest of their stderr.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;

static QUIET: AtomicBool = AtomicBool::new(false);

/// Log lines waiting for stderr before more are dropped: at a few hundred bytes a line, a
/// megabyte or two at most.
const QUEUE_LINES: usize = 4096;

/// Longest the process waits at exit for queued lines to reach stderr, which may never take
/// them.
const EXIT_PATIENCE: Duration = Duration::from_secs(2);

/// Whether `-q` was given: no progress bars then.
pub fn is_quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Installs the subscriber; with `never_block`, through the lossy queue. Keep the guard until
/// the process ends: dropping it waits a moment for queued lines to be written.
pub fn init(verbose: u8, quiet: u8, never_block: bool) -> LogGuard {
    QUIET.store(quiet > 0, Ordering::Relaxed);
    let level = match (verbose, quiet) {
        (0, 0) => "warn",
        (1, _) => "info",
        (2, _) => "debug",
        (_, 0) => "trace",
        (_, 1) => "error",
        _ => "off",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    if !never_block {
        logs.with_writer(io::stderr).init();
        return LogGuard(None);
    }
    let (lines, queue) = mpsc::sync_channel(QUEUE_LINES);
    let progress = Arc::new(Progress::default());
    let writer = LossyStderr {
        lines,
        progress: Arc::clone(&progress),
    };
    let spawned = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn({
            let progress = Arc::clone(&progress);
            move || write_lines(&queue, &progress)
        });
    if let Err(err) = spawned {
        // Without the thread, lines go straight to stderr, as for the other commands.
        logs.with_writer(io::stderr).init();
        tracing::warn!(%err, "cannot start the log writer; logging to stderr directly");
        return LogGuard(None);
    }
    logs.with_writer(move || writer.clone()).init();
    LogGuard(Some(progress))
}

/// Waits, when dropped, for the lines queued so far to be written, [`EXIT_PATIENCE`] at most.
#[must_use = "queued log lines are lost at exit unless the guard lives until then"]
pub struct LogGuard(Option<Arc<Progress>>);

impl Drop for LogGuard {
    fn drop(&mut self) {
        let Some(progress) = &self.0 else { return };
        let target = progress.queued.load(Ordering::Acquire);
        let deadline = Instant::now() + EXIT_PATIENCE;
        let mut written = progress.written.lock().unwrap_or_else(|e| e.into_inner());
        while *written < target {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            written = progress
                .wrote
                .wait_timeout(written, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// How far the queue has got: lines queued, dropped and written.
#[derive(Default)]
struct Progress {
    queued: AtomicU64,
    dropped: AtomicU64,
    written: Mutex<u64>,
    wrote: Condvar,
}

/// What the subscriber writes each formatted line to: the queue, never waiting on it.
#[derive(Clone)]
struct LossyStderr {
    lines: SyncSender<Vec<u8>>,
    progress: Arc<Progress>,
}

impl Write for LossyStderr {
    /// Takes one whole formatted line (the subscriber writes each in one call) and reports it
    /// written even when it was dropped, so the caller never retries or blocks.
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        match self.lines.try_send(line.to_vec()) {
            Ok(()) => self.progress.queued.fetch_add(1, Ordering::Release),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.progress.dropped.fetch_add(1, Ordering::Relaxed)
            }
        };
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The log writer thread: writes each queued line to stderr, after a note of any dropped
/// since the last one. Runs until the process ends.
fn write_lines(queue: &Receiver<Vec<u8>>, progress: &Progress) {
    let mut reported = 0;
    while let Ok(line) = queue.recv() {
        let mut stderr = io::stderr().lock();
        let dropped = progress.dropped.load(Ordering::Relaxed);
        if dropped > reported {
            // Nowhere to report a failing stderr to: the lines are lost either way.
            let _ = writeln!(
                stderr,
                "p2p-store: {} log lines dropped: stderr was not keeping up",
                dropped - reported
            );
            reported = dropped;
        }
        let _ = stderr.write_all(&line);
        drop(stderr);
        *progress.written.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        progress.wrote.notify_all();
    }
}
