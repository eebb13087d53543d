//! The sled store's internals, checked where no public call shows them.

use super::*;
use crate::BackendKind;

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
