//! Put and get throughput of every backend at 1 KiB, 64 KiB and 1 MiB.
//!
//! `put` is one durable put per part (a sync each), `put_batch` commits 64 parts with one sync,
//! the way the server groups them, and `get` reads back and re-verifies a stored part.
//! Run: `cargo bench --bench store` (or `-- put_batch/sled` for one group and backend).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use storage::{BackendKind, MemStore, OnConflict, PartName, PartStore, VerifiedPart, open_store};
use tempfile::TempDir;

const SIZES: [(usize, &str); 3] = [(1 << 10, "1KiB"), (64 << 10, "64KiB"), (1 << 20, "1MiB")];
const BATCH: usize = 64;

/// A store to measure, with the directory that must outlive it.
struct Subject {
    store: Box<dyn PartStore>,
    _dir: Option<TempDir>,
}

/// Every backend: the memory store and each on-disk kind.
fn backends() -> impl Iterator<Item = Option<BackendKind>> {
    std::iter::once(None).chain(BackendKind::ALL.map(Some))
}

fn label(backend: Option<BackendKind>) -> &'static str {
    backend.map_or("mem", BackendKind::name)
}

fn open(backend: Option<BackendKind>) -> Subject {
    match backend {
        None => Subject {
            store: Box::new(MemStore::new()),
            _dir: None,
        },
        Some(kind) => on_disk(kind),
    }
}

fn on_disk(kind: BackendKind) -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir.path().join("db"), Some(kind)).unwrap();
    Subject {
        store,
        _dir: Some(dir),
    }
}

/// Distinct parts (a counter in the first bytes), so no put is deduplicated away.
struct Parts {
    template: Vec<u8>,
    next: u64,
}

impl Parts {
    fn new(size: usize) -> Self {
        let mut template = vec![0; size];
        fastrand::Rng::with_seed(7).fill(&mut template);
        Self { template, next: 0 }
    }

    fn next(&mut self) -> VerifiedPart {
        self.next += 1;
        let mut bytes = self.template.clone();
        let stamp = self.next.to_le_bytes();
        let len = stamp.len().min(bytes.len());
        bytes[..len].copy_from_slice(&stamp[..len]);
        let name = PartName::new(format!("part-{}", self.next)).unwrap();
        VerifiedPart::hashing(name, bytes).unwrap()
    }
}

fn put(c: &mut Criterion) {
    let mut group = c.benchmark_group("put");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    for backend in backends() {
        for (size, size_label) in SIZES {
            let subject = open(backend);
            let mut parts = Parts::new(size);
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(BenchmarkId::new(label(backend), size_label), |b| {
                b.iter_batched(
                    || parts.next(),
                    |part| subject.store.put(&part, OnConflict::Refuse).unwrap(),
                    BatchSize::SmallInput,
                );
            });
        }
    }
    group.finish();
}

fn put_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("put_batch");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(6));
    for backend in backends() {
        for (size, size_label) in SIZES {
            let subject = open(backend);
            let mut parts = Parts::new(size);
            group.throughput(Throughput::Bytes((size * BATCH) as u64));
            group.bench_function(BenchmarkId::new(label(backend), size_label), |b| {
                b.iter_batched(
                    || (0..BATCH).map(|_| parts.next()).collect::<Vec<_>>(),
                    |batch| subject.store.put_batch(&batch, OnConflict::Refuse).unwrap(),
                    BatchSize::LargeInput,
                );
            });
        }
    }
    group.finish();
}

fn get(c: &mut Criterion) {
    let mut group = c.benchmark_group("get");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(3));
    for backend in backends() {
        for (size, size_label) in SIZES {
            let subject = open(backend);
            let mut parts = Parts::new(size);
            let stored: Vec<VerifiedPart> = (0..BATCH).map(|_| parts.next()).collect();
            subject
                .store
                .put_batch(&stored, OnConflict::Refuse)
                .unwrap();
            let mut round = stored.iter().map(VerifiedPart::name).cycle();
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(BenchmarkId::new(label(backend), size_label), |b| {
                b.iter(|| black_box(subject.store.get(round.next().unwrap()).unwrap()));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, put, put_batch, get);
criterion_main!(benches);
