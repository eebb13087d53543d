//! What the file tests share: a store in a temp dir and the CLI run on it, transfers left
//! running and killed mid-way, a hand-pushed part, and the expected manifests, listings and
//! exports of files stored as chunks.

// Each test crate that includes this module uses its own share of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use net::message::{Request, Response};
use serde_json::{Value, json};
use storage::{BackendKind, Manifest, PartHash, PartKind};

use super::{PATIENCE, RawPeer, Run, body, expected_listing_in_parts, names_in, p, run, signal};

/// The part size of most tests, as a number and as the CLI takes it.
pub const PART: usize = 64 * 1024;
pub const PART_SIZE: &str = "65536";

/// A store in a temp dir with its backend, and the CLI run on it.
pub struct Store {
    pub db: PathBuf,
    pub backend: BackendKind,
}

impl Store {
    pub fn new(dir: &Path, name: &str, backend: BackendKind) -> Self {
        Self {
            db: dir.join(name),
            backend,
        }
    }

    pub fn global(&self) -> [&str; 4] {
        ["--db", p(&self.db), "--backend", self.backend.name()]
    }

    /// `p2p-store --db DB --backend BACKEND ARGS`, to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        run(self.global().iter().chain(args))
    }

    /// The same, left running.
    pub fn spawn(&self, args: &[&str]) -> Child {
        spawn(&[&self.global()[..], args].concat())
    }
}

/// `p2p-store ARGS`, left running, its output dropped.
pub fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_p2p-store"))
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Polls `probe` until it finds what it looks for, at most [`PATIENCE`], while `child` runs.
pub fn wait_for<T>(what: &str, child: &mut Child, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the transfer ended ({status}) before {what}; \
                 if it succeeded, give it a larger file"
            );
        }
        assert!(Instant::now() < deadline, "waited {PATIENCE:?} for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The signal number POSIX fixes for SIGKILL.
const SIGKILL: i32 = 9;

/// Kills `child` with SIGKILL, which must find it still running: a transfer that finished on
/// its own proves nothing about resuming one.
pub fn kill_mid_way(mut child: Child, what: &str) {
    signal(child.id(), "-KILL");
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(SIGKILL),
        "{what} was not interrupted: it ended with {status} before the kill; give it a larger file"
    );
}

/// `args` followed by `paths`, as the CLI takes them.
pub fn with_paths<'a>(args: &[&'a str], paths: &'a [PathBuf]) -> Vec<&'a str> {
    args.iter()
        .copied()
        .chain(paths.iter().map(|path| p(path)))
        .collect()
}

/// Offers `bytes` as `name` of `kind` and sends them if wanted; returns the final answer.
pub fn push(peer: &mut RawPeer, id: u64, name: &str, bytes: &[u8], kind: PartKind) -> Response {
    let request = Request::Offer {
        id,
        name: name.into(),
        hash: *PartHash::of(bytes).as_bytes(),
        size: bytes.len() as u64,
        kind,
    };
    peer.send(&request, &[]);
    match peer.expect() {
        Response::Want { id: wanted } if wanted == id => {
            peer.send(&body(id, bytes), bytes);
            peer.expect()
        }
        other => other,
    }
}

/// The name a chunk of these bytes is stored under.
pub fn chunk_name(bytes: &[u8]) -> String {
    format!("b3-{}", PartHash::of(bytes))
}

/// The manifest a file of `bytes` gets with `part` byte chunks.
pub fn manifest_of(bytes: &[u8], part: usize) -> Manifest {
    let chunks = bytes.chunks(part).map(PartHash::of).collect();
    Manifest::new(bytes.len() as u64, part as u64, PartHash::of(bytes), chunks).unwrap()
}

/// Bytes of the manifest of a file of `size` bytes: 94 of header, 32 per chunk.
pub fn manifest_len(size: usize, part: usize) -> usize {
    94 + 32 * size.div_ceil(part)
}

/// Bytes a first send or fetch of `files` moves: every file, and the manifests of the chunked.
pub fn bytes_moved(files: &[(&str, Vec<u8>)], part: usize) -> usize {
    files
        .iter()
        .map(|(_, bytes)| match bytes.len() {
            len if len > part => len + manifest_len(len, part),
            len => len,
        })
        .sum()
}

/// The chunk names of the chunked `files`.
pub fn chunk_names_of(files: &[(&str, Vec<u8>)], part: usize) -> BTreeSet<String> {
    files
        .iter()
        .filter(|(_, bytes)| bytes.len() > part)
        .flat_map(|(_, bytes)| bytes.chunks(part).map(chunk_name))
        .collect()
}

/// The chunk names in a `list --all --json` output.
pub fn chunk_names_in(listing: &Value) -> BTreeSet<String> {
    names_in(listing)
        .into_iter()
        .filter(|name| name.starts_with("b3-"))
        .collect()
}

/// The `list --all --json` of `files` stored with `part` byte chunks: the files, and each
/// chunk once as a plain part.
pub fn listing_with_chunks(files: &[(&str, Vec<u8>)], part: usize) -> Value {
    let listing = expected_listing_in_parts(files, part as u64);
    let mut entries: BTreeMap<String, Value> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| (entry["name"].as_str().unwrap().to_owned(), entry.clone()))
        .collect();
    for (_, bytes) in files.iter().filter(|(_, bytes)| bytes.len() > part) {
        for chunk in bytes.chunks(part) {
            let name = chunk_name(chunk);
            let entry =
                json!({"name": name, "size": chunk.len(), "hash": PartHash::of(chunk).to_hex()});
            entries.insert(name, entry);
        }
    }
    Value::Array(entries.into_values().collect())
}

/// `list` as text: name, size and hash, tab-separated, and a file's number of parts.
pub fn listing_as_text(listing: &Value) -> String {
    let mut text = String::new();
    for entry in listing.as_array().unwrap() {
        let name = entry["name"].as_str().unwrap();
        let hash = entry["hash"].as_str().unwrap();
        text.push_str(&format!("{name}\t{}\t{hash}", entry["size"]));
        if let Some(parts) = entry.get("parts") {
            text.push_str(&format!("\t{parts} parts"));
        }
        text.push('\n');
    }
    text
}

/// Checks a `fetch --json` summary.
pub fn assert_fetched(summary: &Value, stored: usize, already_had: usize, bytes: usize) {
    let expected = [
        ("stored", stored),
        ("already_had", already_had),
        ("rejected", 0),
        ("bytes_received", bytes),
    ];
    for (key, value) in expected {
        assert_eq!(summary[key], value, "{key}: {summary}");
    }
}

/// OUT holds `files` as `<name>_recebida`, with their bytes, and nothing else: no partial file,
/// no temp file, no scratch store.
pub fn assert_exported_exactly(out: &Path, files: &[(&str, Vec<u8>)]) {
    let found: BTreeSet<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    let expected: BTreeSet<String> = files
        .iter()
        .map(|(name, _)| format!("{name}_recebida"))
        .collect();
    assert_eq!(found, expected, "in {}", out.display());
    for (name, bytes) in files {
        let written = std::fs::read(out.join(format!("{name}_recebida"))).unwrap();
        assert!(written == *bytes, "{name} was exported with other bytes");
    }
}

/// Writes `size` pseudo-random bytes to `path` a MiB at a time; returns their hash.
pub fn write_random_file(path: &Path, seed: u64, size: u64) -> PartHash {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut file = std::io::BufWriter::new(File::create(path).unwrap());
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut hasher = blake3::Hasher::new();
    let mut block = vec![0; 1024 * 1024];
    let mut left = size;
    while left > 0 {
        let len = block.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        rng.fill(&mut block[..len]);
        hasher.update(&block[..len]);
        file.write_all(&block[..len]).unwrap();
        left -= len as u64;
    }
    file.flush().unwrap();
    PartHash::from_bytes(*hasher.finalize().as_bytes())
}

/// `path` is `size` bytes hashing to `hash`, read as a stream.
pub fn assert_same_file(path: &Path, size: u64, hash: PartHash) {
    let len = std::fs::metadata(path).unwrap().len();
    assert_eq!(len, size, "{}", path.display());
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(File::open(path).unwrap()).unwrap();
    let read = PartHash::from_bytes(*hasher.finalize().as_bytes());
    assert_eq!(read, hash, "{} holds other bytes", path.display());
}

/// Flips a byte in the middle of the stored copy of `bytes` (a body longer than 64 bytes and
/// unique in the store), found by content in the fs backend's body files or the sled
/// backend's pack files.
pub fn flip_a_byte_of_the_body(db: &Path, bytes: &[u8]) {
    let probe = &bytes[..64];
    for dir in ["bodies", "packs"] {
        for entry in std::fs::read_dir(db.join(dir)).into_iter().flatten() {
            let path = entry.unwrap().path();
            let mut stored = std::fs::read(&path).unwrap();
            if let Some(at) = stored.windows(probe.len()).position(|w| w == probe) {
                stored[at + bytes.len() / 2] ^= 0x04;
                std::fs::write(&path, stored).unwrap();
                return;
            }
        }
    }
    panic!("no body file holds the bytes");
}

/// A manifest as a hostile peer writes it (§10.2 of PROTOCOL.md): `count` chunks of
/// `chunk_size` bytes, the hashes given by `chunks` (shorter than `count` only to forge a
/// header whose count the body does not back).
pub fn forged_manifest(chunk_size: u64, count: u64, chunks: &[PartHash]) -> Vec<u8> {
    let file_size = count * chunk_size;
    let file_hash = PartHash::of(b"never assembled");
    let mut root = blake3::Hasher::new();
    root.update(&file_size.to_le_bytes());
    root.update(&chunk_size.to_le_bytes());
    root.update(file_hash.as_bytes());
    for hash in chunks {
        root.update(hash.as_bytes());
    }
    let mut bytes = Vec::with_capacity(94 + 32 * chunks.len());
    bytes.extend_from_slice(b"P2PM");
    bytes.extend_from_slice(&1u16.to_le_bytes());
    for number in [file_size, chunk_size, count] {
        bytes.extend_from_slice(&number.to_le_bytes());
    }
    bytes.extend_from_slice(file_hash.as_bytes());
    bytes.extend_from_slice(root.finalize().as_bytes());
    for hash in chunks {
        bytes.extend_from_slice(hash.as_bytes());
    }
    bytes
}
