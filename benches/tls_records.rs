//! What TLS costs a body on its own, without sockets or disk: 1 MiB encrypted into records by
//! a client and decrypted by a server, both configured as peers are (TLS 1.3, AES-128-GCM
//! first, through ring), and read out the way the server's loop reads (`read_tls`,
//! `process_new_packets`, then the plaintext appended to a body). Throughput is in body bytes;
//! `benches/tls_push.sh` measures the same against plaintext end to end.
//! Run: `cargo bench --bench tls_records`.

use std::io::{BufRead, Write};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use net::tls::{Identity, in_memory_pair};

const BODY: usize = 1024 * 1024;

fn records(c: &mut Criterion) {
    let (client_id, server_id) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (mut client, mut server) = in_memory_pair(&client_id, &server_id).unwrap();
    // The whole body is encrypted before any record is taken, as a blocking send would.
    client.set_buffer_limit(None);
    let body: Vec<u8> = (0..BODY).map(|i| (i * 7 + i / 4096) as u8).collect();
    let mut wire = Vec::with_capacity(BODY + BODY / 64);
    let mut received = Vec::with_capacity(BODY);

    let mut group = c.benchmark_group("tls_records");
    group.throughput(Throughput::Bytes(BODY as u64));
    group.bench_function("encrypt_decrypt_1MiB", |b| {
        b.iter(|| {
            client.writer().write_all(&body).unwrap();
            wire.clear();
            while client.wants_write() {
                client.write_tls(&mut wire).unwrap();
            }
            received.clear();
            let mut ciphertext = wire.as_slice();
            while !ciphertext.is_empty() {
                server.read_tls(&mut ciphertext).unwrap();
                server.process_new_packets().unwrap();
                let mut reader = server.reader();
                while let Ok(chunk) = reader.fill_buf() {
                    if chunk.is_empty() {
                        break;
                    }
                    received.extend_from_slice(chunk);
                    let taken = chunk.len();
                    reader.consume(taken);
                }
            }
            assert_eq!(received.len(), BODY);
        });
    });
    group.bench_function("encrypt_1MiB", |b| {
        b.iter(|| {
            client.writer().write_all(&body).unwrap();
            wire.clear();
            while client.wants_write() {
                client.write_tls(&mut wire).unwrap();
            }
        });
    });
    group.finish();
}

criterion_group!(benches, records);
criterion_main!(benches);
