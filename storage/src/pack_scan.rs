//! Reading a pack's records back in order: to replay what the index has not applied, to
//! compact, and to rebuild the index.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::IoContext;
use crate::pack_record::{self, HEADER_LEN, Record};
use crate::packs::{BodyAt, pack_path};
use crate::{PartHash, StoreError};

/// How much of a pack a resync reads at a time while it looks for the next record.
const WINDOW: usize = 1 << 20;

/// One record found in a pack.
#[derive(Debug, Clone)]
pub(crate) struct Scanned {
    pub(crate) record: Record,
    /// The whole record: header, name and body.
    pub(crate) at: BodyAt,
}

impl Scanned {
    /// The record's header and name.
    pub(crate) fn head(&self) -> BodyAt {
        BodyAt {
            len: self.record.head_len(),
            ..self.at
        }
    }

    /// The body the record carries (empty when it carries none).
    pub(crate) fn body(&self) -> BodyAt {
        BodyAt {
            pack: self.at.pack,
            offset: self.at.offset + self.record.head_len(),
            len: self.record.body_len(),
        }
    }
}

/// A cursor over the records of one pack, from a given offset to a given end.
pub(crate) struct PackScan {
    file: File,
    path: PathBuf,
    pack: u64,
    pos: u64,
    end: u64,
}

impl PackScan {
    /// # Errors
    /// [`StoreError::Io`].
    pub(crate) fn open(dir: &Path, pack: u64, from: u64, end: u64) -> Result<Self, StoreError> {
        let path = pack_path(dir, pack);
        let file = File::open(&path).context(|| format!("opening {}", path.display()))?;
        Ok(Self {
            file,
            path,
            pack,
            pos: from,
            end,
        })
    }

    /// Where the next record would start.
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// The record at the cursor, moving past it; `Ok(None)` at the end or when the bytes at
    /// the cursor are not an intact record header (see [`PackScan::at_end`]).
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub(crate) fn next_record(&mut self) -> Result<Option<Scanned>, StoreError> {
        let found = self.record_at(self.pos)?;
        if let Some(scanned) = &found {
            self.pos = scanned.at.offset + scanned.at.len;
        }
        Ok(found)
    }

    /// Whether an intact record starts at the cursor or anywhere after it (moving the cursor
    /// there): after damage, that tells a torn last append from damage in the middle.
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub(crate) fn record_follows(&mut self) -> Result<bool, StoreError> {
        if self.at_end() {
            return Ok(false);
        }
        Ok(self.record_at(self.pos)?.is_some() || self.resync()?)
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.end
    }

    fn record_at(&self, offset: u64) -> Result<Option<Scanned>, StoreError> {
        let Some(record) = self.header_at(offset)? else {
            return Ok(None);
        };
        let len = record.head_len() + record.body_len();
        if offset + len > self.end {
            return Ok(None);
        }
        Ok(Some(Scanned {
            record,
            at: BodyAt {
                pack: self.pack,
                offset,
                len,
            },
        }))
    }

    /// The intact header (and name) at `offset`, whether or not its body fits.
    fn header_at(&self, offset: u64) -> Result<Option<Record>, StoreError> {
        if offset + HEADER_LEN > self.end {
            return Ok(None);
        }
        let mut header = [0; HEADER_LEN as usize];
        self.read_exact(&mut header, offset)?;
        let Some(name_len) = pack_record::name_len(&header) else {
            return Ok(None);
        };
        if offset + HEADER_LEN + name_len as u64 > self.end {
            return Ok(None);
        }
        let mut name = vec![0; name_len];
        self.read_exact(&mut name, offset + HEADER_LEN)?;
        Ok(pack_record::decode(&header, &name, self.pack, offset))
    }

    /// Whether the cursor is at an intact header whose body runs past the end: the last
    /// append, cut short. Its body is never searched for records.
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub(crate) fn at_torn_record(&self) -> Result<bool, StoreError> {
        Ok(self.header_at(self.pos)?.is_some())
    }

    /// Moves the cursor to the next intact record header after it, if there is one; returns
    /// whether one was found. Used past damage, where the bytes at the cursor are not a record.
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub(crate) fn resync(&mut self) -> Result<bool, StoreError> {
        let mut from = self.pos + 1;
        let mut window = vec![0; WINDOW];
        while from + HEADER_LEN <= self.end {
            let len = usize::try_from((self.end - from).min(WINDOW as u64)).expect("bounded");
            self.read_exact(&mut window[..len], from)?;
            let hits = window[..len]
                .windows(pack_record::MAGIC.len())
                .enumerate()
                .filter(|(_, bytes)| *bytes == pack_record::MAGIC);
            for (at, _) in hits {
                let offset = from + at as u64;
                if self.record_at(offset)?.is_some() {
                    self.pos = offset;
                    return Ok(true);
                }
            }
            from += (len - pack_record::MAGIC.len() + 1) as u64;
        }
        self.pos = self.end;
        Ok(false)
    }

    /// Whether `at` (a body inside this pack) hashes to `hash`, read a window at a time.
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub(crate) fn body_matches(&self, at: BodyAt, hash: &PartHash) -> Result<bool, StoreError> {
        let mut hasher = blake3::Hasher::new();
        let mut buffer = vec![0; WINDOW.min(usize::try_from(at.len).expect("bounded"))];
        let mut done = 0;
        while done < at.len {
            let len = usize::try_from((at.len - done).min(WINDOW as u64)).expect("bounded");
            self.read_exact(&mut buffer[..len], at.offset + done)?;
            hasher.update(&buffer[..len]);
            done += len as u64;
        }
        Ok(PartHash::from_bytes(*hasher.finalize().as_bytes()) == *hash)
    }

    /// The bytes at `at`, a run inside this pack.
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub(crate) fn read(&self, at: BodyAt) -> Result<Vec<u8>, StoreError> {
        let mut bytes = vec![0; usize::try_from(at.len).expect("a checked part size")];
        self.read_exact(&mut bytes, at.offset)?;
        Ok(bytes)
    }

    fn read_exact(&self, into: &mut [u8], offset: u64) -> Result<(), StoreError> {
        self.file
            .read_exact_at(into, offset)
            .context(|| format!("reading {}", self.path.display()))
    }
}
