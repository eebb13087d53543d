//! One behavioural suite, run against every backend: what `PartStore` promises, checked the
//! same way for sled, fs and memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use storage::{
    BackendKind, Chunker, INLINE_MAX, MAX_CHUNK_REPEATS, ManifestError, MemStore, OnConflict,
    PartHash, PartKind, PartName, PartStore, PutOutcome, StoreError, VerifiedPart, open_store,
};
use tempfile::TempDir;

/// A store under test, and for on-disk backends the directory to reopen it from, or for the
/// memory backend a second handle to damage it through.
struct Fixture {
    store: Box<dyn PartStore>,
    disk: Option<(TempDir, BackendKind)>,
    mem: Option<MemStore>,
}

impl Fixture {
    fn mem() -> Self {
        let store = MemStore::new();
        Self {
            store: Box::new(store.clone()),
            disk: None,
            mem: Some(store),
        }
    }

    fn on_disk(kind: BackendKind) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir.path().join("db"), Some(kind)).unwrap();
        Self {
            store,
            disk: Some((dir, kind)),
            mem: None,
        }
    }

    /// Flips a bit in the middle of the stored body of `part` (a body larger than
    /// [`INLINE_MAX`], so that it is a file or in a pack, not inside the sled index).
    fn damage(&self, part: &VerifiedPart) {
        match (&self.mem, &self.disk) {
            (Some(mem), _) => assert!(mem.damage(part.name())),
            (None, Some((dir, kind))) => {
                let middle = part.bytes().len() / 2;
                corrupt(*kind, &dir.path().join("db"), part.bytes(), middle, 0x10);
            }
            (None, None) => unreachable!("a fixture is in memory or on disk"),
        }
    }

    fn db_path(&self) -> Option<PathBuf> {
        self.disk.as_ref().map(|(dir, _)| dir.path().join("db"))
    }

    /// Closes and reopens an on-disk store, as a restart would.
    fn reopen(&mut self) {
        if let Some(path) = self.db_path() {
            // The old store must be dropped, releasing its lock, before the new one opens.
            drop(std::mem::replace(
                &mut self.store,
                Box::new(MemStore::new()),
            ));
            self.store = open_store(&path, None).unwrap();
        }
    }
}

fn name(text: &str) -> PartName {
    PartName::new(text).unwrap()
}

fn part(text: &str, bytes: &[u8]) -> VerifiedPart {
    VerifiedPart::hashing(name(text), bytes.to_vec()).unwrap()
}

fn bytes_of(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

fn sizes_around_the_inline_limit() -> Vec<usize> {
    let inline = INLINE_MAX as usize;
    vec![0, 1, 1000, inline - 1, inline, inline + 1, 1 << 20]
}

fn round_trips_every_size(mut fx: Fixture) {
    let sizes = sizes_around_the_inline_limit();
    for (i, &size) in sizes.iter().enumerate() {
        let p = part(&format!("p{i}"), &bytes_of(i as u64, size));
        assert_eq!(
            fx.store.put(&p, OnConflict::Refuse).unwrap(),
            PutOutcome::Stored
        );
        assert_eq!(fx.store.get(p.name()).unwrap(), p.bytes());
    }
    fx.reopen();
    for (i, &size) in sizes.iter().enumerate() {
        let got = fx.store.get(&name(&format!("p{i}"))).unwrap();
        assert_eq!(got, bytes_of(i as u64, size), "size {size} after reopen");
    }
}

fn same_bytes_again_is_already_had(fx: Fixture) {
    let p = part("part2.txt", b"hello");
    assert_eq!(
        fx.store.put(&p, OnConflict::Refuse).unwrap(),
        PutOutcome::Stored
    );
    assert_eq!(
        fx.store.put(&p, OnConflict::Refuse).unwrap(),
        PutOutcome::AlreadyHad
    );
    assert_eq!(
        fx.store.put(&p, OnConflict::Replace).unwrap(),
        PutOutcome::AlreadyHad
    );
}

fn different_bytes_conflict_and_keep_the_old_entry(mut fx: Fixture) {
    let old = part("part2.txt", &bytes_of(1, 50_000));
    let new = part("part2.txt", &bytes_of(2, 50_000));
    fx.store.put(&old, OnConflict::Refuse).unwrap();
    match fx.store.put(&new, OnConflict::Refuse) {
        Err(StoreError::Conflict {
            name,
            existing,
            offered,
        }) => {
            assert_eq!(name.as_str(), "part2.txt");
            assert_eq!(existing, old.hash());
            assert_eq!(offered, new.hash());
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    fx.reopen();
    assert_eq!(fx.store.get(old.name()).unwrap(), old.bytes());
}

fn replace_points_the_name_at_new_bytes(mut fx: Fixture) {
    let old = part("part2.txt", &bytes_of(1, 50_000));
    let new = part("part2.txt", b"short now");
    fx.store.put(&old, OnConflict::Refuse).unwrap();
    assert_eq!(
        fx.store.put(&new, OnConflict::Replace).unwrap(),
        PutOutcome::Replaced {
            previous: old.hash()
        }
    );
    fx.reopen();
    assert_eq!(fx.store.get(new.name()).unwrap(), new.bytes());
    assert_eq!(fx.store.lookup(new.name()).unwrap(), Some(new.info()));
}

fn batch_reports_each_part_in_order(fx: Fixture) {
    fx.store
        .put(&part("held", b"same"), OnConflict::Refuse)
        .unwrap();
    let parts = [
        part("new", b"one"),
        part("held", b"same"),
        part("held", b"different"),
        part("twice", b"first"),
        part("twice", b"second"),
        part("twice", b"first"),
    ];
    let outcomes = fx.store.put_batch(&parts, OnConflict::Refuse).unwrap();
    assert_eq!(outcomes.len(), parts.len());
    assert!(matches!(outcomes[0], Ok(PutOutcome::Stored)));
    assert!(matches!(outcomes[1], Ok(PutOutcome::AlreadyHad)));
    assert!(matches!(outcomes[2], Err(StoreError::Conflict { .. })));
    assert!(matches!(outcomes[3], Ok(PutOutcome::Stored)));
    assert!(matches!(outcomes[4], Err(StoreError::Conflict { .. })));
    assert!(matches!(outcomes[5], Ok(PutOutcome::AlreadyHad)));
    assert_eq!(fx.store.get(&name("twice")).unwrap(), b"first");
    assert_eq!(fx.store.get(&name("held")).unwrap(), b"same");
}

fn list_is_sorted_and_stats_add_up(fx: Fixture) {
    let parts = [part("b", b"22"), part("a", b"1"), part("c", b"333")];
    fx.store.put_batch(&parts, OnConflict::Refuse).unwrap();
    let names: Vec<_> = fx
        .store
        .list()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, [name("a"), name("b"), name("c")]);
    let stats = fx.store.stats().unwrap();
    assert_eq!((stats.parts, stats.bytes), (3, 6));
}

/// Pages of a listing: sorted, strictly after their cursor, concatenating to `list()`, and
/// the same after a restart.
fn list_pages_follow_their_cursor(mut fx: Fixture) {
    let names_of = |page: Vec<storage::PartInfo>| -> Vec<String> {
        page.into_iter()
            .map(|i| i.name.as_str().to_owned())
            .collect()
    };
    assert!(fx.store.list_page(None, 10).unwrap().is_empty());
    assert!(fx.store.list_page(Some("a"), 1).unwrap().is_empty());
    let held = ["a", "a0", "aa", "b", "b0", "c", "~", "é", "日本"];
    let parts: Vec<VerifiedPart> = held.iter().map(|n| part(n, n.as_bytes())).collect();
    fx.store.put_batch(&parts, OnConflict::Refuse).unwrap();
    fx.reopen();
    let all = fx.store.list().unwrap();
    assert_eq!(names_of(all.clone()), held);
    for limit in 1..=held.len() + 1 {
        let mut pages = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = fx.store.list_page(after.as_deref(), limit).unwrap();
            assert!(page.len() <= limit);
            let Some(last) = page.last() else { break };
            after = Some(last.name.as_str().to_owned());
            pages.extend(page);
        }
        assert_eq!(pages, all, "pages of {limit}");
    }
    let cases: [(Option<&str>, usize, &[&str]); 8] = [
        (None, 2, &["a", "a0"]),
        (Some("a"), 1, &["a0"]),
        (Some("a00"), 2, &["aa", "b"]),
        (Some("b"), 3, &["b0", "c", "~"]),
        (Some("../x"), 1, &["a"]),
        (Some("~"), 5, &["é", "日本"]),
        (Some("日本"), 5, &[]),
        (Some("\u{10FFFF}"), 5, &[]),
    ];
    for (after, limit, expected) in cases {
        let page = fx.store.list_page(after, limit).unwrap();
        assert_eq!(names_of(page), expected, "after {after:?}, limit {limit}");
    }
    assert!(fx.store.list_page(None, 0).unwrap().is_empty());
}

fn remove_forgets_only_that_name(mut fx: Fixture) {
    let shared = bytes_of(7, 100_000);
    let small = b"tiny".to_vec();
    for (n, bytes) in [
        ("a", &shared),
        ("b", &shared),
        ("s1", &small),
        ("s2", &small),
    ] {
        fx.store.put(&part(n, bytes), OnConflict::Refuse).unwrap();
    }
    assert!(fx.store.remove(&name("a")).unwrap());
    assert!(fx.store.remove(&name("s1")).unwrap());
    assert!(!fx.store.remove(&name("a")).unwrap());
    assert!(matches!(
        fx.store.get(&name("a")),
        Err(StoreError::NotFound(_))
    ));
    fx.reopen();
    assert_eq!(fx.store.get(&name("b")).unwrap(), shared);
    assert_eq!(fx.store.get(&name("s2")).unwrap(), small);
    assert_eq!(fx.store.lookup(&name("a")).unwrap(), None);
    assert!(fx.store.remove(&name("b")).unwrap());
    assert!(fx.store.remove(&name("s2")).unwrap());
    fx.reopen();
    assert!(fx.store.list().unwrap().is_empty());
}

fn missing_names_are_not_found(fx: Fixture) {
    assert!(matches!(
        fx.store.get(&name("nope")),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(fx.store.lookup(&name("nope")).unwrap(), None);
}

/// Where a backend keeps bodies too large to inline.
/// A manifest is taken only once every chunk it lists is held, whoever puts it: in the same
/// batch as its chunks is too early, and a chunk held under its name with other bytes never
/// counts.
fn manifests_need_their_chunks_first(fx: Fixture) {
    let file = bytes_of(7, 10);
    let mut chunker = Chunker::new(&file[..], name("file.bin"), 10, 4);
    let chunks: Vec<VerifiedPart> = chunker.by_ref().map(Result::unwrap).collect();
    let manifest = chunker.manifest().unwrap();
    let refused = |outcome: &Result<PutOutcome, StoreError>| {
        matches!(outcome, Err(StoreError::ChunkUnavailable { .. }))
    };
    assert!(refused(&fx.store.put(&manifest, OnConflict::Refuse)));
    let mut same_batch = chunks.clone();
    same_batch.push(manifest.clone());
    let outcomes = fx.store.put_batch(&same_batch, OnConflict::Refuse).unwrap();
    assert!(refused(outcomes.last().unwrap()), "{outcomes:?}");
    assert_eq!(fx.store.lookup(&name("file.bin")).unwrap(), None);
    assert_eq!(
        fx.store.put(&manifest, OnConflict::Refuse).unwrap(),
        PutOutcome::Stored
    );
    assert!(matches!(
        fx.store.put(
            &manifest.clone().with_kind(storage::PartKind::Manifest),
            OnConflict::Refuse
        ),
        Ok(PutOutcome::AlreadyHad)
    ));
    let garbage = VerifiedPart::hashing(name("bad.bin"), b"not a manifest".to_vec())
        .unwrap()
        .with_kind(storage::PartKind::Manifest);
    assert!(matches!(
        fx.store.put(&garbage, OnConflict::Refuse),
        Err(StoreError::BadManifest { .. })
    ));
}

/// Encodes a manifest listing `chunk` `times` times, as a hostile peer would: the library's
/// constructor refuses to.
fn repeating_manifest(chunk: &VerifiedPart, times: u64) -> Vec<u8> {
    let (file_size, chunk_size) = (times * chunk.size(), chunk.size());
    let file_hash = PartHash::of(b"never assembled");
    let mut root = blake3::Hasher::new();
    root.update(&file_size.to_le_bytes());
    root.update(&chunk_size.to_le_bytes());
    root.update(file_hash.as_bytes());
    let mut bytes = b"P2PM".to_vec();
    bytes.extend_from_slice(&1u16.to_le_bytes());
    for number in [file_size, chunk_size, times] {
        bytes.extend_from_slice(&number.to_le_bytes());
    }
    bytes.extend_from_slice(file_hash.as_bytes());
    let mut chunks = Vec::new();
    for _ in 0..times {
        chunks.extend_from_slice(chunk.hash().as_bytes());
    }
    root.update(&chunks);
    bytes.extend_from_slice(root.finalize().as_bytes());
    bytes.extend_from_slice(&chunks);
    bytes
}

/// A manifest that lists one held chunk more often than [`MAX_CHUNK_REPEATS`] is refused
/// whoever puts it, and nothing of it is stored; at the limit it is a file like any other.
fn manifests_are_bounded(fx: Fixture) {
    let chunk = part(&format!("b3-{}", PartHash::of(b"zero")), b"zero");
    fx.store.put(&chunk, OnConflict::Refuse).unwrap();
    let manifest = |name: &str, times| {
        VerifiedPart::hashing(self::name(name), repeating_manifest(&chunk, times))
            .unwrap()
            .with_kind(PartKind::Manifest)
    };
    let bomb = manifest("bomb.bin", MAX_CHUNK_REPEATS + 1);
    match fx.store.put(&bomb, OnConflict::Refuse) {
        Err(StoreError::BadManifest {
            name,
            reason: ManifestError::ChunkRepeated { hash, times },
        }) => {
            assert_eq!(name, *bomb.name());
            assert_eq!((hash, times), (chunk.hash(), MAX_CHUNK_REPEATS + 1));
        }
        other => panic!("expected a bounded manifest refusal, got {other:?}"),
    }
    assert_eq!(fx.store.lookup(bomb.name()).unwrap(), None);
    let zeros = manifest("zeros.bin", MAX_CHUNK_REPEATS);
    assert_eq!(
        fx.store.put(&zeros, OnConflict::Refuse).unwrap(),
        PutOutcome::Stored
    );
}

fn body_dir(kind: BackendKind, db: &Path) -> PathBuf {
    match kind {
        BackendKind::Sled => db.join("packs"),
        BackendKind::Fs => db.join("bodies"),
    }
}

/// Bytes on disk in a backend's body files.
fn body_bytes(kind: BackendKind, db: &Path) -> u64 {
    std::fs::read_dir(body_dir(kind, db))
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .sum()
}

/// Checks that the body files hold `bodies` bytes, plus the sled backend's record headers (a
/// few hundred bytes here).
fn assert_bodies_take(kind: BackendKind, db: &Path, bodies: u64) {
    let on_disk = body_bytes(kind, db);
    assert!(
        (bodies..bodies + 1024).contains(&on_disk),
        "{on_disk} bytes on disk for {bodies} of bodies"
    );
}

/// The body file holding `bytes`, and where in it they start.
fn locate(kind: BackendKind, db: &Path, bytes: &[u8]) -> (PathBuf, usize) {
    let probe = &bytes[..64];
    for entry in std::fs::read_dir(body_dir(kind, db)).unwrap() {
        let path = entry.unwrap().path();
        let stored = std::fs::read(&path).unwrap();
        if let Some(at) = stored
            .windows(probe.len())
            .position(|window| window == probe)
        {
            return (path, at);
        }
    }
    panic!("no body file holds the bytes");
}

/// Flips one bit of a stored body; returns the bytes now on disk.
fn corrupt(kind: BackendKind, db: &Path, bytes: &[u8], offset: usize, bit: u8) -> Vec<u8> {
    let (path, at) = locate(kind, db, bytes);
    let mut stored = std::fs::read(&path).unwrap();
    stored[at + offset] ^= bit;
    std::fs::write(&path, &stored).unwrap();
    stored[at..at + bytes.len()].to_vec()
}

/// Bodies are content-addressed: identical bytes under many names are stored once, and the
/// space goes when their last name does.
fn on_disk_bodies_are_shared_and_collected(kind: BackendKind) {
    let mut fx = Fixture::on_disk(kind);
    let db = fx.db_path().unwrap();
    let big = bytes_of(3, 200_000);
    for n in ["x", "y", "z"] {
        fx.store.put(&part(n, &big), OnConflict::Refuse).unwrap();
    }
    assert_bodies_take(kind, &db, 200_000);
    fx.store.remove(&name("x")).unwrap();
    let other = bytes_of(6, 200_000);
    fx.store
        .put(&part("y", &other), OnConflict::Replace)
        .unwrap();
    assert_bodies_take(kind, &db, 400_000);
    fx.store.remove(&name("z")).unwrap();
    assert_bodies_take(kind, &db, 200_000);
    fx.reopen();
    assert_bodies_take(kind, &db, 200_000);
    assert_eq!(fx.store.get(&name("y")).unwrap(), other);
}

/// The files under `dir` this process still holds open after they were deleted: space a
/// removal or a compaction promised back and did not give.
fn deleted_files_held(dir: &Path) -> Vec<PathBuf> {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| {
            target.starts_with(&dir) && target.to_string_lossy().ends_with(" (deleted)")
        })
        .collect()
}

/// A compaction gives back every byte removals left, however few, and keeps what is stored,
/// also as the first thing a reopened store writes.
fn on_disk_compaction_gives_back_what_removals_left(kind: BackendKind) {
    let mut fx = Fixture::on_disk(kind);
    let db = fx.db_path().unwrap();
    let kept: Vec<VerifiedPart> = (0..4)
        .map(|i| {
            part(
                &format!("k{i}"),
                &bytes_of(20 + i, 100_000 + 5_000 * i as usize),
            )
        })
        .collect();
    fx.store.put_batch(&kept, OnConflict::Refuse).unwrap();
    let gone = part("gone", &bytes_of(30, 100_000));
    fx.store.put(&gone, OnConflict::Refuse).unwrap();
    fx.store.remove(&name("gone")).unwrap();
    // Reopened, the compaction is the first append: it must not go into the pack it empties.
    fx.reopen();
    // Reads first, so that a backend keeping files open for reads holds the ones compacted.
    for part in &kept {
        assert_eq!(fx.store.get(part.name()).unwrap(), part.bytes());
    }
    fx.store.compact().unwrap();
    assert_eq!(
        fx.store.compact().unwrap(),
        0,
        "nothing is left to give back"
    );
    let live: u64 = kept.iter().map(VerifiedPart::size).sum();
    assert_bodies_take(kind, &db, live);
    assert_eq!(deleted_files_held(&db), Vec::<PathBuf>::new());
    fx.reopen();
    for part in &kept {
        assert_eq!(fx.store.get(part.name()).unwrap(), part.bytes());
    }
}

/// A flipped bit on disk is reported as corruption of that part, never returned; removing the
/// part and putting the same bytes again stores them afresh.
fn on_disk_corruption_is_detected(kind: BackendKind) {
    let mut fx = Fixture::on_disk(kind);
    let victim = part("victim", &bytes_of(4, 100_000));
    let bystander = part("bystander", &bytes_of(5, 100_000));
    fx.store
        .put_batch(&[victim.clone(), bystander.clone()], OnConflict::Refuse)
        .unwrap();
    let db = fx.db_path().unwrap();
    let bytes = corrupt(kind, &db, victim.bytes(), 12_345, 0x01);
    fx.reopen();
    match fx.store.get(victim.name()) {
        Err(StoreError::Corrupt {
            name,
            expected,
            actual,
        }) => {
            assert_eq!(name, *victim.name());
            assert_eq!(expected, victim.hash());
            assert_eq!(actual, PartHash::of(&bytes));
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    let report = storage::verify(fx.store.as_ref()).unwrap();
    assert_eq!(report.intact, 1);
    assert_eq!(report.corrupt.len(), 1);
    assert_eq!(report.corrupt[0].0, *victim.name());

    let (body, at) = locate(kind, &db, &bytes);
    match kind {
        BackendKind::Fs => std::fs::remove_file(&body).unwrap(),
        BackendKind::Sled => {
            let pack = std::fs::OpenOptions::new().write(true).open(&body).unwrap();
            pack.set_len(at as u64).unwrap();
        }
    }
    assert!(matches!(
        fx.store.get(victim.name()),
        Err(StoreError::BodyMissing { .. })
    ));
    assert_eq!(
        fx.store.put(&victim, OnConflict::Refuse).unwrap(),
        PutOutcome::Repaired
    );
    assert_eq!(fx.store.get(victim.name()).unwrap(), victim.bytes());
    fx.store.remove(victim.name()).unwrap();
    fx.store.put(&victim, OnConflict::Refuse).unwrap();
    assert_eq!(fx.store.get(victim.name()).unwrap(), victim.bytes());
}

/// A body that is gone is seen without any read: the server asks for it, and a put of its
/// bytes writes it again, even with no read having found it missing first.
fn on_disk_a_missing_body_is_known_and_rewritten(kind: BackendKind) {
    let mut fx = Fixture::on_disk(kind);
    let victim = part("victim", &bytes_of(13, 100_000));
    fx.store.put(&victim, OnConflict::Refuse).unwrap();
    let db = fx.db_path().unwrap();
    let (body, at) = locate(kind, &db, victim.bytes());
    match kind {
        BackendKind::Fs => std::fs::remove_file(&body).unwrap(),
        BackendKind::Sled => {
            let pack = std::fs::OpenOptions::new().write(true).open(&body).unwrap();
            pack.set_len(at as u64 + 10).unwrap();
        }
    }
    fx.reopen();
    let held = fx.store.lookup(victim.name()).unwrap().unwrap();
    assert!(fx.store.known_damaged(&held).unwrap());
    assert_eq!(
        fx.store.put(&victim, OnConflict::Refuse).unwrap(),
        PutOutcome::Repaired
    );
    assert!(!fx.store.known_damaged(&held).unwrap());
    fx.reopen();
    assert_eq!(fx.store.get(victim.name()).unwrap(), victim.bytes());
}

/// Export writes every intact part, skips the corrupt one and overwrites nothing.
fn on_disk_export_skips_corrupt_parts(kind: BackendKind) {
    let fx = Fixture::on_disk(kind);
    let good = part("good.bin", &bytes_of(8, 30_000));
    let bad = part("bad.bin", &bytes_of(9, 30_000));
    fx.store
        .put_batch(&[good.clone(), bad.clone()], OnConflict::Refuse)
        .unwrap();
    corrupt(kind, &fx.db_path().unwrap(), bad.bytes(), 0, 0x80);

    let out = tempfile::tempdir().unwrap();
    let outcomes = storage::export(
        fx.store.as_ref(),
        out.path(),
        None,
        &storage::ExportOptions::new("_recebida").unwrap(),
    )
    .unwrap();
    let failed: Vec<_> = outcomes.iter().filter(|(_, r)| r.is_err()).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, *bad.name());
    assert!(failed[0].1.as_ref().unwrap_err().is_corruption());
    assert_eq!(
        std::fs::read(out.path().join("good.bin_recebida")).unwrap(),
        good.bytes()
    );
    assert!(!out.path().join("bad.bin_recebida").exists());
    let leftovers = std::fs::read_dir(out.path()).unwrap().count();
    assert_eq!(leftovers, 1, "no temp file is left behind");
}

/// A body a read found damaged is remembered (across a restart too): the store says so
/// without reading it again, and the next put of the bytes it should hold writes it again,
/// once per batch, leaving the entry as it was and the other parts alone.
fn damaged_bodies_are_rewritten_by_their_own_bytes(mut fx: Fixture) {
    let victim = part("victim", &bytes_of(11, 100_000));
    let bystander = part("bystander", &bytes_of(12, 100_000));
    fx.store
        .put_batch(&[victim.clone(), bystander.clone()], OnConflict::Refuse)
        .unwrap();
    fx.damage(&victim);
    assert!(matches!(
        fx.store.get(victim.name()),
        Err(StoreError::Corrupt { .. })
    ));
    assert_eq!(
        storage::verify(fx.store.as_ref()).unwrap().damaged,
        [victim.info()]
    );
    fx.reopen();
    let held = fx.store.lookup(victim.name()).unwrap().unwrap();
    assert!(fx.store.known_damaged(&held).unwrap());
    let other = fx.store.lookup(bystander.name()).unwrap().unwrap();
    assert!(!fx.store.known_damaged(&other).unwrap());

    let outcomes = fx
        .store
        .put_batch(
            &[victim.clone(), victim.clone(), bystander.clone()],
            OnConflict::Refuse,
        )
        .unwrap();
    let outcomes: Vec<PutOutcome> = outcomes.into_iter().map(Result::unwrap).collect();
    use PutOutcome::{AlreadyHad, Repaired};
    assert_eq!(outcomes, [Repaired, AlreadyHad, AlreadyHad]);
    assert_eq!(fx.store.get(victim.name()).unwrap(), victim.bytes());
    assert!(!fx.store.known_damaged(&held).unwrap());
    assert_eq!(fx.store.lookup(victim.name()).unwrap(), Some(held));
    fx.reopen();
    assert_eq!(fx.store.get(victim.name()).unwrap(), victim.bytes());
    assert_eq!(fx.store.get(bystander.name()).unwrap(), bystander.bytes());
    assert_eq!(
        fx.store.put(&victim, OnConflict::Refuse).unwrap(),
        PutOutcome::AlreadyHad
    );
}

/// A new name bringing the bytes of a damaged body shared by content writes the body again,
/// so the names that already pointed at it read back whole.
fn a_new_name_rewrites_the_damaged_body_it_shares(fx: Fixture) {
    let first = part("first", &bytes_of(14, 100_000));
    let second = part("second", first.bytes());
    fx.store.put(&first, OnConflict::Refuse).unwrap();
    fx.damage(&first);
    assert!(fx.store.get(first.name()).is_err());
    assert_eq!(
        fx.store.put(&second, OnConflict::Refuse).unwrap(),
        PutOutcome::Stored
    );
    assert_eq!(fx.store.get(first.name()).unwrap(), first.bytes());
    assert_eq!(fx.store.get(second.name()).unwrap(), first.bytes());
}

/// The operations a proptest case runs, against the store and against a map as the model.
#[derive(Debug, Clone)]
enum Op {
    Put { name: u8, content: u8, big: bool },
    Replace { name: u8, content: u8 },
    Remove { name: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..6u8, 0..4u8, any::<bool>()).prop_map(|(name, content, big)| Op::Put {
            name,
            content,
            big
        }),
        (0..6u8, 0..4u8).prop_map(|(name, content)| Op::Replace { name, content }),
        (0..6u8).prop_map(|name| Op::Remove { name }),
    ]
}

fn content(content: u8, big: bool) -> Vec<u8> {
    let len = if big { INLINE_MAX as usize + 100 } else { 40 };
    bytes_of(u64::from(content), len)
}

fn matches_a_map_model(mut fx: Fixture, ops: &[Op]) {
    let mut model: BTreeMap<PartName, Vec<u8>> = BTreeMap::new();
    for op in ops {
        match *op {
            Op::Put {
                name: n,
                content: c,
                big,
            } => {
                let p = part(&format!("n{n}"), &content(c, big));
                let result = fx.store.put(&p, OnConflict::Refuse);
                match model.get(p.name()) {
                    None => {
                        assert_eq!(result.unwrap(), PutOutcome::Stored);
                        model.insert(p.name().clone(), p.bytes().to_vec());
                    }
                    Some(held) if held == p.bytes() => {
                        assert_eq!(result.unwrap(), PutOutcome::AlreadyHad);
                    }
                    Some(_) => assert!(matches!(result, Err(StoreError::Conflict { .. }))),
                }
            }
            Op::Replace {
                name: n,
                content: c,
            } => {
                let p = part(&format!("n{n}"), &content(c, c % 2 == 0));
                fx.store.put(&p, OnConflict::Replace).unwrap();
                model.insert(p.name().clone(), p.bytes().to_vec());
            }
            Op::Remove { name: n } => {
                let n = name(&format!("n{n}"));
                assert_eq!(fx.store.remove(&n).unwrap(), model.remove(&n).is_some());
            }
        }
    }
    fx.reopen();
    let listed: Vec<_> = fx
        .store
        .list()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(listed, model.keys().cloned().collect::<Vec<_>>());
    for (n, bytes) in &model {
        assert_eq!(&fx.store.get(n).unwrap(), bytes);
    }
}

macro_rules! conformance {
    ($($backend:ident => $fixture:expr),* $(,)?) => {$(
        mod $backend {
            use super::*;

            #[test]
            fn round_trips_every_size() { super::round_trips_every_size($fixture) }
            #[test]
            fn same_bytes_again_is_already_had() { super::same_bytes_again_is_already_had($fixture) }
            #[test]
            fn different_bytes_conflict_and_keep_the_old_entry() {
                super::different_bytes_conflict_and_keep_the_old_entry($fixture)
            }
            #[test]
            fn replace_points_the_name_at_new_bytes() {
                super::replace_points_the_name_at_new_bytes($fixture)
            }
            #[test]
            fn batch_reports_each_part_in_order() { super::batch_reports_each_part_in_order($fixture) }
            #[test]
            fn list_is_sorted_and_stats_add_up() { super::list_is_sorted_and_stats_add_up($fixture) }
            #[test]
            fn list_pages_follow_their_cursor() { super::list_pages_follow_their_cursor($fixture) }
            #[test]
            fn remove_forgets_only_that_name() { super::remove_forgets_only_that_name($fixture) }
            #[test]
            fn missing_names_are_not_found() { super::missing_names_are_not_found($fixture) }
            #[test]
            fn manifests_need_their_chunks_first() {
                super::manifests_need_their_chunks_first($fixture)
            }
            #[test]
            fn manifests_are_bounded() { super::manifests_are_bounded($fixture) }
            #[test]
            fn damaged_bodies_are_rewritten_by_their_own_bytes() {
                super::damaged_bodies_are_rewritten_by_their_own_bytes($fixture)
            }
            #[test]
            fn a_new_name_rewrites_the_damaged_body_it_shares() {
                super::a_new_name_rewrites_the_damaged_body_it_shares($fixture)
            }

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(24))]
                #[test]
                fn matches_a_map_model(ops in proptest::collection::vec(op(), 1..24)) {
                    super::matches_a_map_model($fixture, &ops)
                }
            }
        }
    )*};
}

conformance! {
    mem => Fixture::mem(),
    sled => Fixture::on_disk(BackendKind::Sled),
    fs => Fixture::on_disk(BackendKind::Fs),
}

macro_rules! on_disk {
    ($($backend:ident => $kind:expr),* $(,)?) => {$(
        mod $backend {
            use super::*;

            #[test]
            fn bodies_are_shared_and_collected() { on_disk_bodies_are_shared_and_collected($kind) }
            #[test]
            fn corruption_is_detected() { on_disk_corruption_is_detected($kind) }
            #[test]
            fn compaction_gives_back_what_removals_left() {
                on_disk_compaction_gives_back_what_removals_left($kind)
            }
            #[test]
            fn a_missing_body_is_known_and_rewritten() {
                on_disk_a_missing_body_is_known_and_rewritten($kind)
            }
            #[test]
            fn export_skips_corrupt_parts() { on_disk_export_skips_corrupt_parts($kind) }
        }
    )*};
}

mod on_disk {
    use super::*;
    on_disk! {
        sled => BackendKind::Sled,
        fs => BackendKind::Fs,
    }
}
