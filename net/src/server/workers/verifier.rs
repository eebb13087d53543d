//! The verifier: hashes the uploads the loop left unverified (see [`Body::arrived`]) and
//! passes them on to the writer. It runs beside the writer so that hashing the next bodies
//! overlaps the writer's wait for the disk to sync the ones before.

use std::sync::mpsc::{Receiver, Sender};

use super::{Body, Upload};

/// Verifies every upload from `unverified` and sends it to the writer, until the loop drops
/// its sender (or the writer is gone).
pub(crate) fn run_verifier(unverified: Receiver<Upload>, writer: Sender<Upload>) {
    for mut upload in unverified {
        upload.body = Body::Verified(upload.body.verified());
        if writer.send(upload).is_err() {
            return;
        }
    }
}
