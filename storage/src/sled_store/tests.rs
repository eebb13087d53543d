//! The sled store's internals, checked where no public call shows them.

use super::*;
use crate::{BackendKind, PutOutcome};

fn open(path: &std::path::Path) -> SledStore {
    SledStore::open(StoreDir::open(path, Some(BackendKind::Sled)).unwrap()).unwrap()
}

/// Whether the index holds a tomb for `name`, asked of sled itself.
fn holds_tomb(store: &SledStore, name: &PartName) -> bool {
    store.index.db().get(key::tomb_key(name)).unwrap().is_some()
}

/// A put of a removed name replaces its tomb: in the open that removed it, and in a
/// reopened store whose index already held tombs when it opened.
#[test]
fn a_put_replaces_the_tomb_of_its_name_also_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let name = PartName::new("a").unwrap();
    let part = VerifiedPart::hashing(name.clone(), b"one".to_vec()).unwrap();
    let store = open(&path);
    store.put(&part, OnConflict::Refuse).unwrap();
    assert!(store.remove(&name).unwrap());
    assert!(holds_tomb(&store, &name));
    store.put(&part, OnConflict::Refuse).unwrap();
    assert!(!holds_tomb(&store, &name));
    assert!(store.remove(&name).unwrap());
    drop(store);
    let store = open(&path);
    assert!(holds_tomb(&store, &name));
    store.put(&part, OnConflict::Refuse).unwrap();
    assert!(!holds_tomb(&store, &name));
}

/// Small parts read in the order they were put come from one block read ahead: a part whose
/// bytes were overwritten on disk after the block was read still reads as it was put. A put
/// of that part asks the disk itself and repairs it.
#[test]
fn gets_in_pack_order_share_a_block_and_a_repair_asks_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = open(&path);
    let parts: Vec<VerifiedPart> = (0..4u8)
        .map(|i| {
            let name = PartName::new(format!("part-{i}")).unwrap();
            VerifiedPart::hashing(name, vec![i; 1024]).unwrap()
        })
        .collect();
    store.put_batch(&parts, OnConflict::Refuse).unwrap();
    assert_eq!(store.get(parts[0].name()).unwrap(), vec![0; 1024]);
    assert_eq!(store.get(parts[1].name()).unwrap(), vec![1; 1024]);

    let packs: Vec<_> = std::fs::read_dir(path.join("packs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(packs.len(), 1, "{packs:?}");
    let mut bytes = std::fs::read(&packs[0]).unwrap();
    let third = bytes
        .windows(1024)
        .position(|window| window == [2; 1024])
        .unwrap();
    bytes[third..third + 1024].fill(9);
    std::fs::write(&packs[0], &bytes).unwrap();

    assert_eq!(store.get(parts[2].name()).unwrap(), vec![2; 1024]);
    let outcome = store.put_batch(&parts[2..3], OnConflict::Refuse).unwrap();
    assert_eq!(outcome[0].as_ref().unwrap(), &PutOutcome::Repaired);
}
