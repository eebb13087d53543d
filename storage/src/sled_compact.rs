//! Compaction of the sled backend's packs: the live records of a pack at least half dead are
//! copied to the current pack, the index is pointed at the copies and made durable, and only
//! then is the old pack deleted.
//!
//! Copies keep their sequence numbers, so a rebuild orders them as the originals. A crash
//! part-way leaves copies past the current pack's indexed length; replaying them is harmless
//! (the old pack is still there and the index still points into it).

use crate::StoreError;
use crate::pack_record::{Op, Record};
use crate::pack_scan::{PackScan, Scanned};
use crate::packs::{Appending, BodyAt, Compaction};
use crate::sled_index::{Index, Touched, shares_body};
use crate::sled_store::Writer;

/// Live bytes a compaction moves per append, bounding the memory it holds.
const COMPACTION_STEP: u64 = 32 * 1024 * 1024;

/// A live record to copy: the copy, the bytes it carries, and where the original is.
struct Copy {
    record: Record,
    body: Vec<u8>,
    old: BodyAt,
}

/// Compacts every pack `which` takes.
///
/// # Errors
/// When a pack cannot be read or written or the index fails; the store stays consistent.
pub(crate) fn compact(
    index: &Index,
    writer: &mut Writer,
    which: Compaction,
) -> Result<(), StoreError> {
    while let Some(old) = writer.packs.next_to_compact(which) {
        let len = writer.packs.state(old).map_or(0, |state| state.len);
        let mut scan = PackScan::open(writer.packs.dir(), old, 0, len)?;
        let mut copies = Vec::new();
        let mut bytes = 0;
        let mut moved = 0;
        loop {
            match scan.next_record()? {
                Some(scanned) => {
                    for copy in live_copies(index, &scan, &scanned)? {
                        bytes += copy.body.len() as u64;
                        copies.push(copy);
                    }
                    if bytes >= COMPACTION_STEP {
                        moved += copies.len();
                        move_records(index, writer, std::mem::take(&mut copies))?;
                        bytes = 0;
                    }
                }
                None if scan.at_end() => break,
                None => {
                    tracing::warn!(pack = old, offset = scan.pos(), "skipping damaged bytes");
                    if !scan.resync()? {
                        break;
                    }
                }
            }
        }
        moved += copies.len();
        move_records(index, writer, copies)?;
        writer.packs.retire(old);
        index.write_states(&writer.packs, &Touched::from([old]), writer.next_seq)?;
        index.durable_flush()?;
        writer.packs.delete_file(old)?;
        tracing::info!(pack = old, moved, "compacted a pack");
    }
    Ok(())
}

/// What of `scanned` is still in use, as records to copy.
fn live_copies(index: &Index, scan: &PackScan, scanned: &Scanned) -> Result<Vec<Copy>, StoreError> {
    let record = &scanned.record;
    let mut copies = Vec::new();
    let body_live = |index: &Index| -> Result<bool, StoreError> {
        Ok(record.body_len() > 0 && index.body_at(&record.hash)? == Some(scanned.body()))
    };
    match (record.op, &record.name) {
        (Op::Put { .. }, Some(name)) => {
            let shared = shares_body(record.size);
            if shared && body_live(index)? {
                copies.push(Copy {
                    record: Record::body(record.hash, record.size),
                    body: scan.read(scanned.body())?,
                    old: scanned.body(),
                });
            }
            let name_live = index
                .entry(name)?
                .is_some_and(|entry| entry.record == scanned.head());
            if name_live {
                let body = if shared {
                    Vec::new()
                } else {
                    scan.read(scanned.body())?
                };
                copies.push(Copy {
                    record: record.clone().carrying(!shared),
                    body,
                    old: scanned.head(),
                });
            }
        }
        (Op::Body, None) => {
            if body_live(index)? {
                copies.push(Copy {
                    record: record.clone(),
                    body: scan.read(scanned.body())?,
                    old: scanned.body(),
                });
            }
        }
        (Op::Remove, Some(name)) => {
            if index.tomb(name)? == Some(scanned.at) {
                copies.push(Copy {
                    record: record.clone(),
                    body: Vec::new(),
                    old: scanned.at,
                });
            }
        }
        _ => unreachable!("decoding pairs puts and removes with a name, bodies without"),
    }
    Ok(copies)
}

/// Appends the copies and points the index at them.
fn move_records(index: &Index, writer: &mut Writer, copies: Vec<Copy>) -> Result<(), StoreError> {
    if copies.is_empty() {
        return Ok(());
    }
    let appending: Vec<Appending<'_>> = copies
        .iter()
        .map(|copy| Appending {
            record: copy.record.clone(),
            body: &copy.body,
        })
        .collect();
    let placed = writer.packs.append(&appending)?;
    let mut touched = Touched::new();
    for (copy, at) in copies.into_iter().zip(placed) {
        let new = Scanned {
            record: copy.record,
            at,
        };
        index.moved(copy.old, &new)?;
        writer.packs.indexed(at.pack, at.offset + at.len);
        touched.insert(at.pack);
    }
    index.write_states(&writer.packs, &touched, writer.next_seq)
}
