//! The `PartStore` trait: the one interface every backend implements.

use crate::{OnConflict, PartInfo, PartName, PutOutcome, StoreError, StoreStats, VerifiedPart};

/// One result per part of a batch, in the order the parts were given.
pub type BatchOutcome = Vec<Result<PutOutcome, StoreError>>;

/// A place that keeps verified parts under validated names.
///
/// Writes are durable when they return: a part reported [`PutOutcome::Stored`] survives a
/// crash of the process or the machine right after. Every read of bytes re-hashes them, so a
/// damaged body is reported as [`StoreError::Corrupt`], never returned.
///
/// Methods take `&self` so one store can be shared between threads; backends serialise their
/// writers internally.
pub trait PartStore: Send + Sync {
    /// Stores `parts` and makes them durable with one sync for the whole batch, so that many
    /// small parts cost one flush rather than one each.
    ///
    /// A name already holding the same hash is [`PutOutcome::AlreadyHad`] and writes nothing,
    /// unless its body is [known to be damaged](PartStore::known_damaged): then the body is
    /// written again and the part is [`PutOutcome::Repaired`]. A damaged body shared with
    /// other names is written again too when a new name brings its bytes. A name holding
    /// another hash is a [`StoreError::Conflict`] in that part's slot unless `on_conflict` is
    /// [`OnConflict::Replace`].
    ///
    /// # Errors
    /// The outer error means the batch could not be made durable: report none of it as stored.
    fn put_batch(
        &self,
        parts: &[VerifiedPart],
        on_conflict: OnConflict,
    ) -> Result<BatchOutcome, StoreError>;

    /// What the store holds under `name`, without reading its bytes.
    ///
    /// # Errors
    /// Only when the index cannot be read.
    fn lookup(&self, name: &PartName) -> Result<Option<PartInfo>, StoreError>;

    /// The part stored under `name`, its bytes re-verified against their hash as they are
    /// read: the hash it carries is the one they were checked against, so a caller that needs
    /// it (a server answering a `Get`) has no reason to hash them again.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], or [`StoreError::Corrupt`] / [`StoreError::BodyMissing`] when
    /// the stored bytes are damaged.
    fn get_part(&self, name: &PartName) -> Result<VerifiedPart, StoreError>;

    /// The bytes stored under `name`, re-verified against their hash: [`PartStore::get_part`]
    /// without the hash.
    ///
    /// # Errors
    /// As [`PartStore::get_part`].
    fn get(&self, name: &PartName) -> Result<Vec<u8>, StoreError> {
        self.get_part(name).map(VerifiedPart::into_bytes)
    }

    /// Whether the body of `held` (an entry as [`PartStore::lookup`] gave it) cannot be read
    /// back, as far as the store can tell without reading it whole: it is gone or of the wrong
    /// length, or a read found it damaged (the store remembers that, across restarts for an
    /// on-disk store). A server asks this before it answers that it holds a part, so that a
    /// peer sends bytes that repair it; a put asks it of every part it already holds.
    ///
    /// # Errors
    /// Only when the index or the body's metadata cannot be read.
    fn known_damaged(&self, held: &PartInfo) -> Result<bool, StoreError>;

    /// Every entry, sorted by name: for local whole listings (export, verify). A server
    /// answering peers uses [`PartStore::list_page`], whose cost does not grow with the store.
    ///
    /// # Errors
    /// Only when the index cannot be read.
    fn list(&self) -> Result<Vec<PartInfo>, StoreError>;

    /// Up to `limit` entries whose names are strictly greater than `after` (from the first
    /// entry when `None`), sorted by name: one page of a listing. Backends seek to `after`
    /// rather than scan from the start, so a page costs about its own length whatever the
    /// store holds, and a peer paging through a large store pays linearly, not quadratically.
    ///
    /// `after` is any string, not necessarily a valid or held name: names compare as their
    /// UTF-8 bytes, as [`PartName`]'s order does.
    ///
    /// # Errors
    /// Only when the index cannot be read.
    fn list_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<PartInfo>, StoreError>;

    /// Forgets `name` durably, and deletes its body when no other name shares it.
    /// Returns whether the name was there.
    ///
    /// # Errors
    /// When the removal cannot be made durable.
    fn remove(&self, name: &PartName) -> Result<bool, StoreError>;

    /// Makes everything written so far durable.
    ///
    /// # Errors
    /// When the flush or fsync fails.
    fn sync(&self) -> Result<(), StoreError>;

    /// Moves what is still used out of files that also hold unused bytes, and deletes them:
    /// gives back all the space removals left, not only the large steps writes give back on
    /// their own. Returns the bytes given back. Backends that free space as they go have
    /// nothing to do.
    ///
    /// # Errors
    /// When the files cannot be read or written; what was stored stays stored.
    fn compact(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Totals over every entry.
    ///
    /// # Errors
    /// Only when the index cannot be read.
    fn stats(&self) -> Result<StoreStats, StoreError>;

    /// [`PartStore::put_batch`] for one part.
    ///
    /// # Errors
    /// As `put_batch`, with the part's own error (such as a conflict) returned directly.
    fn put(&self, part: &VerifiedPart, on_conflict: OnConflict) -> Result<PutOutcome, StoreError> {
        self.put_batch(std::slice::from_ref(part), on_conflict)?
            .pop()
            .expect("put_batch returns one outcome per part")
    }
}
