//! What listing a large store costs: fills a sled store with many tiny parts, fast, then times
//! one page of a listing (`list_page`) at its start, middle and end, against a whole `list()`,
//! which is what every page cost when pages were cut from a full listing.
//!
//! ```text
//! cargo run --release -p storage --example list_cost -- ./big.db 1000000
//! ```
//!
//! Parts are named `part-<n>` with `n` zero-padded, each holding its own name as bytes, and
//! are put in batches of 10,000 (one durable sync each). Running it again on the same store
//! adds nothing and measures again.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use storage::{BackendKind, OnConflict, PartName, PartStore, VerifiedPart, open_store};

/// Parts per `put_batch`: large enough that the sync per batch is amortised.
const BATCH: u64 = 10_000;

/// Entries per page, as a server reads them for the largest `List` (2048, plus one).
const PAGE: usize = 2049;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (Some(db), Some(count)) = (args.next(), args.next()) else {
        return Err("usage: list_cost DB COUNT".into());
    };
    let count: u64 = count.parse()?;
    let store = open_store(&PathBuf::from(db), Some(BackendKind::Sled))?;
    let started = Instant::now();
    fill(store.as_ref(), count)?;
    println!("{count} parts put in {:.1?}", started.elapsed());

    for (at, after) in [
        ("start", None),
        ("middle", Some(name(count / 2))),
        ("end", Some(name(count.saturating_sub(PAGE as u64)))),
    ] {
        let (took, len) = median(|| Ok(store.list_page(after.as_deref(), PAGE)?.len()))?;
        println!("a page of {len} at the {at}: {took:.2?}");
    }
    let (took, len) = median(|| Ok(store.list()?.len()))?;
    println!("a whole list() of {len}: {took:.2?}");
    Ok(())
}

fn name(n: u64) -> String {
    format!("part-{n:09}")
}

fn fill(store: &dyn PartStore, count: u64) -> Result<(), Error> {
    let mut first = 0;
    while first < count {
        let parts = (first..count.min(first + BATCH))
            .map(|n| {
                let name = PartName::new(name(n))?;
                let bytes = name.as_str().as_bytes().to_vec();
                Ok(VerifiedPart::hashing(name, bytes)?)
            })
            .collect::<Result<Vec<_>, Error>>()?;
        for outcome in store.put_batch(&parts, OnConflict::Refuse)? {
            outcome?;
        }
        first += BATCH;
    }
    Ok(())
}

/// The median time of five runs of `read`, and what it returned.
fn median(mut read: impl FnMut() -> Result<usize, Error>) -> Result<(Duration, usize), Error> {
    let mut times = Vec::new();
    let mut len = 0;
    for _ in 0..5 {
        let started = Instant::now();
        len = read()?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok((times[2], len))
}
