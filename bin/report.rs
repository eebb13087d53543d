//! The one printer every command reports through: a line per file or part on stdout (unless
//! `--json`), warnings about peers on stderr, a progress bar, and the closing totals.
//!
//! The bar is drawn on stderr only when stdout is a terminal and the output is not for a
//! script (`--json`) or silenced (`-q`).

use std::fmt::Display;
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use net::transfer::{Observer, Outcome, Tally, TransferEvent};
use serde_json::{Map, Value};
use storage::PutOutcome;

use crate::Status;

/// What a report counts, and what its closing line calls the two ends of the tally.
#[derive(Debug, Clone, Copy)]
pub enum Words {
    /// Bytes; `N stored, N already had, N rejected`.
    Transfer,
    /// Files; `N exported, N failed`.
    Export,
}

pub struct Report {
    json: bool,
    words: Words,
    tally: Tally,
    bar: ProgressBar,
}

impl Report {
    /// A report for `what` ("send", "fetch", ...); `json` prints one object at the end only.
    pub fn new(what: &str, words: Words, json: bool) -> Self {
        Self {
            json,
            words,
            tally: Tally::default(),
            bar: bar(what, words, json),
        }
    }

    /// A file or part settled.
    pub fn settle(&mut self, name: &str, outcome: &Outcome) {
        if let Outcome::Rejected(reason) = outcome {
            return self.rejected(name, reason);
        }
        self.line(format_args!("{}", outcome.describe(name)));
        self.tally.count(outcome);
    }

    /// A local put's outcome, which may be a replacement or a repair.
    pub fn put(&mut self, name: &str, outcome: Result<PutOutcome, impl Display>) {
        match outcome {
            Ok(PutOutcome::Replaced { .. }) => {
                self.tally.stored += 1;
                self.line(format_args!("replaced {name}"));
            }
            Ok(PutOutcome::Repaired) => self.settle(name, &Outcome::Repaired),
            Ok(PutOutcome::Stored) => self.settle(name, &Outcome::Stored),
            Ok(PutOutcome::AlreadyHad) => self.settle(name, &Outcome::AlreadyHad),
            Err(reason) => self.settle(name, &Outcome::Rejected(reason.to_string())),
        }
    }

    /// A file written by an export.
    pub fn exported(&mut self, name: &str, path: &std::path::Path) {
        self.tally.stored += 1;
        self.bar.inc(1);
        self.line(format_args!("exported {name} -> {}", path.display()));
    }

    /// Something that failed, in this report's words.
    pub fn rejected(&mut self, name: &str, reason: &dyn Display) {
        self.tally.rejected += 1;
        self.bar.inc(u64::from(matches!(self.words, Words::Export)));
        match self.words {
            Words::Transfer => self.line(format_args!("rejected {name}: {reason}")),
            Words::Export => self.line(format_args!("failed {name}: {reason}")),
        }
    }

    pub fn set_total(&self, total: u64) {
        self.bar.set_length(total);
    }

    /// Prints the totals, each of `extra` after them (numbers in the line as "N key", every
    /// one in the JSON object), and says whether everything was done.
    pub fn finish(self, extra: impl IntoIterator<Item = (&'static str, Value)>) -> Status {
        let extra: Map<String, Value> = extra.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        // What was skipped (already held) counts as done.
        self.bar.set_position(self.bar.length().unwrap_or(0));
        self.bar.finish();
        let tally = self.tally;
        if self.json {
            let mut object = serde_json::json!(tally);
            object
                .as_object_mut()
                .expect("a tally is an object")
                .extend(extra);
            println!("{object}");
        } else {
            let mut line = match self.words {
                Words::Transfer => format!(
                    "{} stored, {} already had, {} rejected",
                    tally.stored, tally.already_had, tally.rejected
                ),
                Words::Export => format!("{} exported, {} failed", tally.stored, tally.rejected),
            };
            for (key, value) in extra.iter().filter(|(_, value)| value.is_number()) {
                line.push_str(&format!(", {value} {}", key.replace('_', " ")));
            }
            println!("{line}");
        }
        Status::from_failures(tally.rejected as usize)
    }

    fn line(&self, text: std::fmt::Arguments<'_>) {
        if !self.json {
            println!("{text}");
        }
    }
}

impl Observer for Report {
    fn on_event(&mut self, event: TransferEvent) {
        // An export's bar counts files, not the bytes pulled to write them.
        let counts_bytes = matches!(self.words, Words::Transfer);
        match event {
            TransferEvent::Planned { bytes } if counts_bytes => self.bar.inc_length(bytes),
            TransferEvent::Moved { bytes } if counts_bytes => self.bar.inc(bytes),
            TransferEvent::Settled { name, outcome } => self.settle(&name, &outcome),
            other => warn_about_peers(other),
        }
    }
}

/// A bar labelled `what`, its total set later: bytes, rate and time left for a transfer, files
/// and time left for an export; hidden unless it should be shown.
fn bar(what: &str, words: Words, json: bool) -> ProgressBar {
    if json || crate::logging::is_quiet() || !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let template = match words {
        Words::Transfer => "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        Words::Export => "{msg} [{bar:30}] {pos}/{len} eta {eta}",
    };
    let style = ProgressStyle::with_template(template)
        .expect("a valid template")
        .progress_chars("=> ");
    ProgressBar::new(0)
        .with_style(style)
        .with_message(what.to_owned())
}

/// Says on stderr that a peer is left out or dropped; other events are not warnings.
pub fn warn_about_peers(event: TransferEvent) {
    match event {
        TransferEvent::PeerUnreachable { peer, reason } => {
            eprintln!("warning: leaving out {peer}: {reason}");
        }
        TransferEvent::PeerDropped { peer, reason } => eprintln!("warning: {peer} {reason}"),
        _ => {}
    }
}
