//! Installs the log subscriber: stderr, level from -v/-q unless RUST_LOG says otherwise.

use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;

static QUIET: AtomicBool = AtomicBool::new(false);

/// Whether `-q` was given: no progress bars then.
pub fn is_quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

pub fn init(verbose: u8, quiet: u8) {
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
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
