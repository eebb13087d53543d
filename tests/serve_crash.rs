//! `serve` killed with SIGKILL in the middle of a push, cycle after cycle on one store: after a
//! restart, every part the sender was told is `stored` is there, whole, nothing half-written
//! is listed or left in `tmp/`, and sending the batch again completes it. Real processes, real
//! stores in temp dirs, servers on 127.0.0.1:0.
//!
//! The kill comes after a random pause (seeded, so a failure replays), not at a byte count: what
//! is checked is that whatever moment it hits, the sender's `stored` lines are true. Some cycles
//! must catch the push mid-way, or the test says so and asks for larger batches.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use storage::{BackendKind, PartHash};
use tempfile::NamedTempFile;

use support::files::{PART, PART_SIZE, assert_exported_exactly, with_paths};
use support::{
    PATIENCE, Server, expected_listing_in_parts, list_from, names_in, p, run, start_server,
    write_files,
};

/// Cycles of push, kill, restart, check and resume, per backend.
const CYCLES: usize = 20;

/// The longest a push runs before its server is killed: long enough for a push to a sled store
/// to finish now and then here, so kills land before the first part is stored, in the middle
/// (among the parts sent whole, or among the chunked files that follow them), and after the
/// end.
const MAX_DELAY_MS: u64 = 300;

/// Kills that must find the sender still pushing, of [`CYCLES`].
const MIN_CAUGHT_MID_WAY: usize = 4;

/// Files exported intact in an earlier cycle that each cycle exports again, so damage a later
/// crash (or the recovery from it) does to old files can show up in the cycle that did it.
/// Exporting them all every cycle would cost the square of the cycles; instead `verify`
/// re-reads every one at the end, against the hashes the listings were checked to hold.
const RECHECKED: usize = 16;

/// The kinds of file in each cycle's batch: the tag in their names, how many, and their sizes.
/// Small ones follow their own record in sled's packs; medium ones are shared bodies, and are
/// chunked when past [`PART`]; large ones are files of many chunks.
const KINDS: [(&str, usize, RangeInclusive<usize>); 3] = [
    ("small", 160, 0..=16 * 1024 - 1),
    ("medium", 38, 20 * 1024..=200 * 1024),
    ("large", 2, 4 * PART + 1..=12 * PART),
];

#[test]
fn parts_stored_before_a_kill_9_mid_push_survive_it_and_the_push_resumes_on_sled() {
    crash_cycles(BackendKind::Sled, 1);
}

#[test]
fn parts_stored_before_a_kill_9_mid_push_survive_it_and_the_push_resumes_on_fs() {
    crash_cycles(BackendKind::Fs, 2);
}

/// What the cycles have learnt of the store.
#[derive(Default)]
struct Ledger {
    /// Every file sent so far, with the `list --json` entry it must have once stored.
    sent: BTreeMap<String, Value>,
    /// The files a sender reported `stored` or `already had`, which must be there: those of
    /// the crashed pushes, and every file of a cycle whose push was completed.
    promised: BTreeSet<String>,
    /// The files exported intact after some restart.
    exported: BTreeSet<String>,
}

/// How the kills fell.
#[derive(Debug, Default)]
struct Kills {
    /// Kills that found the sender still pushing.
    mid_way: usize,
    /// Of those, the ones after at least one part was reported stored.
    after_a_store: usize,
}

/// [`CYCLES`] times on one store: push a new batch and kill the server mid-way, restart it and
/// check what it holds, push the batch again and check it is complete, stop the server.
fn crash_cycles(backend: BackendKind, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("served.db");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut ledger = Ledger::default();
    let mut kills = Kills::default();
    for cycle in 0..CYCLES {
        let names = batch(cycle, &mut rng);
        let input = dir.path().join(format!("in-{cycle:02}"));
        let paths = write_batch(&input, &names, &mut ledger);

        let delay = Duration::from_millis(rng.u64(0..=MAX_DELAY_MS));
        eprintln!("{backend:?} cycle {cycle}: serve killed {delay:?} into the push");
        let server = start_server(&db, backend, &[]);
        let sending = Sending::start(&server.at(), &paths);
        std::thread::sleep(delay);
        server.kill();
        let pushed = sending.finish();
        let stored = pushed.crashed_push(&names);
        eprintln!("  {} reported stored; {}", stored.len(), pushed.status);
        if !pushed.finished() {
            kills.mid_way += 1;
            kills.after_a_store += usize::from(!stored.is_empty());
        }
        ledger.promised.extend(stored);

        let server = start_server(&db, backend, &[]);
        let held = check_restarted(&server, &db, &mut ledger, &mut rng, &dir.path().join("out"));
        let resent = Sending::start(&server.at(), &paths).finish();
        let held_of_batch = held.into_iter().filter(|name| names.contains(name));
        resent.resumed_push(&names, &held_of_batch.collect());
        ledger.promised.extend(names);
        let everything = Value::Array(ledger.sent.values().cloned().collect());
        assert_eq!(list_from(&server), everything, "after the push resumed");
        server.stop();
        std::fs::remove_dir_all(&input).unwrap();
    }
    eprintln!("{backend:?}: {kills:?} of {CYCLES}");
    assert!(
        kills.mid_way >= MIN_CAUGHT_MID_WAY && kills.after_a_store >= 1,
        "too few kills caught the push mid-way ({kills:?} of {CYCLES}); make the batches larger"
    );

    // Every file of every cycle, re-read whole after all the crashes.
    let verified = run(["--db", p(&db), "verify", "--json"]).ok().json();
    assert_eq!(verified["corrupt"], serde_json::json!([]), "{verified}");
    assert_eq!(verified["intact"], ledger.sent.len(), "{verified}");
}

/// Writes the files of `names` into `dir` and enters them in the ledger as sent.
fn write_batch(dir: &Path, names: &[String], ledger: &mut Ledger) -> Vec<PathBuf> {
    let files: Vec<(&str, Vec<u8>)> = names.iter().map(|n| (n.as_str(), content(n))).collect();
    for (name, bytes) in &files {
        let listing = expected_listing_in_parts(&[(name, bytes.clone())], PART as u64);
        ledger.sent.insert((*name).to_owned(), listing[0].clone());
    }
    write_files(dir, &files)
}

/// Checks a server restarted on a store whose last server was killed: no temp file left,
/// every listed file whole (exported, if not already after an earlier restart, and a few of
/// those again), every promised file listed. Returns the names listed.
fn check_restarted(
    server: &Server,
    db: &Path,
    ledger: &mut Ledger,
    rng: &mut fastrand::Rng,
    out: &Path,
) -> BTreeSet<String> {
    assert_no_temp_files(db);
    let listing = list_from(server);
    for entry in listing.as_array().expect("a listing is an array") {
        let name = entry["name"].as_str().expect("a name");
        let sent = ledger.sent.get(name);
        assert_eq!(Some(entry), sent, "a listed file is whole: {name}");
    }
    let listed = names_in(&listing);
    let lost: Vec<&String> = ledger.promised.difference(&listed).collect();
    assert!(
        lost.is_empty(),
        "promised, then lost in the crash: {lost:?}"
    );

    let recheck = rng.choose_multiple(ledger.exported.iter(), RECHECKED);
    let to_export: BTreeSet<String> = listed
        .iter()
        .filter(|name| !ledger.exported.contains(*name))
        .chain(recheck)
        .cloned()
        .collect();
    assert_exports_intact(server, &to_export, out);
    ledger.exported.extend(to_export);
    listed
}

/// The names of a cycle's files, unique to the cycle, in an order that mixes the kinds.
fn batch(cycle: usize, rng: &mut fastrand::Rng) -> Vec<String> {
    let mut names: Vec<String> = KINDS
        .iter()
        .flat_map(|(kind, count, _)| (0..*count).map(move |i| format!("c{cycle:02}-{kind}-{i:03}")))
        .collect();
    rng.shuffle(&mut names);
    names
}

/// The bytes of the file called `name`, drawn from the name alone, so any cycle can check
/// any earlier cycle's files without keeping them.
fn content(name: &str) -> Vec<u8> {
    let kind = name.split('-').nth(1).expect("a batch name");
    let (_, _, sizes) = KINDS
        .iter()
        .find(|(tag, _, _)| *tag == kind)
        .expect("a known kind");
    let hash = PartHash::of(name.as_bytes());
    let seed = u64::from_le_bytes(hash.as_bytes()[..8].try_into().unwrap());
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut bytes = vec![0; rng.usize(sizes.clone())];
    rng.fill(&mut bytes);
    bytes
}

/// A `send --part-size PART` left running, its stdout read line by line as it comes.
struct Sending {
    child: Option<Child>,
    lines: Option<JoinHandle<Vec<String>>>,
    stderr: NamedTempFile,
}

impl Sending {
    fn start(at: &str, paths: &[PathBuf]) -> Self {
        let stderr = NamedTempFile::new().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_p2p-store"))
            .current_dir(env!("CARGO_TARGET_TMPDIR"))
            .args(with_paths(
                &["send", "--to", at, "--part-size", PART_SIZE],
                paths,
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().unwrap())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let lines = std::thread::spawn(move || stdout.lines().map(Result::unwrap).collect());
        Self {
            child: Some(child),
            lines: Some(lines),
            stderr,
        }
    }

    /// Waits for the sender to end, at most [`PATIENCE`] (a sender whose server was killed has
    /// nobody left to wait for).
    fn finish(mut self) -> Pushed {
        let mut child = self.child.take().expect("not finished yet");
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("send did not end within {PATIENCE:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let lines = self.lines.take().unwrap().join().unwrap();
        let stderr = std::fs::read_to_string(self.stderr.path()).unwrap_or_default();
        Pushed {
            status,
            lines,
            stderr,
        }
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How a `send` ended and what it printed.
struct Pushed {
    status: ExitStatus,
    lines: Vec<String>,
    stderr: String,
}

impl Pushed {
    /// Whether the push ran to its summary line.
    fn finished(&self) -> bool {
        self.summary().is_some()
    }

    fn summary(&self) -> Option<&str> {
        self.lines
            .last()
            .map(String::as_str)
            .filter(|line| line.ends_with(" bytes sent"))
    }

    /// The names on `VERB NAME` lines, each at most once and each one of `batch`.
    fn named(&self, verb: &str, batch: &[String]) -> BTreeSet<String> {
        let mut named = BTreeSet::new();
        for line in &self.lines {
            if let Some(name) = line.strip_prefix(verb).and_then(|l| l.strip_prefix(' ')) {
                assert!(
                    batch.iter().any(|b| b == name),
                    "{line:?} is not of this batch\n{self}"
                );
                assert!(named.insert(name.to_owned()), "{line:?} twice\n{self}");
            }
        }
        named
    }

    /// Checks a push whose server was killed: it failed, saying so, or it finished, and every
    /// line was a known kind. Returns the names it reported stored.
    fn crashed_push(&self, batch: &[String]) -> BTreeSet<String> {
        self.only_known_lines();
        let stored = self.named("stored", batch);
        let already_had = self.named("already had", batch);
        assert!(
            already_had.is_empty(),
            "nothing of a new batch was there\n{self}"
        );
        match self.status.code() {
            Some(0) => {
                let summary = format!("{} stored, 0 already had, 0 rejected, ", batch.len());
                let finished = self.summary().is_some_and(|s| s.starts_with(&summary));
                assert!(finished, "a push that succeeded stored it all\n{self}");
            }
            Some(1) => {
                assert!(!self.finished(), "a failed push has no summary\n{self}");
                assert!(!self.stderr.is_empty(), "a failed push says why\n{self}");
            }
            _ => panic!("the push neither succeeded nor failed\n{self}"),
        }
        stored
    }

    /// Checks a push run again after a crash: each file of `batch` was either held already,
    /// exactly those the store listed (`held`), or stored now.
    fn resumed_push(&self, batch: &[String], held: &BTreeSet<String>) {
        assert!(self.status.success(), "the push again succeeds\n{self}");
        self.only_known_lines();
        let stored = self.named("stored", batch);
        let already_had = self.named("already had", batch);
        assert_eq!(&already_had, held, "what the store held\n{self}");
        let all: BTreeSet<String> = batch.iter().cloned().collect();
        let reported: BTreeSet<String> = stored.union(&already_had).cloned().collect();
        assert_eq!(reported, all, "every file is reported\n{self}");
        let summary = format!(
            "{} stored, {} already had, 0 rejected, ",
            stored.len(),
            already_had.len()
        );
        let finished = self.summary().is_some_and(|s| s.starts_with(&summary));
        assert!(finished, "the summary counts them\n{self}");
    }

    /// No `rejected` line, nor any line `send` does not print.
    fn only_known_lines(&self) {
        let summary = self.summary();
        for line in &self.lines {
            let known = line.starts_with("stored ")
                || line.starts_with("already had ")
                || Some(line.as_str()) == summary;
            assert!(known, "unexpected line {line:?}\n{self}");
        }
    }
}

impl std::fmt::Display for Pushed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "send ended with {}; stdout:", self.status)?;
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        write!(f, "stderr:\n{}", self.stderr)
    }
}

/// The store's `tmp/` (the fs backend's; sled has none) holds no unfinished write.
fn assert_no_temp_files(db: &Path) {
    let left: Vec<_> = std::fs::read_dir(db.join("tmp"))
        .into_iter()
        .flatten()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "temp files left after a restart: {left:?}");
}

/// `export --from SERVER OUT NAMES...` writes each of them with the bytes it was sent with.
fn assert_exports_intact(server: &Server, names: &BTreeSet<String>, out: &Path) {
    if names.is_empty() {
        // Without names, export takes every part.
        return;
    }
    let at = server.at();
    let mut args = vec!["export", "--from", &at, p(out)];
    args.extend(names.iter().map(String::as_str));
    let exported = run(args).ok().stdout();
    let tally = format!("{} exported, 0 failed\n", names.len());
    assert!(exported.ends_with(&tally), "{exported}");
    let files: Vec<(&str, Vec<u8>)> = names.iter().map(|n| (n.as_str(), content(n))).collect();
    assert_exported_exactly(out, &files);
    std::fs::remove_dir_all(out).unwrap();
}
