//! Progress bars for long transfers, on stderr, only when stdout is a terminal and the output
//! is not for a script (`--json`) or silenced (`-q`).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// Bytes, rate and time left.
pub const BYTES: &str = "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}";
/// Files or parts, and time left.
pub const ITEMS: &str = "{msg} [{bar:30}] {pos}/{len} eta {eta}";

/// A bar labelled `what` drawn with `template`, its total set later; hidden unless it should
/// be shown.
pub fn bar(what: &str, template: &str, json: bool) -> ProgressBar {
    if json || crate::logging::is_quiet() || !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(template)
        .expect("a valid template")
        .progress_chars("=> ");
    ProgressBar::new(0)
        .with_style(style)
        .with_message(what.to_owned())
}
