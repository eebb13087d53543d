//! Manifest bytes from a peer: never a panic, and a decoded manifest encodes back to the same
//! bytes with consistent chunk lengths.
#![no_main]

use libfuzzer_sys::fuzz_target;
use storage::Manifest;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(manifest) = Manifest::decode(bytes) {
        assert_eq!(manifest.encode(), bytes);
        let total: u64 = (0..manifest.chunks().len())
            .map(|index| manifest.chunk_len(index))
            .sum();
        assert_eq!(total, manifest.file_size());
    }
});
