//! The throughput of the last minutes: a thread reads the server's byte counters once a
//! second and keeps the differences in a ring, which the page's chart draws.

use std::collections::VecDeque;
use std::io;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

use crate::ServerCounters;

/// Time between two samples.
pub(crate) const INTERVAL: Duration = Duration::from_secs(1);

/// Samples kept: five minutes' worth.
pub(crate) const SAMPLES: usize = 300;

/// Bytes moved in each interval, oldest first; at most [`SAMPLES`] of them.
#[derive(Debug, Default)]
pub(crate) struct History(Mutex<Throughput>);

/// What [`History`] holds, as the JSON API gives it.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Throughput {
    pub(crate) interval_secs: u64,
    /// Bytes read from peers in each interval.
    pub(crate) bytes_in: VecDeque<u64>,
    /// Bytes written to peers in each interval.
    pub(crate) bytes_out: VecDeque<u64>,
}

impl History {
    pub(crate) fn snapshot(&self) -> Throughput {
        let mut throughput = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        throughput.interval_secs = INTERVAL.as_secs();
        throughput
    }

    fn push(&self, bytes_in: u64, bytes_out: u64) {
        let mut ring = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.bytes_in.len() == SAMPLES {
            ring.bytes_in.pop_front();
            ring.bytes_out.pop_front();
        }
        ring.bytes_in.push_back(bytes_in);
        ring.bytes_out.push_back(bytes_out);
    }
}

/// The thread that samples; it stops when told, or when its handle is dropped.
pub(crate) struct Sampler {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl Sampler {
    pub(crate) fn spawn(history: Arc<History>, counters: Arc<ServerCounters>) -> io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("http-sampler".into())
            .spawn(move || {
                let mut last = counters.snapshot();
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    let now = counters.snapshot();
                    let moved = |now: u64, last: u64| now.saturating_sub(last);
                    history.push(
                        moved(now.bytes_in, last.bytes_in),
                        moved(now.bytes_out, last.bytes_out),
                    );
                    last = now;
                }
            })?;
        Ok(Self { stop, thread })
    }

    pub(crate) fn stop(self) {
        let _ = self.stop.send(());
        if self.thread.join().is_err() {
            tracing::error!("the throughput sampler panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_last_samples_in_order() {
        let history = History::default();
        for sample in 0..SAMPLES as u64 + 5 {
            history.push(sample, 2 * sample);
        }
        let throughput = history.snapshot();
        assert_eq!(throughput.bytes_in.len(), SAMPLES);
        assert_eq!(throughput.bytes_in.front(), Some(&5));
        assert_eq!(
            throughput.bytes_out.back(),
            Some(&(2 * (SAMPLES as u64 + 4)))
        );
    }
}
