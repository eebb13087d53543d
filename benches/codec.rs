//! Frame encode and decode of the headers that dominate traffic: offers, body headers and
//! list pages. Throughput is in header bytes.
//! Run: `cargo bench --bench codec`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use net::frame::{self, MAX_REQUEST_HEADER, MAX_RESPONSE_HEADER};
use net::message::{Request, Response, WireEntry};
use storage::PartKind;

fn offer() -> Request {
    Request::Offer {
        id: 42,
        name: "part-000042.bin".into(),
        hash: [7; 32],
        size: 1 << 20,
        kind: PartKind::Plain,
    }
}

fn page() -> Response {
    let parts = (0..1000)
        .map(|i| WireEntry {
            name: format!("part-{i:06}.bin"),
            hash: [9; 32],
            size: 1 << 20,
            kind: PartKind::Plain,
        })
        .collect();
    Response::Page {
        id: 1,
        parts,
        next: None,
    }
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    let requests = [
        ("offer", offer()),
        (
            "body_header",
            Request::Body {
                id: 42,
                size: 1 << 20,
            },
        ),
    ];
    for (name, request) in requests {
        let encoded = frame::encode_request(&request).unwrap();
        group.throughput(Throughput::Bytes(encoded.len() as u64));
        let mut out = Vec::with_capacity(256);
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| {
                out.clear();
                frame::encode_into::<MAX_REQUEST_HEADER>(black_box(&request), &mut out).unwrap();
            });
        });
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| frame::decode::<Request, MAX_REQUEST_HEADER>(black_box(&encoded)).unwrap());
        });
    }
    let page = page();
    let encoded = frame::encode_response(&page).unwrap();
    group.throughput(Throughput::Bytes(encoded.len() as u64));
    group.bench_function("encode/page_1000", |b| {
        b.iter(|| frame::encode_response(black_box(&page)).unwrap());
    });
    group.bench_function("decode/page_1000", |b| {
        b.iter(|| frame::decode::<Response, MAX_RESPONSE_HEADER>(black_box(&encoded)).unwrap());
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
