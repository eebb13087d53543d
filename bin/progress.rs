//! Progress bars for long transfers: bytes, rate and time left, on stderr, only when stdout
//! is a terminal and the output is not for a script (`--json`) or silenced (`-q`).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A counter shown as a bar, or nothing.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar of bytes labelled `what`, its total set later, if progress should be shown.
    pub fn bytes(what: &str, json: bool) -> Self {
        Self::new(
            what,
            json,
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
    }

    /// A bar of files or parts labelled `what`.
    pub fn items(what: &str, json: bool) -> Self {
        Self::new(what, json, "{msg} [{bar:30}] {pos}/{len} eta {eta}")
    }

    fn new(what: &str, json: bool, template: &str) -> Self {
        let shown = !json && !crate::logging::is_quiet() && std::io::stdout().is_terminal();
        Self(shown.then(|| {
            let style = ProgressStyle::with_template(template)
                .expect("a valid template")
                .progress_chars("=> ");
            let bar = ProgressBar::new(0).with_style(style);
            bar.set_message(what.to_owned());
            bar
        }))
    }

    pub fn set_total(&self, total: u64) {
        if let Some(bar) = &self.0 {
            bar.set_length(total);
        }
    }

    pub fn add(&self, amount: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(amount);
        }
    }

    /// Ends the bar at its total: what was skipped (already held) counts as done.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.set_position(bar.length().unwrap_or(0));
            bar.finish();
        }
    }
}
