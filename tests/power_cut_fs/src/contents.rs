//! A file's bytes in two layers: what readers see now, and what the last fsync made durable.
//!
//! Both layers are maps of fixed-size pages shared by reference count, so an fsync copies only
//! the pointers of the pages written since the previous one (the dirty set), never the file,
//! and a write after an fsync copies just the page it touches. A missing page reads as zeros
//! (a hole); bytes of a page past the file's length are always zero.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The unit of dirty tracking, the kernel's page size.
const PAGE: u64 = 4096;

type Page = Arc<Vec<u8>>;

#[derive(Debug, Clone, Default)]
struct Layer {
    pages: BTreeMap<u64, Page>,
    len: u64,
}

/// What an fsync would make durable, for the report of a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsynced {
    /// Pages written or cut off since the last sync.
    pub dirty_pages: usize,
    /// The length readers see.
    pub len: u64,
    /// The length that survives a power cut.
    pub durable_len: u64,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Contents {
    now: Layer,
    durable: Layer,
    /// Pages of `now` that may differ from `durable`.
    dirty: BTreeSet<u64>,
}

impl Contents {
    pub(crate) fn len(&self) -> u64 {
        self.now.len
    }

    /// Up to `size` bytes from `offset`, fewer at the end of the file.
    pub(crate) fn read(&self, offset: u64, size: u32) -> Vec<u8> {
        let end = self.now.len.min(offset.saturating_add(u64::from(size)));
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut at = offset;
        while at < end {
            let (index, within) = (at / PAGE, at % PAGE);
            let take = (PAGE - within).min(end - at);
            match self.now.pages.get(&index) {
                Some(page) => {
                    out.extend_from_slice(&page[within as usize..(within + take) as usize]);
                }
                None => out.resize(out.len() + take as usize, 0),
            }
            at += take;
        }
        out
    }

    pub(crate) fn write(&mut self, offset: u64, data: &[u8]) {
        let mut done = 0;
        while done < data.len() {
            let at = offset + done as u64;
            let (index, within) = (at / PAGE, (at % PAGE) as usize);
            let take = (PAGE as usize - within).min(data.len() - done);
            let page = self
                .now
                .pages
                .entry(index)
                .or_insert_with(|| Arc::new(vec![0; PAGE as usize]));
            // Copies the page only while the durable layer still shares it.
            Arc::make_mut(page)[within..within + take].copy_from_slice(&data[done..done + take]);
            self.dirty.insert(index);
            done += take;
        }
        self.now.len = self.now.len.max(offset + data.len() as u64);
    }

    /// Cuts the file to `len` or extends it with zeros.
    pub(crate) fn set_len(&mut self, len: u64) {
        if len < self.now.len {
            let first_gone = len.div_ceil(PAGE);
            let gone = self.now.pages.split_off(&first_gone);
            // A page `now` lacks and `durable` has is always dirty already, so marking the
            // pages cut off is enough.
            self.dirty.extend(gone.keys());
            let (index, within) = (len / PAGE, (len % PAGE) as usize);
            if within != 0
                && let Some(page) = self.now.pages.get_mut(&index)
            {
                Arc::make_mut(page)[within..].fill(0);
                self.dirty.insert(index);
            }
        }
        self.now.len = len;
    }

    /// fsync: the durable layer becomes what readers see, at the cost of the dirty pages.
    pub(crate) fn sync(&mut self) {
        for index in std::mem::take(&mut self.dirty) {
            match self.now.pages.get(&index) {
                Some(page) => self.durable.pages.insert(index, Arc::clone(page)),
                None => self.durable.pages.remove(&index),
            };
        }
        self.durable.len = self.now.len;
    }

    /// What a power cut would lose, if anything.
    pub(crate) fn unsynced(&self) -> Option<Unsynced> {
        (!self.dirty.is_empty() || self.now.len != self.durable.len).then_some(Unsynced {
            dirty_pages: self.dirty.len(),
            len: self.now.len,
            durable_len: self.durable.len,
        })
    }

    /// The contents after a power cut: the durable layer alone.
    pub(crate) fn after_cut(&self) -> Self {
        Self {
            now: self.durable.clone(),
            durable: self.durable.clone(),
            dirty: BTreeSet::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(seed: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    #[test]
    fn reads_back_writes_across_pages_and_holes() {
        let mut file = Contents::default();
        let data = bytes(1, 10_000);
        file.write(5_000, &data);
        assert_eq!(file.len(), 15_000);
        assert_eq!(file.read(0, 5_000), vec![0; 5_000]);
        assert_eq!(file.read(5_000, 20_000), data);
        assert_eq!(file.read(15_000, 10), Vec::<u8>::new());
    }

    #[test]
    fn a_cut_keeps_the_synced_layer_only() {
        let mut file = Contents::default();
        file.write(0, &bytes(1, 9_000));
        file.sync();
        assert_eq!(file.unsynced(), None);
        file.write(100, &bytes(2, 50));
        file.write(9_000, &bytes(3, 3_000));
        let unsynced = file.unsynced().unwrap();
        assert_eq!((unsynced.len, unsynced.durable_len), (12_000, 9_000));
        assert_eq!(file.after_cut().read(0, 20_000), bytes(1, 9_000));
    }

    #[test]
    fn an_unsynced_truncate_reverts_and_a_synced_one_holds() {
        let mut file = Contents::default();
        let data = bytes(4, 10_000);
        file.write(0, &data);
        file.sync();
        file.set_len(4_100);
        file.set_len(6_000);
        let mut expected = data[..4_100].to_vec();
        expected.resize(6_000, 0);
        assert_eq!(file.read(0, 10_000), expected);
        assert_eq!(file.after_cut().read(0, 20_000), data);
        file.sync();
        assert_eq!(file.after_cut().read(0, 20_000), expected);
    }
}
