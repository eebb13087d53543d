//! The sled backend's packs are its log of record: an index that is behind, damaged or gone
//! is replayed or rebuilt from them, and damage in a pack loses only the records it touched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use storage::{BackendKind, OnConflict, PartName, StoreError, VerifiedPart, open_store, recover};

fn name(text: &str) -> PartName {
    PartName::new(text).unwrap()
}

fn bytes_of(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut bytes = vec![0; len];
    rng.fill(&mut bytes);
    bytes
}

/// A store holding parts of every size class, after removals and replacements; returns what
/// it must hold.
fn filled_store(db: &Path) -> BTreeMap<PartName, Vec<u8>> {
    let store = open_store(db, Some(BackendKind::Sled)).unwrap();
    let mut expected = BTreeMap::new();
    for (i, len) in [0, 1, 1024, 15_000, 16_384, 16_385, 300_000, 1 << 20]
        .into_iter()
        .enumerate()
    {
        let part = VerifiedPart::hashing(name(&format!("p{i}")), bytes_of(i as u64, len)).unwrap();
        store.put(&part, OnConflict::Refuse).unwrap();
        expected.insert(part.name().clone(), part.bytes().to_vec());
    }
    let shared = bytes_of(99, 100_000);
    for n in ["s1", "s2"] {
        store
            .put(
                &VerifiedPart::hashing(name(n), shared.clone()).unwrap(),
                OnConflict::Refuse,
            )
            .unwrap();
        expected.insert(name(n), shared.clone());
    }
    for gone in ["p1", "p6", "s1"] {
        assert!(store.remove(&name(gone)).unwrap());
        expected.remove(&name(gone));
    }
    for (n, seed, len) in [("p2", 50, 2000), ("p7", 51, 200_000)] {
        let part = VerifiedPart::hashing(name(n), bytes_of(seed, len)).unwrap();
        store.put(&part, OnConflict::Replace).unwrap();
        expected.insert(name(n), part.bytes().to_vec());
    }
    expected
}

fn assert_holds(db: &Path, expected: &BTreeMap<PartName, Vec<u8>>) {
    let store = open_store(db, None).unwrap();
    let listed: Vec<PartName> = store.list().unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(listed, expected.keys().cloned().collect::<Vec<_>>());
    for (n, bytes) in expected {
        assert!(store.get(n).unwrap() == *bytes, "{n} holds other bytes");
    }
}

fn packs(db: &Path) -> Vec<PathBuf> {
    let mut packs: Vec<PathBuf> = std::fs::read_dir(db.join("packs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    packs.sort();
    packs
}

#[test]
fn a_lost_index_is_refused_and_rebuilt_from_the_packs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let expected = filled_store(&db);
    std::fs::remove_dir_all(db.join("index")).unwrap();
    assert!(matches!(
        open_store(&db, None),
        Err(StoreError::IndexDamaged { .. })
    ));
    let report = recover(&db).unwrap();
    assert_eq!(report.parts, expected.len() as u64, "{report:?}");
    assert!(
        report.damaged.is_empty() && report.unreadable.is_empty(),
        "{report:?}"
    );
    assert_holds(&db, &expected);
    // The rebuilt store works as any other: writes, removals, reopening.
    let store = open_store(&db, None).unwrap();
    store
        .put(
            &VerifiedPart::hashing(name("after"), vec![1; 20_000]).unwrap(),
            OnConflict::Refuse,
        )
        .unwrap();
    assert!(store.remove(&name("p0")).unwrap());
    drop(store);
    let mut expected = expected;
    expected.insert(name("after"), vec![1; 20_000]);
    expected.remove(&name("p0"));
    assert_holds(&db, &expected);
}

/// Whatever byte of the index flips, the store either opens and reads every part back, or
/// says its index is damaged; a recovery then gives every part back.
#[test]
fn a_flipped_byte_in_the_index_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean");
    let expected = filled_store(&clean);
    let log_len = std::fs::metadata(clean.join("index/db")).unwrap().len();
    let mut rng = fastrand::Rng::with_seed(7);
    let mut refused = 0;
    for trial in 0..40 {
        let db = dir.path().join(format!("trial{trial}"));
        copy_dir(&clean, &db);
        let log = db.join("index/db");
        let mut bytes = std::fs::read(&log).unwrap();
        let at = rng.usize(..usize::try_from(log_len).unwrap());
        bytes[at] ^= 1 << rng.u8(..8);
        std::fs::write(&log, bytes).unwrap();
        let opened = open_store(&db, None).map(|store| {
            expected
                .iter()
                .all(|(n, bytes)| store.get(n).is_ok_and(|read| read == *bytes))
        });
        match opened {
            Ok(true) => continue,
            Ok(false) | Err(StoreError::IndexDamaged { .. } | StoreError::BadIndexEntry { .. }) => {
                refused += 1;
            }
            Err(other) => panic!("trial {trial}: byte {at}: unexpected {other}"),
        }
        let report = recover(&db).unwrap();
        assert!(report.unreadable.is_empty(), "{report:?}");
        assert_holds(&db, &expected);
    }
    eprintln!("{refused} of 40 flips needed a recovery");
}

/// Flips `bit` of the byte `offset` bytes from the start of `victim`'s body in the first pack
/// (before it, for a negative offset: in its record's header).
fn flip_around_body(db: &Path, victim: &[u8], offset: isize, bit: u8) {
    let pack = packs(db).remove(0);
    let mut bytes = std::fs::read(&pack).unwrap();
    let body = bytes.windows(64).position(|w| w == &victim[..64]).unwrap();
    bytes[body.checked_add_signed(offset).unwrap()] ^= bit;
    std::fs::write(&pack, bytes).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A flipped byte in a record's header does not matter while the index is whole (the body
/// still hashes right); after a rebuild it loses that one part, reported, and no other.
#[test]
fn a_flipped_header_byte_loses_only_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut expected = filled_store(&db);
    let victim = expected.remove(&name("p3")).unwrap();
    // 42 bytes before the body: in the hash field of the header, before the 2-byte name.
    flip_around_body(&db, &victim, -42, 0x10);
    let mut with_victim = expected.clone();
    with_victim.insert(name("p3"), victim);
    assert_holds(&db, &with_victim);

    std::fs::remove_dir_all(db.join("index")).unwrap();
    let report = recover(&db).unwrap();
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    assert!(report.unreadable.is_empty(), "{report:?}");
    assert_holds(&db, &expected);
}

/// A flipped byte in a body keeps the part listed after a rebuild, named as unreadable.
#[test]
fn a_flipped_body_byte_is_named_after_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let expected = filled_store(&db);
    let victim = &expected[&name("p4")];
    flip_around_body(&db, victim, 100, 0x01);
    std::fs::remove_dir_all(db.join("index")).unwrap();
    let report = recover(&db).unwrap();
    assert_eq!(report.unreadable, vec![name("p4")], "{report:?}");
    let store = open_store(&db, None).unwrap();
    assert!(matches!(
        store.get(&name("p4")),
        Err(StoreError::Corrupt { .. })
    ));
    assert!(store.get(&name("p5")).is_ok());
}

/// An index that fell behind its packs (as after a power cut, when sled had not flushed) is
/// caught up on open.
#[test]
fn records_the_index_had_not_applied_are_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    drop(open_store(&db, Some(BackendKind::Sled)).unwrap());
    let early_index = dir.path().join("early-index");
    copy_dir(&db.join("index"), &early_index);
    let expected = filled_store(&db);
    std::fs::remove_dir_all(db.join("index")).unwrap();
    copy_dir(&early_index, &db.join("index"));
    assert_holds(&db, &expected);
}

/// Bytes appended after the last record (a torn append) are cut off on open; bytes that are
/// not records with records after them are damage, refused until a recovery.
#[test]
fn a_torn_tail_is_cut_and_damage_before_records_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    drop(open_store(&db, Some(BackendKind::Sled)).unwrap());
    let early_index = dir.path().join("early-index");
    copy_dir(&db.join("index"), &early_index);
    let expected = filled_store(&db);
    let pack = packs(&db).remove(0);
    let clean = std::fs::read(&pack).unwrap();

    let mut torn = clean.clone();
    torn.extend_from_slice(&clean[1..101]);
    std::fs::write(&pack, &torn).unwrap();
    assert_holds(&db, &expected);
    assert_eq!(std::fs::metadata(&pack).unwrap().len(), clean.len() as u64);

    let mut damaged = clean.clone();
    damaged[1] ^= 0x01;
    std::fs::write(&pack, &damaged).unwrap();
    std::fs::remove_dir_all(db.join("index")).unwrap();
    copy_dir(&early_index, &db.join("index"));
    assert!(matches!(
        open_store(&db, None),
        Err(StoreError::PackDamaged { offset: 0, .. })
    ));
    let report = recover(&db).unwrap();
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    let store = open_store(&db, None).unwrap();
    assert_eq!(
        store.lookup(&name("p0")).unwrap(),
        None,
        "its record was damaged"
    );
    assert!(store.get(&name("p5")).is_ok());
}

/// Whichever byte of the marker file flips, the store opens as before, or refuses and
/// `recover` writes the marker afresh; a marker is never taken for another version's.
#[test]
fn a_flipped_byte_in_the_marker_file_is_recovered() {
    for kind in [BackendKind::Sled, BackendKind::Fs] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let part = VerifiedPart::hashing(name("x"), vec![5; 30_000]).unwrap();
        open_store(&db, Some(kind))
            .unwrap()
            .put(&part, OnConflict::Refuse)
            .unwrap();
        let marker = db.join("p2p-store.meta");
        let clean = std::fs::read(&marker).unwrap();
        for at in 0..clean.len() {
            let mut flipped = clean.clone();
            flipped[at] ^= 0x01;
            std::fs::write(&marker, &flipped).unwrap();
            if open_store(&db, None).is_err() {
                let report = recover(&db).unwrap();
                assert!(report.marker_rewritten, "{kind} byte {at}: {report:?}");
            }
            let store = open_store(&db, None).unwrap();
            assert_eq!(
                store.get(&name("x")).unwrap(),
                part.bytes(),
                "{kind} byte {at}"
            );
            std::fs::write(&marker, &clean).unwrap();
        }
    }
}

/// Record-shaped bytes inside a body (here a copy of another store's pack, whose records
/// would give `victim` other bytes and add `evil`) are never taken for records: not when a
/// damaged header makes `recover` look past it, nor when an append of it was cut short.
#[test]
fn records_inside_a_body_are_never_taken_for_records() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other");
    {
        let store = open_store(&other, Some(BackendKind::Sled)).unwrap();
        for (n, bytes) in [("victim", b"ATTACKER".repeat(100)), ("evil", vec![6; 100])] {
            let part = VerifiedPart::hashing(name(n), bytes).unwrap();
            store.put(&part, OnConflict::Refuse).unwrap();
        }
    }
    let mut backup = std::fs::read(&packs(&other)[0]).unwrap();
    backup.extend(bytes_of(3, 30_000));
    let victim = bytes_of(4, 800);

    let db = dir.path().join("db");
    drop(open_store(&db, Some(BackendKind::Sled)).unwrap());
    let early_index = dir.path().join("early-index");
    copy_dir(&db.join("index"), &early_index);
    {
        let store = open_store(&db, None).unwrap();
        let victim = VerifiedPart::hashing(name("victim"), victim.clone()).unwrap();
        store.put(&victim, OnConflict::Refuse).unwrap();
        let backup = VerifiedPart::hashing(name("backup"), backup.clone()).unwrap();
        store.put(&backup, OnConflict::Refuse).unwrap();
    }
    let pack = packs(&db).remove(0);
    let clean = std::fs::read(&pack).unwrap();
    let only_victim = BTreeMap::from([(name("victim"), victim)]);

    // The append of the backup cut short in the middle of its body, the index from before it.
    let body_at = clean.windows(64).position(|w| w == &backup[..64]).unwrap();
    std::fs::write(&pack, &clean[..body_at + backup.len() / 2]).unwrap();
    std::fs::remove_dir_all(db.join("index")).unwrap();
    copy_dir(&early_index, &db.join("index"));
    assert_holds(&db, &only_victim);

    // A flipped byte in the backup's name, then a rebuild.
    std::fs::write(&pack, &clean).unwrap();
    flip_around_body(&db, &backup, -3, 0x01);
    std::fs::remove_dir_all(db.join("index")).unwrap();
    let report = recover(&db).unwrap();
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    assert_holds(&db, &only_victim);
}

/// A recovery that fails part-way (here: it cannot build its new index) leaves the store as it
/// was, its index in place.
#[test]
fn a_failed_recovery_leaves_the_store_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let expected = filled_store(&db);
    std::fs::write(db.join("index.new"), b"in the way").unwrap();
    assert!(recover(&db).is_err());
    assert_holds(&db, &expected);
    std::fs::remove_file(db.join("index.new")).unwrap();
    let report = recover(&db).unwrap();
    assert_eq!(report.old_index, Some(db.join("index.old")));
    assert_holds(&db, &expected);
}
