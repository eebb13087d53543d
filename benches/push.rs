//! End-to-end push over loopback: a real server on 127.0.0.1 and the blocking client, 64
//! parts of 1 MiB per iteration, into a memory store (the protocol's own cost) and into a
//! sled store (durable acknowledgements included). Each iteration pushes new content, so
//! every part moves and is stored.
//! Run: `cargo bench --bench push`.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use net::{Client, Outgoing, Server, ServerConfig, ShutdownHandle};
use storage::{BackendKind, MemStore, PartName, PartStore, VerifiedPart, open_store};

const PARTS: usize = 64;
const PART_SIZE: usize = 1 << 20;

struct Running {
    addr: String,
    stop: ShutdownHandle,
    thread: Option<JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl Running {
    fn start(store: Arc<dyn PartStore>, dir: Option<tempfile::TempDir>) -> Self {
        let config = ServerConfig::new("127.0.0.1:0".parse().unwrap()).with_peer_name("bench");
        let server = Server::bind(config, store).unwrap();
        let addr = server.local_addr().to_string();
        let stop = server.shutdown_handle();
        let thread = std::thread::spawn(move || {
            server.run().unwrap();
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
            _dir: dir,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.shutdown().unwrap();
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

/// `PARTS` new parts, distinct from every earlier call's.
fn fresh_parts(round: &mut u64) -> Vec<Outgoing> {
    *round += 1;
    let mut template = vec![0; PART_SIZE];
    fastrand::Rng::with_seed(*round).fill(&mut template);
    (0..PARTS)
        .map(|i| {
            template[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let name = PartName::new(format!("r{round}-p{i}")).unwrap();
            let part = VerifiedPart::hashing(name, template.clone()).unwrap();
            Outgoing {
                info: part.info(),
                bytes: Some(part.into_bytes()),
            }
        })
        .collect()
}

fn push(c: &mut Criterion) {
    let mut group = c.benchmark_group("push_1MiB_parts");
    group.throughput(Throughput::Bytes((PARTS * PART_SIZE) as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    let dir = tempfile::tempdir().unwrap();
    let sled: Arc<dyn PartStore> =
        Arc::from(open_store(&dir.path().join("db"), Some(BackendKind::Sled)).unwrap());
    let servers = [
        ("mem", Running::start(Arc::new(MemStore::new()), None)),
        ("sled", Running::start(sled, Some(dir))),
    ];
    for (label, server) in &servers {
        let mut client = Client::connect(&server.addr, "bench", Duration::from_secs(60)).unwrap();
        let mut round = 0;
        group.bench_function(*label, |b| {
            b.iter_batched(
                || fresh_parts(&mut round),
                |parts| {
                    let no_load = |_: &storage::PartInfo| Err(String::new());
                    let summary = client.push(parts, no_load, |_| {}).unwrap();
                    assert_eq!(summary.stored, PARTS as u64);
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, push);
criterion_main!(benches);
