//! Buffers for bodies of the usual size, given back once their parts are committed and taken
//! again by the next bodies. A fresh 1 MiB buffer per body faulted in each of its 256 pages as
//! the body was copied in: 94% of serve's page faults in a TLS push of 1 GiB (perf), and 7% of
//! its samples in clearing those pages.
//!
//! A body takes a buffer where it would have grown to [`POOLED_CAPACITY`] anyway, so what a
//! connection is charged for its body does not change. The free buffers are outside the memory
//! budget: the pool keeps at most an eighth of it (32 MiB of the default 256 MiB), and the
//! loop empties it once nothing is held for any peer.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// The capacity of a pooled buffer: the room a body's buffer first grows by.
pub(crate) const POOLED_CAPACITY: usize = 1024 * 1024;

/// The share of the memory budget the free buffers may take, at most.
const BUDGET_SHARE: u64 = 8;

#[derive(Debug)]
pub(crate) struct BodyPool {
    free: Mutex<Vec<Vec<u8>>>,
    max_free: usize,
}

impl BodyPool {
    /// A pool for a server whose memory budget is `max_memory` bytes.
    pub(crate) fn new(max_memory: u64) -> Self {
        let buffers = max_memory / BUDGET_SHARE / POOLED_CAPACITY as u64;
        Self {
            free: Mutex::default(),
            max_free: usize::try_from(buffers).unwrap_or(usize::MAX),
        }
    }

    /// An empty buffer of [`POOLED_CAPACITY`], one given back if there is one.
    pub(crate) fn take(&self) -> Vec<u8> {
        self.take_free()
            .unwrap_or_else(|| Vec::with_capacity(POOLED_CAPACITY))
    }

    /// A buffer given back, if one is free: memory already in use, never a new allocation.
    pub(crate) fn take_free(&self) -> Option<Vec<u8>> {
        self.lock().pop()
    }

    /// Lets go of every free buffer; returns the bytes let go.
    pub(crate) fn clear(&self) -> u64 {
        let freed = std::mem::take(&mut *self.lock());
        freed.len() as u64 * POOLED_CAPACITY as u64
    }

    /// Keeps `buffer` for a later body when it is of the pooled capacity and the pool has room.
    pub(crate) fn give(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() != POOLED_CAPACITY {
            return;
        }
        let mut free = self.lock();
        if free.len() < self.max_free {
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

    const BUDGET: u64 = 256 * 1024 * 1024;

    #[test]
    fn a_buffer_given_back_is_taken_again_empty_and_others_are_let_go() {
        let pool = BodyPool::new(BUDGET);
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
    fn the_pool_keeps_at_most_an_eighth_of_the_budget_until_it_is_cleared() {
        let pool = BodyPool::new(BUDGET);
        for _ in 0..40 {
            pool.give(Vec::with_capacity(POOLED_CAPACITY));
        }
        assert_eq!(pool.clear(), BUDGET / 8);
        assert!(pool.take_free().is_none());
        let small = BodyPool::new(4 * 1024 * 1024);
        small.give(Vec::with_capacity(POOLED_CAPACITY));
        assert!(small.take_free().is_none());
    }
}
