//! The check after each cut, with the real binary: the store opens (`list --all --json`),
//! every name is in a state the ledger allows, everything listed verifies (`verify --json`,
//! and an `export` of chunks no file lists), and the chunks of files whose removal was
//! acknowledged stay gone.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde_json::Value;
use storage::BackendKind;

use super::ledger::{Ledger, Listed};
use crate::support::{Run, p, run};

/// One broken promise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// `list` cannot open the store.
    Unopenable(String),
    /// A name is in a state no acknowledged operation allows: an acknowledged part lost or
    /// back at an old version, a removal undone.
    Wrong {
        name: String,
        found: String,
        expected: String,
    },
    /// A listed name the cycles never sent, or bytes no version of its name had.
    Unknown { name: String, listed: String },
    /// `verify` finds a listed part or file damaged or incomplete.
    Corrupt { name: String, error: String },
    /// A listed chunk no file lists does not read back whole.
    BadChunk(String),
    /// A chunk of a file whose removal was acknowledged is listed again.
    ChunkBack(String),
    /// `verify` itself fails.
    VerifyFailed(String),
    /// The program failed, or refused something, with no cut to blame.
    Failed(String),
}

impl Finding {
    /// The kind of failure, for the tally.
    pub fn mode(&self) -> &'static str {
        match self {
            Self::Unopenable(_) => "store does not open",
            Self::Wrong { found, .. } if found == "absent" => "acknowledged part or file lost",
            Self::Wrong { expected, .. } if expected == "absent" => "acknowledged removal undone",
            Self::Wrong { .. } => "acknowledged replacement undone",
            Self::Unknown { .. } => "unknown name or bytes listed",
            Self::Corrupt { .. } => "listed but does not verify",
            Self::BadChunk(_) => "stray chunk does not read back",
            Self::ChunkBack(_) => "released chunk back",
            Self::VerifyFailed(_) => "verify fails",
            Self::Failed(_) => "program failed with no cut to blame",
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unopenable(why) => write!(f, "the store does not open: {why}"),
            Self::Wrong {
                name,
                found,
                expected,
            } => write!(f, "{name}: {found}, expected {expected}"),
            Self::Unknown { name, listed } => write!(f, "{name}: unexpected listing {listed}"),
            Self::Corrupt { name, error } => write!(f, "{name}: verify says {error}"),
            Self::BadChunk(line) => write!(f, "stray chunk: {line}"),
            Self::ChunkBack(name) => write!(f, "{name}: released with its file, listed again"),
            Self::VerifyFailed(why) => write!(f, "verify fails: {why}"),
            Self::Failed(why) => write!(f, "failed before any cut: {why}"),
        }
    }
}

/// Checks the store at `db` against `ledger`, then settles the ledger on what the store
/// holds (what a cut left is what the next cut starts from). `out` is a scratch directory
/// off the mount.
pub fn check(db: &Path, backend: BackendKind, ledger: &mut Ledger, out: &Path) -> Vec<Finding> {
    let store = ["--db", p(db), "--backend", backend.name()];
    // A store whose creation the cut undid is no store, and holds nothing.
    let created = db.join("p2p-store.meta").exists();
    let listing = if created {
        let listed = run(store.iter().chain(&["list", "--all", "--json"]));
        if listed.code() != 0 {
            return vec![Finding::Unopenable(first_line(&listed))];
        }
        listed.json()
    } else {
        Value::Array(Vec::new())
    };

    let mut findings = Vec::new();
    let mut states = BTreeMap::new();
    let mut chunks = BTreeSet::new();
    for entry in listing.as_array().expect("a listing is an array") {
        let name = entry["name"].as_str().expect("a name").to_owned();
        if name.starts_with(storage::CHUNK_PREFIX) {
            chunks.insert(name);
            continue;
        }
        let listed = Listed {
            hash: entry["hash"].as_str().expect("a hash").to_owned(),
            size: entry["size"].as_u64().expect("a size"),
            parts: entry["parts"].as_u64(),
        };
        match ledger.version_of(&name, &listed) {
            Some(version) => {
                states.insert(name, version);
            }
            None => findings.push(Finding::Unknown {
                name,
                listed: entry.to_string(),
            }),
        }
    }
    let names: Vec<String> = ledger.names().map(str::to_owned).collect();
    for name in &names {
        let state = states.get(name).copied();
        if !ledger.allows(name, state) {
            findings.push(Finding::Wrong {
                name: name.clone(),
                found: state.map_or("absent".into(), |version| format!("version {version}")),
                expected: ledger.expected(name),
            });
        }
    }

    let listed_by_files: BTreeSet<&String> = states
        .iter()
        .flat_map(|(name, &version)| ledger.chunks(name, version))
        .collect();
    for chunk in ledger.released() {
        if chunks.contains(chunk) && !listed_by_files.contains(chunk) {
            findings.push(Finding::ChunkBack(chunk.clone()));
        }
    }
    let stray: Vec<&String> = chunks
        .iter()
        .filter(|chunk| !listed_by_files.contains(chunk))
        .collect();
    if created {
        findings.extend(verify(&store));
        findings.extend(read_back(&store, &stray, out));
    }

    for name in &names {
        ledger.settle(name, states.get(name).copied());
    }
    ledger.checked_releases();
    findings
}

fn verify(store: &[&str]) -> Vec<Finding> {
    let verified = run(store.iter().chain(&["verify", "--json"]));
    if ![0, 1].contains(&verified.code()) {
        return vec![Finding::VerifyFailed(first_line(&verified))];
    }
    let report = verified.json();
    report["corrupt"]
        .as_array()
        .expect("a list of corrupt parts")
        .iter()
        .map(|corrupt| Finding::Corrupt {
            name: corrupt["name"].as_str().unwrap_or_default().to_owned(),
            error: corrupt["error"].as_str().unwrap_or_default().to_owned(),
        })
        .collect()
}

/// Exports `chunks`, which `verify` does not read (no listed file uses them), to see that
/// they read back whole.
fn read_back(store: &[&str], chunks: &[&String], out: &Path) -> Vec<Finding> {
    if chunks.is_empty() {
        return Vec::new();
    }
    let mut args: Vec<&str> = store.to_vec();
    args.extend(["export", p(out)]);
    args.extend(chunks.iter().map(|chunk| chunk.as_str()));
    let exported = run(args);
    let _ = std::fs::remove_dir_all(out);
    if exported.code() == 0 {
        return Vec::new();
    }
    let failed: Vec<Finding> = exported
        .stdout()
        .lines()
        .filter(|line| line.starts_with("failed "))
        .map(|line| Finding::BadChunk(line.to_owned()))
        .collect();
    match failed.is_empty() {
        true => vec![Finding::BadChunk(first_line(&exported))],
        false => failed,
    }
}

/// Characters of each line a failed run's report keeps: a panic may print a whole sled node.
const LINE_KEPT: usize = 300;

/// What a failed run says went wrong: its stderr without the log lines (which start with a
/// timestamp once their colours are stripped), on one line.
fn first_line(run: &Run) -> String {
    let stderr = strip_colours(&run.stderr());
    let said: Vec<String> = stderr
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with(|c: char| c.is_ascii_digit()))
        .take(4)
        .map(|line| match line.char_indices().nth(LINE_KEPT) {
            Some((cut, _)) => format!("{}...", &line[..cut]),
            None => line.to_owned(),
        })
        .collect();
    said.join(" / ")
}

/// Drops the terminal colour sequences (`ESC [ ... m`) the logs are written with.
fn strip_colours(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            plain.push(c);
        }
    }
    plain
}
