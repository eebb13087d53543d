//! What a put of parts the store already holds costs, against what checking each held body
//! by reading it back whole would add: the question behind how a put learns that a held body
//! is damaged (see `src/damage.rs`). Fills a store with COUNT parts of SIZE bytes, then times,
//! each as the median of 5 rounds over every part:
//!
//! - a repeated `put_batch` (batches of 1024): what a resumed transfer or a re-import costs;
//! - `known_damaged` of each entry: the cheap check a repeated put and a server's `Have` make;
//! - `get` of each part: reading and re-hashing every body, what a full check would add.
//!
//! ```text
//! cargo run -p storage --example reput_cost -- ./cost.db sled 1024 1048576
//! cargo run -p storage --example reput_cost -- ./cost-fs.db fs 20000 4096
//! ```
//!
//! Run it again on the same store to measure again without filling it. The bodies are in the
//! page cache after the fill, so the reads here are the cheapest they get: a body read from
//! the disk costs more. A debug build is close enough for the comparison: blake3 hashes with
//! its assembly either way, and the rest is system calls.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use storage::{BackendKind, OnConflict, PartName, VerifiedPart, open_store};

/// Parts per `put_batch`, as an import commits them.
const BATCH: usize = 1024;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, backend, count, size] = &args[..] else {
        return Err("usage: reput_cost DB sled|fs COUNT SIZE".into());
    };
    let (count, size): (usize, usize) = (count.parse()?, size.parse()?);
    let store = open_store(&PathBuf::from(db), Some(backend.parse::<BackendKind>()?))?;
    let parts = parts(count, size)?;
    let started = Instant::now();
    for batch in parts.chunks(BATCH) {
        store.put_batch(batch, OnConflict::Refuse)?;
    }
    println!(
        "{count} parts of {size} bytes put in {:.2?}",
        started.elapsed()
    );

    let reput = median(|| {
        for batch in parts.chunks(BATCH) {
            store.put_batch(batch, OnConflict::Refuse)?;
        }
        Ok(())
    })?;
    let infos = store.list()?;
    let check = median(|| {
        for info in &infos {
            assert!(!store.known_damaged(info)?);
        }
        Ok(())
    })?;
    let read = median(|| {
        for info in &infos {
            store.get(&info.name)?;
        }
        Ok(())
    })?;
    let per = |took: Duration| took / u32::try_from(count).unwrap_or(u32::MAX).max(1);
    println!(
        "put again (already had): {reput:.2?} ({:.2?} a part)",
        per(reput)
    );
    println!(
        "known_damaged of each:   {check:.2?} ({:.2?} a part)",
        per(check)
    );
    println!(
        "get of each (re-hash):   {read:.2?} ({:.2?} a part)",
        per(read)
    );
    Ok(())
}

/// `count` distinct parts of `size` bytes, the same on every run.
fn parts(count: usize, size: usize) -> Result<Vec<VerifiedPart>, Error> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..count)
        .map(|n| {
            let mut bytes = vec![0; size];
            rng.fill(&mut bytes);
            Ok(VerifiedPart::hashing(
                PartName::new(format!("part-{n:09}"))?,
                bytes,
            )?)
        })
        .collect()
}

/// The median of 5 timed runs of `work`.
fn median(mut work: impl FnMut() -> Result<(), Error>) -> Result<Duration, Error> {
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        work()?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok(times[2])
}
