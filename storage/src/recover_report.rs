//! What a recovery found, and the lines that tell a person.

use std::fmt;
use std::path::PathBuf;

use crate::store_dir::MARKER;
use crate::{BackendKind, PartName};

/// What a recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoverReport {
    /// The store's backend: only sled keeps an index to rebuild.
    pub backend: BackendKind,
    /// Pack files read.
    pub packs: usize,
    /// Intact records found in them.
    pub records: u64,
    /// Names the rebuilt index holds.
    pub parts: u64,
    /// Runs of bytes that were not records, skipped.
    pub damaged: Vec<DamagedBytes>,
    /// Parts whose body is missing or does not match its hash.
    pub unreadable: Vec<PartName>,
    /// Where the previous index was moved to, if there was one.
    pub old_index: Option<PathBuf>,
    /// Whether the store's marker file was damaged and written afresh.
    pub marker_rewritten: bool,
}

/// Bytes of a pack that were not an intact record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DamagedBytes {
    pub pack: u64,
    pub offset: u64,
    pub len: u64,
}

impl fmt::Display for RecoverReport {
    /// What was rebuilt, then one line per damaged run of bytes, unreadable part and kept index.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.marker_rewritten {
            writeln!(f, "rewrote the damaged {MARKER}")?;
        }
        match self.backend {
            BackendKind::Fs => write!(
                f,
                "an fs store has no index apart from its files: {} parts",
                self.parts
            )?,
            BackendKind::Sled => write!(
                f,
                "rebuilt the index from {} packs: {} records, {} parts",
                self.packs, self.records, self.parts
            )?,
        }
        for damaged in &self.damaged {
            let DamagedBytes { pack, offset, len } = damaged;
            write!(
                f,
                "\nskipped {len} damaged bytes at offset {offset} of pack {pack:016x}"
            )?;
        }
        for name in &self.unreadable {
            write!(f, "\nunreadable {name}: its body is damaged or missing")?;
        }
        if let Some(old) = &self.old_index {
            write!(f, "\nthe old index is kept at {}", old.display())?;
        }
        Ok(())
    }
}
