//! Crash safety: a child process puts parts and prints each name once its put has returned
//! (durable); the parent kills it with SIGKILL at a random moment, reopens the store and checks
//! that every printed part is there and intact, and that nothing unfinished is visible.
//!
//! The child is this same test binary, re-run with `--exact crash_child --ignored` and the
//! store path in an environment variable.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use storage::{BackendKind, INLINE_MAX, OnConflict, PartName, PartStore, VerifiedPart, open_store};

const CHILD_DB: &str = "P2P_STORE_CRASH_CHILD_DB";
const CHILD_PREFIX: &str = "P2P_STORE_CRASH_CHILD_PREFIX";
const CYCLES: usize = 20;
/// The child stops on its own after this long, so a missed kill cannot leave it running.
const CHILD_LIFETIME: Duration = Duration::from_secs(20);

/// The bytes of a part follow from its name, so the parent can check them without being told.
fn content_of(name: &str) -> Vec<u8> {
    let seed = u64::from_le_bytes(blake3_prefix(name));
    let mut rng = fastrand::Rng::with_seed(seed);
    let len = match rng.u8(..4) {
        0 => rng.usize(..64),
        1 => rng.usize(..INLINE_MAX as usize),
        _ => rng.usize(INLINE_MAX as usize..400_000),
    };
    let mut bytes = vec![0; len];
    rng.fill(&mut bytes);
    bytes
}

fn blake3_prefix(name: &str) -> [u8; 8] {
    storage::PartHash::of(name.as_bytes()).as_bytes()[..8]
        .try_into()
        .unwrap()
}

#[test]
#[ignore = "the child half of the crash tests; run by them, not on its own"]
fn crash_child() {
    let (Ok(db), Ok(prefix)) = (std::env::var(CHILD_DB), std::env::var(CHILD_PREFIX)) else {
        return;
    };
    let store = open_store(Path::new(&db), None).unwrap();
    let started = Instant::now();
    let mut rng = fastrand::Rng::new();
    let mut next = 0;
    while started.elapsed() < CHILD_LIFETIME {
        let batch: Vec<VerifiedPart> = (0..rng.usize(1..6))
            .map(|_| {
                next += 1;
                let name = format!("{prefix}-{next}");
                VerifiedPart::hashing(PartName::new(&name).unwrap(), content_of(&name)).unwrap()
            })
            .collect();
        for outcome in store.put_batch(&batch, OnConflict::Refuse).unwrap() {
            outcome.unwrap();
        }
        for part in &batch {
            println!("durable {}", part.name());
        }
    }
}

/// Runs the child against `db` until a random moment, kills it, and returns what it printed.
fn run_and_kill(db: &Path, prefix: &str) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB, db)
        .env(CHILD_PREFIX, prefix)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| line.strip_prefix("durable ").map(str::to_owned))
            .collect::<Vec<_>>()
    });
    std::thread::sleep(Duration::from_millis(fastrand::u64(30..600)));
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap()
}

fn files_in(dir: PathBuf) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn survives_kill_9(kind: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    drop(open_store(&db, Some(kind)).unwrap());
    let mut acknowledged = Vec::new();
    let mut cycles_that_wrote = 0;
    for cycle in 0..CYCLES {
        let printed = run_and_kill(&db, &format!("c{cycle}"));
        cycles_that_wrote += usize::from(!printed.is_empty());
        acknowledged.extend(printed);

        let store = open_store(&db, None).unwrap();
        check_intact(store.as_ref(), &acknowledged);
        assert!(
            files_in(db.join("tmp")).is_empty(),
            "temp files survived the reopen"
        );
        check_no_orphans(kind, &db, store.as_ref());
    }
    assert!(
        cycles_that_wrote >= CYCLES / 2,
        "too few cycles got as far as a durable put ({cycles_that_wrote}) to test anything"
    );
    eprintln!(
        "{kind}: {} parts acknowledged over {CYCLES} kills, all intact",
        acknowledged.len()
    );
}

/// Nothing unreferenced is left on disk: the fs backend keeps one body file per distinct
/// body, the sled backend's packs hold exactly one record per part, a 72-byte header, the
/// name and the body (every part's bytes differ and nothing was removed, so no pack has dead
/// bytes, and any cut-short append was cut off).
fn check_no_orphans(kind: BackendKind, db: &Path, store: &dyn PartStore) {
    let listed = store.list().unwrap();
    let bodies: BTreeMap<String, u64> = listed
        .iter()
        .map(|info| (info.hash.to_hex(), info.size))
        .collect();
    let records: u64 = listed
        .iter()
        .map(|info| 72 + info.name.as_str().len() as u64 + info.size)
        .sum();
    match kind {
        BackendKind::Fs => {
            let orphans: Vec<_> = files_in(db.join("bodies"))
                .into_iter()
                .filter(|file| !bodies.contains_key(file))
                .collect();
            assert!(
                orphans.is_empty(),
                "unreferenced bodies survived: {orphans:?}"
            );
        }
        BackendKind::Sled => {
            let packed: u64 = files_in(db.join("packs"))
                .iter()
                .map(|file| {
                    std::fs::metadata(db.join("packs").join(file))
                        .unwrap()
                        .len()
                })
                .sum();
            assert_eq!(packed, records, "the packs hold bytes no entry uses");
        }
    }
}

fn check_intact(store: &dyn PartStore, acknowledged: &[String]) {
    for name in acknowledged {
        let bytes = store
            .get(&PartName::new(name).unwrap())
            .unwrap_or_else(|err| panic!("acknowledged part {name} is not intact: {err}"));
        assert!(bytes == content_of(name), "{name} holds other bytes");
    }
}

#[test]
fn sled_survives_kill_9() {
    survives_kill_9(BackendKind::Sled);
}

#[test]
fn fs_survives_kill_9() {
    survives_kill_9(BackendKind::Fs);
}
