//! Buffers for bodies of the usual size, given back once their parts are committed and taken
//! again by the next bodies. A fresh 1 MiB buffer per body faulted in each of its 256 pages as
//! the body was copied in: 94% of serve's page faults in a TLS push of 1 GiB (perf), and 7% of
//! its samples in clearing those pages.
//!
//! A buffer is taken only where a body would allocate exactly [`POOLED_CAPACITY`] anyway, so
//! what a connection is charged for its body does not change; the pool itself holds at most
//! [`MAX_POOLED`] buffers.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// The capacity of a pooled buffer: the room a body's buffer first grows by.
pub(crate) const POOLED_CAPACITY: usize = 1024 * 1024;

/// Free buffers kept at most: one connection's default budget of bodies in flight.
const MAX_POOLED: usize = 32;

#[derive(Debug, Default)]
pub(crate) struct BodyPool {
    free: Mutex<Vec<Vec<u8>>>,
}

impl BodyPool {
    /// An empty buffer of [`POOLED_CAPACITY`], one given back if there is one.
    pub(crate) fn take(&self) -> Vec<u8> {
        self.lock()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(POOLED_CAPACITY))
    }

    /// Keeps `buffer` for a later body when it is of the pooled capacity and the pool has room.
    pub(crate) fn give(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() != POOLED_CAPACITY {
            return;
        }
        let mut free = self.lock();
        if free.len() < MAX_POOLED {
            buffer.clear();
            free.push(buffer);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        // A panic elsewhere cannot leave a list of empty buffers inconsistent.
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again_empty_and_others_are_let_go() {
        let pool = BodyPool::default();
        let mut buffer = pool.take();
        assert_eq!(buffer.capacity(), POOLED_CAPACITY);
        buffer.extend_from_slice(b"body");
        let at = buffer.as_ptr();
        pool.give(buffer);
        let again = pool.take();
        assert_eq!((again.as_ptr(), again.len()), (at, 0));
        pool.give(Vec::with_capacity(POOLED_CAPACITY / 2));
        assert_ne!(pool.take().capacity(), POOLED_CAPACITY / 2);
    }

    #[test]
    fn the_pool_keeps_at_most_its_limit() {
        let pool = BodyPool::default();
        for _ in 0..MAX_POOLED + 5 {
            pool.give(Vec::with_capacity(POOLED_CAPACITY));
        }
        assert_eq!(pool.lock().len(), MAX_POOLED);
    }
}
