//! What a full check found, as lines for a person and as JSON for a script.

use std::fmt;

use serde::ser::{Serialize, SerializeStruct, Serializer};

use crate::{PartInfo, PartName, StoreError};

/// What a full check found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Parts and files whose bytes hash to their recorded hashes (a file's chunks are counted
    /// with it, not on their own).
    pub intact: u64,
    /// Bytes read and hashed.
    pub bytes: u64,
    /// Parts whose bytes are damaged or gone, with what was found.
    pub corrupt: Vec<(PartName, StoreError)>,
    /// What must be fetched again to heal `corrupt`, each as the store holds it (name and
    /// hash): damaged or missing plain parts, manifests and chunks, a chunk once however many
    /// files use it. A file that describes no file (its chunks are whole, but not its hash) is
    /// corrupt with nothing here: no fetch of what it holds can heal it.
    pub damaged: Vec<PartInfo>,
}

impl fmt::Display for VerifyReport {
    /// A line per corrupt part, then the totals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, err) in &self.corrupt {
            writeln!(f, "corrupt {name}: {err}")?;
        }
        let (intact, bytes, corrupt) = (self.intact, self.bytes, self.corrupt.len());
        write!(f, "{intact} intact ({bytes} bytes), {corrupt} corrupt")
    }
}

impl Serialize for VerifyReport {
    /// `{"intact","bytes","corrupt":[{"name","error"}]}`: what a repair would fetch is left out.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Corrupt<'a> {
            name: &'a PartName,
            error: String,
        }
        let corrupt: Vec<Corrupt<'_>> = (self.corrupt.iter())
            .map(|(name, err)| Corrupt {
                name,
                error: err.to_string(),
            })
            .collect();
        let mut report = serializer.serialize_struct("VerifyReport", 3)?;
        report.serialize_field("intact", &self.intact)?;
        report.serialize_field("bytes", &self.bytes)?;
        report.serialize_field("corrupt", &corrupt)?;
        report.end()
    }
}
