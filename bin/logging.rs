//! Installs the log subscriber: stderr, level from -v/-q unless RUST_LOG says otherwise.
//!
//! `serve` logs from its event loop, which must never wait on a slow or full stderr pipe, so
//! its lines go through `tracing-appender`'s bounded, lossy queue to a thread of their own:
//! when the queue is full, lines are dropped rather than the loop stalled. The other commands
//! write their lines directly, in order with the rest of their stderr.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

static QUIET: AtomicBool = AtomicBool::new(false);

/// Log lines waiting for stderr before more are dropped: at a few hundred bytes a line, a
/// megabyte or two at most.
const QUEUE_LINES: usize = 4096;

/// Whether `-q` was given: no progress bars then.
pub fn is_quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Installs the subscriber; with `never_block`, through the lossy queue. Keep the guard until
/// the process ends: dropping it gives queued lines a moment to be written.
pub fn init(verbose: u8, quiet: u8, never_block: bool) -> Option<WorkerGuard> {
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
    // Colours only for a person at a terminal, never into a log file or a pipe.
    let logs = (tracing_subscriber::fmt().with_env_filter(filter))
        .with_ansi(std::io::stderr().is_terminal());
    if !never_block {
        logs.with_writer(std::io::stderr).init();
        return None;
    }
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUE_LINES)
        .thread_name("log-writer")
        .finish(std::io::stderr());
    logs.with_writer(writer).init();
    Some(guard)
}
