//! What a transfer reports while it runs, so a caller can draw progress or assert on it.

/// What became of one file, or of one part that is not a chunk of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Stored,
    AlreadyHad,
    /// Held, but unreadable (a part, or chunks of a file), and written again from the bytes
    /// the transfer moved.
    Repaired,
    Rejected(String),
}

impl Outcome {
    /// `stored NAME`, `already had NAME`, `repaired NAME` or `rejected NAME: WHY`.
    pub fn describe(&self, name: &str) -> String {
        match self {
            Self::Stored => format!("stored {name}"),
            Self::AlreadyHad => format!("already had {name}"),
            Self::Repaired => format!("repaired {name}"),
            Self::Rejected(why) => format!("rejected {name}: {why}"),
        }
    }
}

/// One thing that happened in a transfer. Chunks of files are never reported on their own:
/// their failure is the file's.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferEvent {
    /// More bytes the transfer expects to move, as they become known: added to a progress
    /// bar's total.
    Planned { bytes: u64 },
    /// Bytes moved: read and offered by a push, received and verified by a pull.
    Moved { bytes: u64 },
    /// A file or part is settled.
    Settled { name: String, outcome: Outcome },
    /// A peer could not be reached or listed, and is left out.
    PeerUnreachable { peer: String, reason: String },
    /// A peer is asked nothing more, and why.
    PeerDropped { peer: String, reason: String },
}

/// Receives a transfer's events, on the thread that started the transfer.
pub trait Observer {
    fn on_event(&mut self, event: TransferEvent);
}

impl<F: FnMut(TransferEvent)> Observer for F {
    fn on_event(&mut self, event: TransferEvent) {
        self(event);
    }
}

/// How many files and parts were settled which way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub stored: u64,
    pub already_had: u64,
    pub rejected: u64,
}

impl Tally {
    /// Counts a settled outcome.
    pub fn count(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Stored | Outcome::Repaired => self.stored += 1,
            Outcome::AlreadyHad => self.already_had += 1,
            Outcome::Rejected(_) => self.rejected += 1,
        }
    }
}

/// Passes events on to the caller's observer, counting what is settled.
pub(crate) struct Counting<'a> {
    pub(crate) observer: &'a mut dyn Observer,
    pub(crate) tally: Tally,
}

impl<'a> Counting<'a> {
    pub(crate) fn new(observer: &'a mut dyn Observer) -> Self {
        Self {
            observer,
            tally: Tally::default(),
        }
    }

    pub(crate) fn settle(&mut self, name: impl Into<String>, outcome: Outcome) {
        self.tally.count(&outcome);
        self.observer.on_event(TransferEvent::Settled {
            name: name.into(),
            outcome,
        });
    }

    pub(crate) fn event(&mut self, event: TransferEvent) {
        self.observer.on_event(event);
    }
}
