//! The one printer every command reports through: a line per file or part on stdout (unless
//! `--json`), warnings about peers on stderr, a progress bar, and the closing totals.

use std::fmt::Display;

use net::transfer::{Observer, Outcome, Tally, TransferEvent};
use serde_json::{Map, Value};
use storage::PutOutcome;

use crate::Status;
use crate::progress;

/// What the closing line calls the two ends of a tally.
#[derive(Debug, Clone, Copy)]
pub enum Words {
    /// `N stored, N already had, N rejected`
    Transfer,
    /// `N exported, N failed`
    Export,
}

pub struct Report {
    json: bool,
    words: Words,
    tally: Tally,
    bar: indicatif::ProgressBar,
}

impl Report {
    /// A report for `what` ("send", "fetch", ...); `json` prints one object at the end only.
    pub fn new(what: &str, words: Words, json: bool) -> Self {
        let bar = match words {
            Words::Transfer => progress::bar(what, progress::BYTES, json),
            Words::Export => progress::bar(what, progress::ITEMS, json),
        };
        Self {
            json,
            words,
            tally: Tally::default(),
            bar,
        }
    }

    /// A file or part settled.
    pub fn settle(&mut self, name: &str, outcome: &Outcome) {
        match outcome {
            Outcome::Stored => self.line(format_args!("stored {name}")),
            Outcome::AlreadyHad => self.line(format_args!("already had {name}")),
            Outcome::Rejected(reason) => return self.rejected(name, reason),
        }
        self.tally.count(outcome);
    }

    /// A local put's outcome, which may be a replacement or a repair.
    pub fn put(&mut self, name: &str, outcome: Result<PutOutcome, impl Display>) {
        match outcome {
            Ok(PutOutcome::Replaced { .. }) => {
                self.tally.stored += 1;
                self.line(format_args!("replaced {name}"));
            }
            Ok(PutOutcome::Repaired) => {
                self.tally.stored += 1;
                self.line(format_args!("repaired {name}"));
            }
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
        let Tally {
            stored,
            already_had,
            rejected,
        } = self.tally;
        if self.json {
            let mut object = serde_json::json!(self.tally);
            object
                .as_object_mut()
                .expect("a tally is an object")
                .extend(extra);
            println!("{object}");
        } else {
            let mut line = match self.words {
                Words::Transfer => {
                    format!("{stored} stored, {already_had} already had, {rejected} rejected")
                }
                Words::Export => format!("{stored} exported, {rejected} failed"),
            };
            for (key, value) in extra.iter().filter(|(_, value)| value.is_number()) {
                line.push_str(&format!(", {value} {}", key.replace('_', " ")));
            }
            println!("{line}");
        }
        Status::from_failures(rejected as usize)
    }

    fn line(&self, text: std::fmt::Arguments<'_>) {
        if !self.json {
            println!("{text}");
        }
    }
}

impl Observer for Report {
    fn on_event(&mut self, event: TransferEvent) {
        match event {
            TransferEvent::Planned { bytes } => self.set_total(bytes),
            TransferEvent::Moved { bytes } => self.bar.inc(bytes),
            TransferEvent::Settled { name, outcome } => self.settle(&name, &outcome),
            other => warn_about_peers(other),
        }
    }
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
