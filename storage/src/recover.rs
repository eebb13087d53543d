//! Rebuilding a sled store's index from its packs, the log of record.
//!
//! Every record is read back; the latest put or removal of each name (by sequence number)
//! wins, and each shared body is taken from the first copy whose bytes match its hash. Bytes
//! that are not records (a flipped byte in a header) are skipped up to the next intact record
//! and reported, and left in place as dead bytes for a compaction to drop; a part whose body
//! is damaged keeps its entry, so `verify` names it and a repair can heal it. The new index is
//! built beside the old one and swapped in once whole; the old one is kept as `index.old`
//! (replacing the one an earlier recovery kept).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::error::{IndexResult, IoContext};
use crate::pack_record::Op;
use crate::pack_scan::{PackScan, Scanned};
use crate::packs::{self, BodyAt, PackState};
use crate::recover_report::{DamagedBytes, RecoverReport};
use crate::sled_index::{Index, shares_body};
use crate::sled_record::{self as key, Entry};
use crate::{BackendKind, PartHash, PartInfo, PartName, StoreError, durable};

/// The latest thing that happened to a name.
struct Latest {
    seq: u64,
    body_ok: bool,
    scanned: Scanned,
}

/// Everything the scan of the packs gathered.
#[derive(Default)]
struct Found {
    latest: HashMap<PartName, Latest>,
    bodies: HashMap<PartHash, BodyAt>,
    ends: BTreeMap<u64, u64>,
    next_seq: u64,
}

/// Rebuilds the index of the store at `path` from its packs. The fs backend keeps no index
/// apart from its files, so for it this only opens and counts.
///
/// # Errors
/// [`StoreError::NoStore`], [`StoreError::Locked`], [`StoreError::Io`], and index failures
/// while writing the new index.
pub fn recover(path: &Path) -> Result<RecoverReport, StoreError> {
    let marker_rewritten = crate::store_dir::repair_marker_locked(path)?.is_some();
    let dir = crate::registry::open_existing_dir(path, None)?;
    if dir.kind() == BackendKind::Fs {
        let store = crate::fs_store::FsStore::open(dir)?;
        let parts = crate::PartStore::list(&store)?.len() as u64;
        return Ok(RecoverReport {
            backend: BackendKind::Fs,
            parts,
            marker_rewritten,
            ..RecoverReport::default()
        });
    }
    let mut report = RecoverReport {
        marker_rewritten,
        ..RecoverReport::default()
    };
    let root = dir.root();
    let packs_dir = root.join("packs");
    durable::ensure_dir(&packs_dir)?;
    let mut found = Found::default();
    for (id, pack_path) in packs::pack_files(&packs_dir)? {
        let len = std::fs::metadata(&pack_path)
            .context(|| format!("reading the size of {}", pack_path.display()))?
            .len();
        scan_pack(&packs_dir, id, len, &mut found, &mut report)?;
        report.packs += 1;
    }
    // Built beside the old index and swapped in only once whole: a recovery that fails leaves
    // the store as it found it.
    let building = root.join("index.new");
    if building.exists() {
        std::fs::remove_dir_all(&building)
            .context(|| format!("removing {}", building.display()))?;
    }
    let index = Index::open(&building)?;
    write_index(&index, &found, &mut report)?;
    index.initialise()?;
    drop(index);
    let index_path = root.join("index");
    if index_path.exists() {
        let aside = root.join("index.old");
        if aside.exists() {
            std::fs::remove_dir_all(&aside).context(|| format!("removing {}", aside.display()))?;
        }
        std::fs::rename(&index_path, &aside)
            .context(|| format!("moving {} aside", index_path.display()))?;
        report.old_index = Some(aside);
    }
    std::fs::rename(&building, &index_path)
        .context(|| format!("moving {} into place", building.display()))?;
    durable::sync_dir(root)?;
    drop(dir);
    Ok(report)
}

fn scan_pack(
    dir: &Path,
    id: u64,
    len: u64,
    found: &mut Found,
    report: &mut RecoverReport,
) -> Result<(), StoreError> {
    let mut scan = PackScan::open(dir, id, 0, len)?;
    loop {
        if let Some(scanned) = scan.next_record()? {
            report.records += 1;
            take(&scan, scanned, found)?;
            continue;
        }
        if scan.at_end() {
            break;
        }
        let from = scan.pos();
        // An append cut short is skipped whole: its body is never searched for records.
        let resynced = !scan.at_torn_record()? && scan.resync()?;
        let to = if resynced { scan.pos() } else { len };
        report.damaged.push(DamagedBytes {
            pack: id,
            offset: from,
            len: to - from,
        });
        if !resynced {
            break;
        }
    }
    found.ends.insert(id, len);
    Ok(())
}

/// Keeps a record if it is the latest for its name, and a body if it is the first good one.
fn take(scan: &PackScan, scanned: Scanned, found: &mut Found) -> Result<(), StoreError> {
    let record = &scanned.record;
    let body_ok = record.body_len() == 0 || scan.body_matches(scanned.body(), &record.hash)?;
    let shared_body = match record.op {
        Op::Put { carries_body, .. } => carries_body && shares_body(record.size),
        Op::Body => true,
        Op::Remove => false,
    };
    if shared_body && body_ok {
        found.bodies.entry(record.hash).or_insert(scanned.body());
    }
    let Some(name) = record.name.clone() else {
        return Ok(());
    };
    found.next_seq = found.next_seq.max(record.seq + 1);
    let newer = found
        .latest
        .get(&name)
        .is_none_or(|held| (record.seq, body_ok) > (held.seq, held.body_ok));
    if newer {
        let seq = record.seq;
        found.latest.insert(
            name,
            Latest {
                seq,
                body_ok,
                scanned,
            },
        );
    }
    Ok(())
}

fn write_index(index: &Index, found: &Found, report: &mut RecoverReport) -> Result<(), StoreError> {
    let db = index.db();
    let mut live: BTreeMap<u64, u64> = BTreeMap::new();
    let mut used = HashMap::new();
    for (name, latest) in &found.latest {
        let scanned = &latest.scanned;
        let Op::Put { kind, .. } = scanned.record.op else {
            index.put_tomb(name, scanned.at)?;
            *live.entry(scanned.at.pack).or_default() += scanned.at.len;
            continue;
        };
        let entry = Entry {
            info: PartInfo {
                name: name.clone(),
                size: scanned.record.size,
                hash: scanned.record.hash,
                kind,
            },
            shared: shares_body(scanned.record.size),
            record: scanned.head(),
        };
        *live.entry(scanned.at.pack).or_default() += scanned.head().len;
        let readable = if entry.shared {
            db.insert(key::ref_key(&entry.info.hash, name), &[][..])
                .index()?;
            let body = found.bodies.get(&entry.info.hash);
            if let Some(&at) = body {
                used.insert(entry.info.hash, at);
            }
            body.is_some()
        } else {
            *live.entry(scanned.at.pack).or_default() += entry.info.size;
            scanned.record.body_len() == entry.info.size && latest.body_ok
        };
        if !readable {
            report.unreadable.push(name.clone());
        }
        db.insert(key::name_key(name), key::encode_entry(&entry))
            .index()?;
        report.parts += 1;
    }
    for (hash, at) in used {
        db.insert(key::body_key(&hash), key::encode_body_at(at))
            .index()?;
        *live.entry(at.pack).or_default() += at.len;
    }
    for (&id, &len) in &found.ends {
        let live = live.get(&id).copied().unwrap_or(0);
        let state = PackState {
            len,
            dead: len.saturating_sub(live),
        };
        db.insert(key::pack_key(id), key::encode_pack_state(state))
            .index()?;
    }
    db.insert(key::SEQ_KEY, found.next_seq.to_le_bytes().to_vec())
        .index()?;
    report.unreadable.sort();
    index.durable_flush()
}
