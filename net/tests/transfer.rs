//! The transfer engine as a Rust program uses it, without the binary: real servers on
//! 127.0.0.1:0 over real sled stores in temp dirs, pushed to and pulled from through
//! `net::transfer`, with the observer's events asserted on.

use std::sync::Arc;
use std::thread::JoinHandle;

use net::transfer::{self, Dialer, Outcome, TransferEvent};
use net::{Server, ServerConfig, ShutdownHandle};
use storage::{BackendKind, FileSource, OnConflict, PartName, PartStore, VerifiedPart};
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
        let dir = tempfile::tempdir().unwrap();
        let store = storage::open_store(&dir.path().join("db"), Some(BackendKind::Sled)).unwrap();
        let parts: Vec<VerifiedPart> = parts
            .iter()
            .map(|(name, bytes)| VerifiedPart::hashing(name_of(name), bytes.to_vec()).unwrap())
            .collect();
        store.put_batch(&parts, OnConflict::Refuse).unwrap();
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
