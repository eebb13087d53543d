//! The transfer engine as a Rust program uses it, without the binary: real servers on
//! 127.0.0.1:0 over real sled stores in temp dirs, pushed to and pulled from through
//! `net::transfer`, with the observer's events asserted on.

use std::sync::Arc;
use std::thread::JoinHandle;

use net::transfer::{self, Dialer, Outcome, TransferEvent};
use net::{Server, ServerConfig, ShutdownHandle};
use storage::{
    BackendKind, Chunker, FileSource, MemStore, OnConflict, PartKind, PartName, PartStore,
    VerifiedPart,
};
use tempfile::TempDir;

/// A server on its own thread, stopped when dropped.
struct Peer {
    addr: String,
    stop: ShutdownHandle,
    thread: Option<JoinHandle<()>>,
    _dir: TempDir,
}

impl Peer {
    /// Serves a new sled store holding `parts`.
    fn holding(parts: &[(&str, &[u8])]) -> Self {
        let parts: Vec<VerifiedPart> = parts
            .iter()
            .map(|(name, bytes)| VerifiedPart::hashing(name_of(name), bytes.to_vec()).unwrap())
            .collect();
        Self::holding_batches(&[parts])
    }

    /// Serves a new sled store given `batches` of parts, one `put_batch` each (a file's
    /// chunks must be held before the batch of its manifest).
    fn holding_batches(batches: &[Vec<VerifiedPart>]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = storage::open_store(&dir.path().join("db"), Some(BackendKind::Sled)).unwrap();
        for parts in batches {
            store.put_batch(parts, OnConflict::Refuse).unwrap();
        }
        let config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
        let server = Server::bind(config, Arc::from(store)).unwrap();
        let addr = server.local_addr().to_string();
        let stop = server.shutdown_handle();
        let thread = std::thread::spawn(move || {
            server.run().unwrap();
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
            _dir: dir,
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop.shutdown().unwrap();
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

fn name_of(name: &str) -> PartName {
    PartName::new(name).unwrap()
}

fn dialer() -> Dialer {
    Dialer::new("transfer test")
}

/// A fresh sled store in a temp dir.
fn store() -> (TempDir, Box<dyn PartStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = storage::open_store(&dir.path().join("db"), Some(BackendKind::Sled)).unwrap();
    (dir, store)
}

/// Every event of a transfer, in order.
fn recorder(events: &mut Vec<TransferEvent>) -> impl FnMut(TransferEvent) + '_ {
    |event| events.push(event)
}

fn settled(events: &[TransferEvent]) -> Vec<(String, Outcome)> {
    events
        .iter()
        .filter_map(|event| match event {
            TransferEvent::Settled { name, outcome } => Some((name.clone(), outcome.clone())),
            _ => None,
        })
        .collect()
}

/// The bytes of the file `name` as the store gives them back, checked whole.
fn exported(store: &dyn PartStore, name: &str) -> Vec<u8> {
    let out = tempfile::tempdir().unwrap();
    let options = storage::ExportOptions::new("").unwrap();
    let outcomes = storage::export(store, out.path(), Some(&[name_of(name)]), &options).unwrap();
    let path = outcomes.into_iter().next().unwrap().1.unwrap();
    std::fs::read(path).unwrap()
}

#[test]
fn a_file_pushed_to_two_peers_is_pulled_from_both_at_once() {
    let (a, b) = (Peer::holding(&[]), Peer::holding(&[]));
    let source = tempfile::tempdir().unwrap();
    let path = source.path().join("big.bin");
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    let files = [FileSource::new(&path)];

    for peer in [&a, &b] {
        let mut client = dialer().dial(&peer.addr).unwrap();
        let mut events = Vec::new();
        let report =
            transfer::push_files(&mut client, &files, 256 * 1024, &mut recorder(&mut events))
                .unwrap();
        assert_eq!(settled(&events), [("big.bin".into(), Outcome::Stored)]);
        assert_eq!(report.tally.stored, 1);
        assert!(report.bytes_sent >= bytes.len() as u64);
        let moved: u64 = events
            .iter()
            .filter_map(|event| match event {
                TransferEvent::Moved { bytes } => Some(*bytes),
                _ => None,
            })
            .sum();
        assert_eq!(moved, bytes.len() as u64);
    }

    let (_dir, local) = store();
    let mut events = Vec::new();
    let addrs = [a.addr.clone(), b.addr.clone()];
    let report = transfer::pull(
        &dialer(),
        &addrs,
        &[name_of("big.bin")],
        local.as_ref(),
        &mut recorder(&mut events),
    )
    .unwrap();
    assert_eq!(settled(&events), [("big.bin".into(), Outcome::Stored)]);
    assert!(report.dropped.is_empty(), "{:?}", report.dropped);
    assert_eq!(report.peers.len(), 2);
    assert!(report.bytes_received >= bytes.len() as u64);
    assert_eq!(exported(local.as_ref(), "big.bin"), bytes);

    let mut again = Vec::new();
    let report = transfer::pull(
        &dialer(),
        &addrs,
        &[],
        local.as_ref(),
        &mut recorder(&mut again),
    )
    .unwrap();
    assert_eq!(settled(&again), [("big.bin".into(), Outcome::AlreadyHad)]);
    assert_eq!(report.bytes_received, 0);
}

/// Two honest peers holding different editions of one name: the first peer given decides
/// the edition, the other is simply not asked for it, nobody is blamed, and what only one
/// peer holds still arrives from it.
#[test]
fn peers_that_disagree_on_a_name_are_matched_on_name_and_hash() {
    let a = Peer::holding(&[("notes.txt", b"edition one"), ("only-a.txt", b"from a")]);
    let b = Peer::holding(&[("notes.txt", b"edition two!"), ("only-b.txt", b"from b")]);
    for (order, edition) in [
        ([&a, &b], &b"edition one"[..]),
        ([&b, &a], &b"edition two!"[..]),
    ] {
        let (_dir, local) = store();
        let addrs: Vec<String> = order.iter().map(|peer| peer.addr.clone()).collect();
        let mut events = Vec::new();
        let report = transfer::pull(
            &dialer(),
            &addrs,
            &[],
            local.as_ref(),
            &mut recorder(&mut events),
        )
        .unwrap();
        let mut outcomes = settled(&events);
        outcomes.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(
            outcomes,
            [
                ("notes.txt".into(), Outcome::Stored),
                ("only-a.txt".into(), Outcome::Stored),
                ("only-b.txt".into(), Outcome::Stored),
            ]
        );
        assert!(report.dropped.is_empty(), "{:?}", report.dropped);
        assert!(
            !events
                .iter()
                .any(|event| matches!(event, TransferEvent::PeerDropped { .. }))
        );
        assert_eq!(local.get(&name_of("notes.txt")).unwrap(), edition);
        assert_eq!(local.get(&name_of("only-a.txt")).unwrap(), b"from a");
        assert_eq!(local.get(&name_of("only-b.txt")).unwrap(), b"from b");
    }
}

#[test]
fn a_store_is_pushed_named_parts_with_their_chunks_and_unreachable_peers_are_reported() {
    let (_dir, local) = store();
    let source = tempfile::tempdir().unwrap();
    let path = source.path().join("file.bin");
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 13) as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    let options = storage::ImportOptions::default().chunk_size(16 * 1024);
    storage::import_files(
        local.as_ref(),
        &[FileSource::new(&path)],
        options,
        |(_, outcome)| {
            outcome.unwrap();
        },
    )
    .unwrap();
    let peer = Peer::holding(&[]);
    let mut client = dialer().dial(&peer.addr).unwrap();
    let mut events = Vec::new();
    let names = [name_of("file.bin"), name_of("absent.txt")];
    let report = transfer::push_store(
        &mut client,
        local.as_ref(),
        Some(&names),
        &mut recorder(&mut events),
    )
    .unwrap();
    assert_eq!(
        settled(&events),
        [
            (
                "absent.txt".into(),
                Outcome::Rejected("not in the local store".into())
            ),
            ("file.bin".into(), Outcome::Stored),
        ]
    );
    assert_eq!(report.tally.rejected, 1);

    let (_other, copy) = store();
    let unreachable = "127.0.0.1:1".to_owned();
    let mut events = Vec::new();
    transfer::pull(
        &dialer(),
        &[unreachable.clone(), peer.addr.clone()],
        &[name_of("file.bin")],
        copy.as_ref(),
        &mut recorder(&mut events),
    )
    .unwrap();
    assert!(events.iter().any(|event| matches!(
        event,
        TransferEvent::PeerUnreachable { peer, .. } if *peer == unreachable
    )));
    assert_eq!(exported(copy.as_ref(), "file.bin"), bytes);
    let err =
        transfer::pull(&dialer(), &[unreachable], &[], copy.as_ref(), &mut |_| {}).unwrap_err();
    assert!(matches!(err, transfer::TransferError::NoPeer(_)), "{err}");
}

/// A damaged store heals from the peers that hold each part, matched on name and hash: a
/// manifest that comes back shows which of its chunks are damaged, fetched in a second round;
/// what no peer holds is left unhealed, with why.
#[test]
fn a_damaged_store_is_repaired_from_the_peers_that_hold_each_part() {
    let file: Vec<u8> = (0..10_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let mut chunker = Chunker::new(&file[..], name_of("file.bin"), file.len() as u64, 4096);
    let chunks: Vec<VerifiedPart> = chunker.by_ref().map(Result::unwrap).collect();
    let manifest = chunker.manifest().unwrap();
    let part = |name, bytes: &[u8]| VerifiedPart::hashing(name_of(name), bytes.to_vec()).unwrap();
    let a = part("a.txt", b"held by the first peer");
    let b = part("b.txt", b"held by the second peer");
    let lost = part("lost.txt", b"held by no peer");
    let first = Peer::holding_batches(&[chunks.clone(), vec![manifest.clone(), a.clone()]]);
    let second = Peer::holding_batches(&[vec![b.clone()]]);

    let local = MemStore::new();
    let held = vec![manifest.clone(), a.clone(), b.clone(), lost.clone()];
    for batch in [chunks.clone(), held] {
        local.put_batch(&batch, OnConflict::Refuse).unwrap();
    }
    for name in [
        manifest.name(),
        chunks[1].name(),
        a.name(),
        b.name(),
        lost.name(),
    ] {
        assert!(local.damage(name));
    }
    let found = storage::verify(&local).unwrap();
    assert_eq!(found.corrupt.len(), 4);

    let peers = [first.addr.clone(), second.addr.clone()];
    let mut events = Vec::new();
    let report = transfer::repair(
        &dialer(),
        &peers,
        &local,
        &found,
        &mut recorder(&mut events),
    )
    .unwrap();
    let repaired: Vec<&str> = report.repaired.iter().map(PartName::as_str).collect();
    assert_eq!(repaired, ["a.txt", "b.txt", "file.bin"]);
    assert_eq!(report.unhealed.len(), 1);
    assert_eq!(report.unhealed[0].name, *lost.name());
    assert_eq!(
        report.unhealed[0].error,
        "no good copy of lost.txt: no peer holds it"
    );
    assert_eq!(exported(&local, "file.bin"), file);
    assert_eq!(
        local.lookup(manifest.name()).unwrap().unwrap().kind,
        PartKind::Manifest
    );
    assert_eq!(storage::verify(&local).unwrap().corrupt.len(), 1);
}
