//! Power cuts under a working store, cycle after cycle, on a FUSE filesystem that keeps only
//! what was fsynced (`tests/power_cut_fs`). After each cut, checked with the real binary: the
//! store opens, every part and file acknowledged stored is listed and verifies, every
//! acknowledged removal and replacement holds, and whatever else is listed verifies.
//!
//! Each cycle runs one program on the store: `serve` taking a push of parts of every size
//! class (1 KiB, 15 KB, 1 MiB) and a file of several chunks; `remove` of some names; `remove`
//! of most large bodies, which makes sled compact its packs; or `import --replace`. The cut
//! falls before a change picked by a seeded RNG among as many as the last run of that program
//! made (so it lands in the same share of the run however fast the machine is; for the
//! compacting removal, among its changes to sled's packs, so it lands in the compaction),
//! killing the program as the power would; a program that finishes first is cut after its
//! end. A failing
//! cycle is reported with what was volatile in the store at the cut, and the cycles go on (on
//! a new store if this one no longer opens), so one run tallies every way the store fails.
//!
//! Needs FUSE: without it the test says so loudly and passes, unless `P2P_STORE_REQUIRE_FUSE=1`
//! (CI sets it). `P2P_STORE_POWER_CUT_SEED=N` replays a run.

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use power_cut_fs::{CutReport, Loss, PowerCutFs};
use storage::BackendKind;
use tempfile::TempDir;

use support::power_cut::check::{Finding, check};
use support::power_cut::ledger::{self, CHUNK, Class, Ledger};
use support::power_cut::workload::{self, Ran};

/// Cycles per backend.
const CYCLES: usize = 48;

/// A run that takes longer than this stops and fails; it only bounds a hang.
const DEADLINE: Duration = Duration::from_secs(20 * 60);

/// Replays a run with its seed.
const SEED: &str = "P2P_STORE_POWER_CUT_SEED";

/// How many parts of each class a push cycle sends: enough 15 KB parts that sled's leaves
/// of them pass the size past which it writes a log item as a separate blob file.
const PUSHED: [(Class, usize); 4] = [
    (Class::Kib, 8),
    (Class::Small, 40),
    (Class::Mib, 2),
    (Class::Chunked, 1),
];

/// Findings and volatile paths a failing cycle lists, at most; the rest are counted.
const FINDINGS_SHOWN: usize = 8;
const VOLATILE_SHOWN: usize = 40;

#[test]
fn acknowledged_writes_survive_power_cuts_on_sled() {
    cycles(BackendKind::Sled, 1);
}

#[test]
fn acknowledged_writes_survive_power_cuts_on_fs() {
    cycles(BackendKind::Fs, 2);
}

/// What a cycle runs on the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Program {
    Push,
    Remove,
    /// A removal of most packed bodies: sled compacts a pack once half of it is dead.
    Compact,
    Replace,
}

impl Program {
    /// Cycle `cycle`'s program: half of them pushes, and one in six each of the others.
    fn of(cycle: usize) -> Self {
        match cycle % 6 {
            2 => Self::Replace,
            4 => Self::Remove,
            5 => Self::Compact,
            _ => Self::Push,
        }
    }
}

/// Where the cuts of one program fell.
#[derive(Debug, Default)]
struct Cuts {
    /// The program was killed mid-way.
    mid_way: usize,
    /// It had finished.
    after_end: usize,
    /// A pack was being written or deleted by a removal: a compaction was under way.
    in_compaction: usize,
}

/// A cycle that broke a promise.
struct Failed {
    cycle: usize,
    program: Program,
    findings: Vec<Finding>,
    /// What was volatile in the store at the cut.
    volatile: String,
}

/// The mount, the store on it, and what the cycles learnt. The mount is dropped (unmounted)
/// before the directories under it.
struct Harness {
    fs: PowerCutFs,
    backend: BackendKind,
    rng: fastrand::Rng,
    ledger: Ledger,
    /// The store's directory, relative to the mount; a new one after a store stops opening.
    store: PathBuf,
    generation: usize,
    /// Changes each program made when it last ran to its end, or more if a later run was
    /// cut further in; for a compaction on sled, changes to its packs.
    estimates: BTreeMap<Program, u64>,
    cuts: BTreeMap<Program, Cuts>,
    failed: Vec<Failed>,
    scratch: TempDir,
    _mount_dir: TempDir,
}

fn cycles(backend: BackendKind, default_seed: u64) {
    let seed = std::env::var(SEED)
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(default_seed);
    let mount_dir = tempfile::tempdir().unwrap();
    let Some(fs) = PowerCutFs::mount_or_skip(mount_dir.path()) else {
        return;
    };
    eprintln!("{backend}: {CYCLES} power cuts, {SEED}={seed}");
    let mut run = Harness {
        fs,
        backend,
        rng: fastrand::Rng::with_seed(seed),
        ledger: Ledger::default(),
        store: PathBuf::from("db-0"),
        generation: 0,
        estimates: BTreeMap::new(),
        cuts: BTreeMap::new(),
        failed: Vec::new(),
        scratch: tempfile::tempdir().unwrap(),
        _mount_dir: mount_dir,
    };
    let deadline = Instant::now() + DEADLINE;
    let mut done = 0;
    while done < CYCLES && Instant::now() < deadline {
        run.cycle(done);
        done += 1;
    }
    run.finish(seed, done);
}

impl Harness {
    fn db(&self) -> PathBuf {
        self.fs.path().join(&self.store)
    }

    fn input(&self, cycle: usize) -> PathBuf {
        self.scratch.path().join(format!("in-{cycle:02}"))
    }

    fn cycle(&mut self, cycle: usize) {
        let program = self.program(cycle);
        // A program's first run is cut after its end, and counts its changes; later runs
        // are cut after its end one time in three, and count them again.
        let nth = match self.estimates.get(&program) {
            Some(&estimate) => self.rng.u64(0..=estimate + estimate / 2),
            None => u64::MAX,
        };
        let start = self.fs.changes();
        // A removal changes nothing in sled's packs but by compacting them: counting only
        // the changes there aims the cut at the compaction, a small part of the removal.
        let packs = self.store.join("packs");
        let in_packs = program == Program::Compact && self.fs.cut_power_in(&packs, nth).is_ok();
        if !in_packs {
            self.fs.cut_power_at(start.saturating_add(nth));
        }
        let ran = match program {
            Program::Push => self.push(cycle),
            Program::Remove => self.remove(false),
            Program::Compact => self.remove(true),
            Program::Replace => self.replace(cycle),
        };
        let report = self.fs.cut_power().expect("the filesystem remounts");
        let made = report.changes_in_dir.unwrap_or(report.changes - start);
        let cuts = self.cuts.entry(program).or_default();
        match report.killed {
            Some(_) => {
                cuts.mid_way += 1;
                let estimate = self.estimates.entry(program).or_default();
                *estimate = made.max(*estimate);
            }
            None => {
                cuts.after_end += 1;
                self.estimates.insert(program, made.max(1));
            }
        }
        let compacting = (in_packs && report.killed.is_some())
            || (program != Program::Push && report.under(&packs).next().is_some());
        cuts.in_compaction += usize::from(compacting);

        let mut findings = Vec::new();
        if report.killed.is_none() {
            findings.extend(ran.failure.iter().map(|why| Finding::Failed(why.clone())));
            findings.extend(ran.rejected.iter().map(|why| Finding::Failed(why.clone())));
        }
        let out = self.scratch.path().join("out");
        findings.extend(check(&self.db(), self.backend, &mut self.ledger, &out));
        let counted = if in_packs { " to packs/" } else { "" };
        let when = match report.killed {
            Some(pid) => format!("cut {made} changes{counted} in, killing {pid}"),
            None => format!("cut after the end, {made} changes{counted} in"),
        };
        eprintln!(
            "{} {cycle:02} {program:?}: {when}; {} acknowledged; {}",
            self.backend,
            ran.acked.len(),
            match findings.len() {
                0 => "ok".to_owned(),
                n => format!("{n} FAILED"),
            }
        );
        if !findings.is_empty() {
            self.fail(cycle, program, findings, &report, &ran);
        }
    }

    /// The cycle's program, or a push when the store holds nothing for the others to work on.
    fn program(&self, cycle: usize) -> Program {
        let held = self.ledger.held();
        let program = Program::of(cycle);
        let packed = held.iter().any(|(name, _)| ledger::class(name).is_packed());
        match program {
            _ if held.is_empty() => Program::Push,
            Program::Compact if !packed => Program::Push,
            program => program,
        }
    }

    /// Serves the store and pushes a new batch of every class.
    fn push(&mut self, cycle: usize) -> Ran {
        let input = self.input(cycle);
        std::fs::create_dir_all(&input).unwrap();
        let mut files = Vec::new();
        for (class, count) in PUSHED {
            for index in 0..count {
                let name = ledger::name(cycle, class, index);
                let path = input.join(&name);
                std::fs::write(&path, self.ledger.sending(&name)).unwrap();
                files.push((name, path));
            }
        }
        self.rng.shuffle(&mut files);
        let ran = workload::push(&self.db(), self.backend, &files);
        for name in &ran.acked {
            self.ledger.stored(name);
        }
        std::fs::remove_dir_all(&input).unwrap();
        ran
    }

    /// Removes a third of what the store holds or, for `compact`, three in five of its packed
    /// bodies: sled compacts a pack as soon as half of it is dead, in the middle of the
    /// removal, and moves what is left of it, so the cut has a compaction to fall into.
    fn remove(&mut self, compact: bool) -> Ran {
        let held: Vec<String> = self
            .ledger
            .held()
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| !compact || ledger::class(name).is_packed())
            .collect();
        let count = match compact {
            true => (held.len() * 3).div_ceil(5),
            false => held.len().div_ceil(3),
        };
        let names = self.rng.choose_multiple(held, count);
        for name in &names {
            self.ledger.removing(name);
        }
        let mut args = vec!["remove".to_owned()];
        args.extend(names);
        let ran = workload::cli(&self.db(), self.backend, &args, &["removed"]);
        for name in &ran.acked {
            self.ledger.removed(name);
        }
        ran
    }

    /// Imports new bytes under a third of the names the store holds, replacing them.
    fn replace(&mut self, cycle: usize) -> Ran {
        let held: Vec<String> = self.ledger.held().into_iter().map(|(n, _)| n).collect();
        let count = held.len().div_ceil(3);
        let names = self.rng.choose_multiple(held, count);
        let input = self.input(cycle);
        std::fs::create_dir_all(&input).unwrap();
        let mut args = ["import", "--replace", "--part-size"]
            .map(String::from)
            .to_vec();
        args.push(CHUNK.to_string());
        for name in &names {
            let path = input.join(name);
            std::fs::write(&path, self.ledger.sending(name)).unwrap();
            args.push(path.to_str().expect("a UTF-8 path").to_owned());
        }
        let acks = ["replaced", "stored", "already had"];
        let ran = workload::cli(&self.db(), self.backend, &args, &acks);
        for name in &ran.acked {
            self.ledger.stored(name);
        }
        std::fs::remove_dir_all(&input).unwrap();
        ran
    }

    /// Records a failing cycle; a store that no longer opens is set aside for a new one.
    fn fail(
        &mut self,
        cycle: usize,
        program: Program,
        findings: Vec<Finding>,
        report: &CutReport,
        ran: &Ran,
    ) {
        for finding in findings.iter().take(5) {
            eprintln!("    {finding}");
        }
        let mut volatile = volatile_in(report, &self.store);
        if findings
            .iter()
            .any(|finding| matches!(finding, Finding::Failed(_)))
        {
            let log: Vec<&str> = ran.log.lines().rev().take(10).collect();
            let _ = writeln!(volatile, "    its log ends:");
            for line in log.into_iter().rev() {
                let _ = writeln!(volatile, "      {line}");
            }
        }
        if findings
            .iter()
            .any(|finding| matches!(finding, Finding::Unopenable(_)))
        {
            let _ = std::fs::remove_dir_all(self.db());
            self.generation += 1;
            self.store = PathBuf::from(format!("db-{}", self.generation));
            self.ledger = Ledger::default();
        }
        self.failed.push(Failed {
            cycle,
            program,
            findings,
            volatile,
        });
    }

    /// Passes, or fails with every failing cycle and a tally of the ways the store failed.
    fn finish(self, seed: u64, done: usize) {
        let backend = self.backend;
        eprintln!("{backend}: where the cuts fell: {:?}", self.cuts);
        let mut message = String::new();
        if done < CYCLES {
            let _ = writeln!(message, "ran out of time after {done} of {CYCLES} cycles");
        }
        if !self.failed.is_empty() {
            let _ = writeln!(
                message,
                "{backend}: {} of {done} cycles broke a promise ({SEED}={seed}).",
                self.failed.len()
            );
            let mut modes: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
            for failed in &self.failed {
                let mut seen = Vec::new();
                for finding in &failed.findings {
                    let mode = modes.entry(finding.mode()).or_default();
                    mode.0 += 1;
                    if !seen.contains(&finding.mode()) {
                        seen.push(finding.mode());
                        mode.1 += 1;
                    }
                }
            }
            for (mode, (count, cycles)) in &modes {
                let _ = writeln!(message, "  {mode}: {count} times, in {cycles} cycles");
            }
            for failed in &self.failed {
                let _ = writeln!(message, "cycle {} ({:?}):", failed.cycle, failed.program);
                for finding in failed.findings.iter().take(FINDINGS_SHOWN) {
                    let _ = writeln!(message, "    {finding}");
                }
                if failed.findings.len() > FINDINGS_SHOWN {
                    let more = failed.findings.len() - FINDINGS_SHOWN;
                    let _ = writeln!(message, "    ... {more} more");
                }
                message.push_str(&failed.volatile);
            }
        }
        let uncovered: Vec<&Program> = self
            .cuts
            .iter()
            .filter(|(_, cuts)| cuts.mid_way == 0)
            .map(|(program, _)| program)
            .collect();
        if self.failed.is_empty() && !uncovered.is_empty() {
            let _ = writeln!(message, "no cut fell in the middle of {uncovered:?}");
        }
        assert!(message.is_empty(), "{message}");
    }
}

/// What was volatile under `store` at the cut: a count per directory and kind, then the
/// first paths.
fn volatile_in(report: &CutReport, store: &Path) -> String {
    let mut counts: BTreeMap<(String, &str), usize> = BTreeMap::new();
    let volatile: Vec<_> = report.under(store).collect();
    for entry in &volatile {
        let within = entry.path.strip_prefix(store).unwrap_or(&entry.path);
        let mut components = within.components();
        let top = match (components.next(), components.next()) {
            (None, _) => "the store's own entry".to_owned(),
            (Some(_), None) => "files at the top".to_owned(),
            (Some(first), Some(_)) => format!("{}/", first.as_os_str().to_string_lossy()),
        };
        let kind = match entry.loss {
            Loss::Entry { .. } => "entries not synced",
            Loss::Data(_) => "files with unsynced data",
            Loss::Removal => "removals not synced",
        };
        *counts.entry((top, kind)).or_default() += 1;
    }
    let mut text = format!("    volatile in {} at the cut:\n", store.display());
    for ((top, kind), count) in &counts {
        let _ = writeln!(text, "      {top}: {count} {kind}");
    }
    for entry in volatile.iter().take(VOLATILE_SHOWN) {
        let _ = writeln!(text, "      {entry}");
    }
    if volatile.len() > VOLATILE_SHOWN {
        let _ = writeln!(text, "      ... {} more", volatile.len() - VOLATILE_SHOWN);
    }
    text
}
