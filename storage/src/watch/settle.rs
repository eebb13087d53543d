//! Which changed files have settled: a file is taken once nothing has touched it for the
//! settle time and its size and modification time read the same twice, that far apart. A
//! file still being written keeps moving, so it is never taken half-written; one that keeps
//! changing is taken when it pauses.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// What a file's metadata says about its contents, cheaply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look {
    pub len: u64,
    pub modified: Option<SystemTime>,
}

impl Look {
    /// How `path` looks now; `None` when it is gone or not a regular file (a symbolic link
    /// is not one).
    pub fn of(path: &Path) -> Option<Self> {
        let metadata = std::fs::symlink_metadata(path).ok()?;
        metadata.is_file().then(|| Self {
            len: metadata.len(),
            modified: metadata.modified().ok(),
        })
    }
}

/// A changed file, and how it looked when it was last touched or checked.
struct Pending {
    since: Instant,
    look: Option<Look>,
}

/// The files that changed and have not settled yet.
pub struct Settling {
    settle: Duration,
    pending: HashMap<PathBuf, Pending>,
}

impl Settling {
    pub fn new(settle: Duration) -> Self {
        Self {
            settle,
            pending: HashMap::new(),
        }
    }

    /// `path` was touched at `now`, looking like `look`: its settle time starts again.
    pub fn touched(&mut self, path: PathBuf, now: Instant, look: Option<Look>) {
        self.pending.insert(path, Pending { since: now, look });
    }

    /// The files untouched for the settle time that look as they did then, now taken out;
    /// `look` says how a file looks now. A file that changed starts over; one that is gone
    /// is forgotten.
    pub fn settled(&mut self, now: Instant, look: impl Fn(&Path) -> Option<Look>) -> Vec<PathBuf> {
        let mut settled = Vec::new();
        self.pending.retain(|path, pending| {
            if now.duration_since(pending.since) < self.settle {
                return true;
            }
            let Some(current) = look(path) else {
                return false;
            };
            if pending.look == Some(current) {
                settled.push(path.clone());
                return false;
            }
            *pending = Pending {
                since: now,
                look: Some(current),
            };
            true
        });
        settled.sort();
        settled
    }

    /// When the next file may settle, if any is pending.
    pub fn next_due(&self) -> Option<Instant> {
        self.pending
            .values()
            .map(|pending| pending.since + self.settle)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTLE: Duration = Duration::from_secs(1);

    fn look(len: u64) -> Option<Look> {
        Some(Look {
            len,
            modified: None,
        })
    }

    #[test]
    fn a_file_is_taken_once_untouched_for_the_settle_time_and_unchanged() {
        let start = Instant::now();
        let mut settling = Settling::new(SETTLE);
        settling.touched("a".into(), start, look(10));
        assert!(
            settling
                .settled(start + SETTLE / 2, |_| look(10))
                .is_empty()
        );
        assert_eq!(settling.next_due(), Some(start + SETTLE));
        let taken = settling.settled(start + SETTLE, |_| look(10));
        assert_eq!(taken, [PathBuf::from("a")]);
        assert_eq!(settling.next_due(), None);
    }

    #[test]
    fn a_file_still_growing_waits_another_settle_time() {
        let start = Instant::now();
        let mut settling = Settling::new(SETTLE);
        settling.touched("a".into(), start, look(10));
        assert!(settling.settled(start + SETTLE, |_| look(20)).is_empty());
        assert!(
            settling
                .settled(start + SETTLE * 3 / 2, |_| look(20))
                .is_empty()
        );
        let taken = settling.settled(start + SETTLE * 2, |_| look(20));
        assert_eq!(taken, [PathBuf::from("a")]);
    }

    #[test]
    fn a_touch_starts_the_settle_time_again_and_a_vanished_file_is_forgotten() {
        let start = Instant::now();
        let mut settling = Settling::new(SETTLE);
        settling.touched("a".into(), start, look(10));
        settling.touched("b".into(), start, look(5));
        settling.touched("a".into(), start + SETTLE / 2, look(10));
        let taken = settling.settled(start + SETTLE, |path| {
            (path == Path::new("a")).then(|| look(10)).flatten()
        });
        assert!(taken.is_empty(), "{taken:?}");
        assert_eq!(settling.next_due(), Some(start + SETTLE * 3 / 2));
    }
}
