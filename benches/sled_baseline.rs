//! sled's own rate for small values, the ceiling p2p-store's small-part path is compared
//! against: N inserts of 1 KiB into a fresh sled database, then one flush, in a temp dir.
//! Prints one line: `sled: N inserts of 1 KiB + flush in S s = R/s`.
//! Run: `cargo bench --bench sled_baseline -- [N]` (default 100000); benches/compare.sh runs it.

use std::time::Instant;

fn main() {
    let count: u64 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = sled::open(dir.path().join("db")).expect("a sled database");
    let mut value = vec![0u8; 1024];
    fastrand::Rng::with_seed(3).fill(&mut value);
    let started = Instant::now();
    for i in 0..count {
        value[..8].copy_from_slice(&i.to_le_bytes());
        db.insert(i.to_be_bytes(), value.as_slice())
            .expect("an insert");
    }
    db.flush().expect("a flush");
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "sled: {count} inserts of 1 KiB + flush in {seconds:.3} s = {:.0}/s",
        count as f64 / seconds
    );
}
