//! Peer bytes through the server's and the client's frame decoders, with the production
//! limits: never a panic, never an allocation past the limit, and a decoded message always
//! encodes back to the bytes it used.
#![no_main]

use libfuzzer_sys::fuzz_target;
use net::frame::{self, MAX_REQUEST_HEADER, MAX_RESPONSE_HEADER};
use net::message::{Request, Response};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(Some((request, used))) = frame::decode::<Request, MAX_REQUEST_HEADER>(bytes) {
        let encoded = frame::encode_request(&request).expect("a decoded request encodes");
        assert_eq!(encoded, bytes[..used]);
    }
    if let Ok(Some((response, used))) = frame::decode::<Response, MAX_RESPONSE_HEADER>(bytes) {
        let encoded = frame::encode_response(&response).expect("a decoded response encodes");
        assert_eq!(encoded, bytes[..used]);
    }
    let mut reader = bytes;
    let _ = frame::read::<Response, MAX_RESPONSE_HEADER>(&mut reader);
});
