//! Progress bars for long transfers: bytes, rate and time left, on stderr, only when stdout
//! is a terminal and the output is not for a script (`--json`) or silenced (`-q`).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A counter shown as a bar, or nothing.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar for `total` bytes labelled `what`, if progress should be shown at all.
    pub fn bytes(what: &str, total: u64, json: bool) -> Self {
        Self::new(
            what,
            total,
            json,
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
    }

    /// A bar for `total` files or parts labelled `what`.
    pub fn items(what: &str, total: u64, json: bool) -> Self {
        Self::new(what, total, json, "{msg} [{bar:30}] {pos}/{len} eta {eta}")
    }

    fn new(what: &str, total: u64, json: bool, template: &str) -> Self {
        let shown = !json && !crate::logging::is_quiet() && std::io::stdout().is_terminal();
        Self(shown.then(|| {
            let style = ProgressStyle::with_template(template)
                .expect("a valid template")
                .progress_chars("=> ");
            let bar = ProgressBar::new(total).with_style(style);
            bar.set_message(what.to_owned());
            bar
        }))
    }

    pub fn add(&self, bytes: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(bytes);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
