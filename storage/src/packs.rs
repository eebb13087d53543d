//! Pack files: the sled backend's log of record, appended to a few big files.
//!
//! One file per body costs an inode allocation and an fsync each. Measured on these machines,
//! writing 1024 bodies of 1 MiB took 0.87-3.16 s as one file each with an fdatasync each, and
//! 0.67-0.69 s as 16 files of 64 bodies with one fdatasync each (python, same run, 3 rounds).
//! So a batch appends all its records (`pack_record`) to the current pack and syncs it once.
//!
//! ```text
//! <db>/packs/<id, 16 hex digits>   records back to back, appended only
//! ```
//!
//! The index records, per pack, how far its records have been applied (the indexed length)
//! and how many bytes no entry uses any more (dead bytes). Records past the indexed length
//! were made durable but the index had not caught up with them: opening replays them. A pack
//! the index does not know is newer than the index (replayed whole) or left by a compaction
//! whose index commit was durable (deleted). A failed append is cut back at once, so a full
//! disk keeps no half-written record.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::StoreError;
use crate::durable;
use crate::error::IoContext;
use crate::pack_readers::PackReaders;
use crate::pack_record::Record;

/// A pack stops taking records once it is this long, so compaction copies bounded amounts.
pub(crate) const PACK_TARGET: u64 = 256 * 1024 * 1024;

/// Appends are gathered into writes of about this size, so small records cost no syscall each.
const WRITE_COMBINE: usize = 1 << 20;

/// Where a run of bytes is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BodyAt {
    pub(crate) pack: u64,
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// What the index knows of one pack.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PackState {
    /// Bytes whose records the index has applied.
    pub(crate) len: u64,
    /// Bytes of records no entry uses any more.
    pub(crate) dead: u64,
}

/// Which packs a compaction takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compaction {
    /// Those at least half dead: what every write does, so space is won back in large steps.
    HalfDead,
    /// Every pack with dead bytes: what `gc` asks for.
    AnyDead,
}

impl PackState {
    /// Whether compacting would win back at least half the pack.
    pub(crate) fn worth_compacting(&self) -> bool {
        self.len > 0 && self.dead * 2 >= self.len
    }
}

/// Records on disk past what the index has applied: `[from, to)` of pack `pack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tail {
    pub(crate) pack: u64,
    pub(crate) from: u64,
    pub(crate) to: u64,
}

/// A record to append, with the body it carries.
pub(crate) struct Appending<'a> {
    pub(crate) record: Record,
    pub(crate) body: &'a [u8],
}

/// The pack directory, what the index knows of each pack, and the pack being appended to.
#[derive(Debug)]
pub(crate) struct Packs {
    dir: PathBuf,
    states: BTreeMap<u64, PackState>,
    current: Option<Current>,
    next_id: u64,
    /// Whether the next append may go on at the end of the newest pack (if the file is as
    /// long as the index has applied): after opening, or after a failed append was cut back.
    /// Otherwise a pack stops being current because it is full or about to be compacted.
    may_reuse: bool,
    /// The handles reads use, shared with the store's readers.
    readers: Arc<PackReaders>,
}

#[derive(Debug)]
struct Current {
    id: u64,
    file: File,
    len: u64,
}

impl Packs {
    /// Opens `dir`: returns the packs and, oldest first, the records the index has not applied.
    /// Packs older than the newest one the index knows and unknown to it are compaction
    /// leftovers, deleted.
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub(crate) fn open(
        dir: PathBuf,
        mut known: BTreeMap<u64, PackState>,
    ) -> Result<(Self, Vec<Tail>), StoreError> {
        durable::ensure_dir(&dir)?;
        let newest_known = known.keys().next_back().copied();
        let mut tails = Vec::new();
        let mut deleted = false;
        for (id, path) in pack_files(&dir)? {
            let len = std::fs::metadata(&path)
                .context(|| format!("reading the size of {}", path.display()))?
                .len();
            match known.get(&id) {
                Some(state) if len > state.len => tails.push(Tail {
                    pack: id,
                    from: state.len,
                    to: len,
                }),
                Some(_) => {}
                None if newest_known.is_some_and(|newest| id < newest) => {
                    tracing::info!(path = %path.display(), "removing a pack left by a compaction");
                    std::fs::remove_file(&path)
                        .context(|| format!("removing {}", path.display()))?;
                    deleted = true;
                }
                None => {
                    known.insert(id, PackState::default());
                    tails.push(Tail {
                        pack: id,
                        from: 0,
                        to: len,
                    });
                }
            }
        }
        if deleted {
            durable::sync_dir(&dir)?;
        }
        tails.sort_by_key(|tail| tail.pack);
        let next_id = known.keys().next_back().map_or(0, |last| last + 1);
        let readers = Arc::new(PackReaders::new(dir.clone()));
        for (&id, state) in &known {
            readers.settle(id, state.len);
        }
        let packs = Self {
            readers,
            dir,
            states: known,
            current: None,
            next_id,
            may_reuse: true,
        };
        Ok((packs, tails))
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Dead bytes over every pack.
    pub(crate) fn dead(&self) -> u64 {
        self.states.values().map(|state| state.dead).sum()
    }

    pub(crate) fn state(&self, id: u64) -> Option<PackState> {
        self.states.get(&id).copied()
    }

    /// Records that the index has applied pack `id` up to `len`; returns the state to store.
    pub(crate) fn indexed(&mut self, id: u64, len: u64) -> PackState {
        let state = self.states.entry(id).or_default();
        state.len = state.len.max(len);
        self.readers.settle(id, state.len);
        *state
    }

    /// Cuts pack `id` back to `len`: the end of its last intact record.
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub(crate) fn cut_back(&mut self, id: u64, len: u64) -> Result<(), StoreError> {
        tracing::info!(pack = id, len, "cutting off an unfinished append");
        if self
            .current
            .as_ref()
            .is_some_and(|current| current.id == id)
        {
            self.current = None;
        }
        let path = self.path(id);
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .context(|| format!("opening {}", path.display()))?;
        file.set_len(len)
            .and_then(|()| file.sync_all())
            .context(|| format!("truncating {}", path.display()))
    }

    fn path(&self, id: u64) -> PathBuf {
        pack_path(&self.dir, id)
    }

    /// Appends `records` with their bodies and makes them durable with one sync per pack
    /// touched. Returns where each record starts, in order.
    ///
    /// # Errors
    /// [`StoreError::Io`]; then every pack touched is cut back to where it was, so nothing of
    /// the failed append stays on disk.
    pub(crate) fn append(&mut self, records: &[Appending<'_>]) -> Result<Vec<BodyAt>, StoreError> {
        let mut before = Vec::new();
        let result = self.append_all(records, &mut before);
        if result.is_err() {
            self.current = None;
            // Cut back, the newest pack takes the next append again: a disk that stays full
            // does not collect a new empty pack per failed attempt.
            self.may_reuse = true;
            for (id, len) in before {
                if let Err(err) = self.cut_back(id, len) {
                    tracing::error!(pack = id, %err, "cannot cut back a failed append");
                }
            }
        }
        result
    }

    fn append_all(
        &mut self,
        records: &[Appending<'_>],
        before: &mut Vec<(u64, u64)>,
    ) -> Result<Vec<BodyAt>, StoreError> {
        let mut placed = Vec::with_capacity(records.len());
        let mut buffer = Vec::new();
        for appending in records {
            let current = self.current_for()?;
            if before.last().is_none_or(|&(id, _)| id != current.id) {
                before.push((current.id, current.len));
            }
            let head = appending.record.encode_head(current.id, current.len);
            let at = BodyAt {
                pack: current.id,
                offset: current.len,
                len: head.len() as u64 + appending.body.len() as u64,
            };
            let buffered_from = at.offset - buffer.len() as u64;
            if appending.body.len() >= WRITE_COMBINE {
                buffer.extend_from_slice(&head);
                write_at(current, &buffer, buffered_from)?;
                buffer.clear();
                write_at(current, appending.body, at.offset + head.len() as u64)?;
            } else {
                buffer.extend_from_slice(&head);
                buffer.extend_from_slice(appending.body);
                if buffer.len() >= WRITE_COMBINE {
                    write_at(current, &buffer, buffered_from)?;
                    buffer.clear();
                }
            }
            current.len += at.len;
            placed.push(at);
            if current.len >= PACK_TARGET {
                let from = current.len - buffer.len() as u64;
                write_at(current, &buffer, from)?;
                buffer.clear();
                self.sync_current()?;
                self.current = None;
            }
        }
        if let Some(current) = &self.current {
            write_at(current, &buffer, current.len - buffer.len() as u64)?;
        }
        self.sync_current()?;
        Ok(placed)
    }

    /// Counts `bytes` of pack `id` as dead; returns its new state to record, or `None` when
    /// the pack is already gone.
    pub(crate) fn mark_dead(&mut self, id: u64, bytes: u64) -> Option<(u64, PackState)> {
        let state = self.states.get_mut(&id)?;
        state.dead += bytes;
        Some((id, *state))
    }

    /// A pack `which` takes, if any. Appends move on to a new pack if it is the current one, so compacting it
    /// does not write into itself.
    pub(crate) fn next_to_compact(&mut self, which: Compaction) -> Option<u64> {
        let id = self
            .states
            .iter()
            .find(|(_, state)| {
                state.worth_compacting() || (which == Compaction::AnyDead && state.dead > 0)
            })
            .map(|(&id, _)| id)?;
        if self
            .current
            .as_ref()
            .is_some_and(|current| current.id == id)
        {
            self.current = None;
        }
        // The copies go to a new pack: never back into the one being compacted.
        self.may_reuse = false;
        Some(id)
    }

    /// Forgets pack `id`: every live record has been copied out of it. The caller records
    /// that in the index, durably, before [`Packs::delete_file`].
    pub(crate) fn retire(&mut self, id: u64) {
        self.states.remove(&id);
        if self
            .current
            .as_ref()
            .is_some_and(|current| current.id == id)
        {
            self.current = None;
        }
    }

    /// The open pack files reads go through, to share with the store's readers.
    pub(crate) fn readers(&self) -> Arc<PackReaders> {
        Arc::clone(&self.readers)
    }

    /// Deletes a retired pack's file, and the handle reads kept of it first.
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub(crate) fn delete_file(&self, id: u64) -> Result<(), StoreError> {
        self.readers.retire(id);
        let path = self.path(id);
        match std::fs::remove_file(&path) {
            Err(err) if err.kind() != ErrorKind::NotFound => {
                return Err(StoreError::Io {
                    context: format!("removing {}", path.display()),
                    source: err,
                });
            }
            _ => {}
        }
        durable::sync_dir(&self.dir)
    }

    /// The pack to append to: the current one, the newest one if it has room and nothing was
    /// appended since opening, or a new one (whose directory entry is made durable before
    /// anything can point into it).
    fn current_for(&mut self) -> Result<&mut Current, StoreError> {
        if self.current.is_none() {
            let reusable = std::mem::take(&mut self.may_reuse)
                .then(|| self.states.iter().next_back())
                .flatten()
                .filter(|(_, state)| state.len < PACK_TARGET && !state.worth_compacting())
                .map(|(&id, state)| (id, state.len))
                .filter(|&(id, len)| {
                    std::fs::metadata(self.path(id)).is_ok_and(|file| file.len() == len)
                });
            let (id, len, fresh) = match reusable {
                Some((id, len)) => (id, len, false),
                None => {
                    let id = self.next_id;
                    self.next_id += 1;
                    (id, 0, true)
                }
            };
            let path = self.path(id);
            let file = OpenOptions::new()
                .write(true)
                .create(fresh)
                .truncate(fresh)
                .open(&path)
                .context(|| format!("opening {}", path.display()))?;
            if fresh {
                durable::sync_dir(&self.dir)?;
                self.states.insert(id, PackState::default());
            }
            self.current = Some(Current { id, file, len });
        }
        Ok(self.current.as_mut().expect("set above"))
    }

    fn sync_current(&self) -> Result<(), StoreError> {
        match &self.current {
            Some(current) => current
                .file
                .sync_data()
                .context(|| format!("syncing pack {:016x}", current.id)),
            None => Ok(()),
        }
    }
}

fn write_at(current: &Current, bytes: &[u8], offset: u64) -> Result<(), StoreError> {
    if bytes.is_empty() {
        return Ok(());
    }
    current
        .file
        .write_all_at(bytes, offset)
        .context(|| format!("appending to pack {:016x}", current.id))?;
    durable::start_writeback(&current.file, offset, bytes.len() as u64);
    Ok(())
}

pub(crate) fn pack_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}"))
}

/// Every pack file in `dir`, oldest first, by id; other files are left alone.
///
/// # Errors
/// [`StoreError::Io`].
pub(crate) fn pack_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut packs = Vec::new();
    for entry in std::fs::read_dir(dir).context(|| format!("listing {}", dir.display()))? {
        let path = entry
            .context(|| format!("listing {}", dir.display()))?
            .path();
        let id = path
            .file_name()
            .and_then(|name| name.to_str())
            .filter(|name| name.len() == 16)
            .and_then(|name| u64::from_str_radix(name, 16).ok());
        match id {
            Some(id) => packs.push((id, path)),
            None => tracing::warn!(path = %path.display(), "ignoring a file that is not a pack"),
        }
    }
    packs.sort();
    Ok(packs)
}

/// Reads `at.len` bytes at `at.offset` of an open pack; `None` when the file is shorter.
pub(crate) fn read_at(file: &File, path: &Path, at: BodyAt) -> Result<Option<Vec<u8>>, StoreError> {
    let len = usize::try_from(at.len).expect("a checked part size fits in memory");
    let mut bytes = vec![0; len];
    match file.read_exact_at(&mut bytes, at.offset) {
        Ok(()) => Ok(Some(bytes)),
        Err(err) if err.kind() == ErrorKind::UnexpectedEof => Ok(None),
        Err(err) => Err(StoreError::Io {
            context: format!("reading {}", path.display()),
            source: err,
        }),
    }
}

/// Whether the pack holds the bytes of `at` (its file is there and long enough), without
/// reading them.
pub(crate) fn holds(dir: &Path, at: BodyAt) -> Result<bool, StoreError> {
    let path = pack_path(dir, at.pack);
    match std::fs::metadata(&path) {
        Ok(metadata) => Ok(metadata.len() >= at.offset.saturating_add(at.len)),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(false),
        Err(err) => Err(StoreError::Io {
            context: format!("reading the size of {}", path.display()),
            source: err,
        }),
    }
}
