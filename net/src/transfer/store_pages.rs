//! A local store's parts in name order, read a page at a time: a push from a large store
//! starts offering after its first page instead of after its whole listing.

use storage::{PartInfo, PartStore, StoreError};

/// Entries read at once: enough that paging costs nothing next to offering them.
const PAGE: usize = 4096;

/// The pages of `store`'s listing, each one non-empty, ending at the first empty page (a
/// short page need not be the last: `list_page` promises only up to `limit` entries) or after
/// the first error.
pub(super) fn store_pages(
    store: &dyn PartStore,
) -> impl Iterator<Item = Result<Vec<PartInfo>, StoreError>> + '_ {
    let mut after: Option<String> = None;
    let mut finished = false;
    std::iter::from_fn(move || {
        if finished {
            return None;
        }
        let page = store.list_page(after.as_deref(), PAGE);
        match page.as_deref().map(<[PartInfo]>::last) {
            Ok(Some(last)) => after = Some(last.name.as_str().to_owned()),
            Ok(None) | Err(_) => finished = true,
        }
        page.map_or_else(
            |err| Some(Err(err)),
            |page| (!page.is_empty()).then_some(Ok(page)),
        )
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use storage::{BatchOutcome, MemStore, OnConflict, PartName, StoreStats, VerifiedPart};

    /// A store whose pages hold at most `cap` entries, and whose listing fails from page
    /// `fail_at` on.
    struct Paged {
        inner: MemStore,
        cap: usize,
        fail_at: usize,
        pages: AtomicUsize,
    }

    impl PartStore for Paged {
        fn put_batch(
            &self,
            parts: &[VerifiedPart],
            on_conflict: OnConflict,
        ) -> Result<BatchOutcome, StoreError> {
            self.inner.put_batch(parts, on_conflict)
        }
        fn lookup(&self, name: &PartName) -> Result<Option<PartInfo>, StoreError> {
            self.inner.lookup(name)
        }
        fn get_part(&self, name: &PartName) -> Result<VerifiedPart, StoreError> {
            self.inner.get_part(name)
        }
        fn known_damaged(&self, held: &PartInfo) -> Result<bool, StoreError> {
            self.inner.known_damaged(held)
        }
        fn list(&self) -> Result<Vec<PartInfo>, StoreError> {
            self.inner.list()
        }
        fn list_page(
            &self,
            after: Option<&str>,
            limit: usize,
        ) -> Result<Vec<PartInfo>, StoreError> {
            if self.pages.fetch_add(1, Ordering::Relaxed) >= self.fail_at {
                return Err(StoreError::Io {
                    context: "listing".into(),
                    source: std::io::Error::other("the disk went away"),
                });
            }
            self.inner.list_page(after, limit.min(self.cap))
        }
        fn remove(&self, name: &PartName) -> Result<bool, StoreError> {
            self.inner.remove(name)
        }
        fn sync(&self) -> Result<(), StoreError> {
            self.inner.sync()
        }
        fn stats(&self) -> Result<StoreStats, StoreError> {
            self.inner.stats()
        }
    }

    fn holding(count: usize) -> MemStore {
        let store = MemStore::default();
        for number in 0..count {
            let name = PartName::new(format!("p{number:06}")).unwrap();
            let part = VerifiedPart::hashing(name, vec![1]).unwrap();
            store.put(&part, OnConflict::Refuse).unwrap();
        }
        store
    }

    #[test]
    fn pages_hold_every_part_once_in_name_order() {
        for count in [0, 1, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE] {
            let store = holding(count);
            let pages: Vec<Vec<PartInfo>> = store_pages(&store).map(Result::unwrap).collect();
            assert!(
                pages
                    .iter()
                    .all(|page| !page.is_empty() && page.len() <= PAGE)
            );
            let listed: Vec<PartInfo> = pages.into_iter().flatten().collect();
            assert_eq!(listed, store.list().unwrap(), "{count} parts");
        }
    }

    /// Pages shorter than asked for are not taken for the end; a failed page ends the listing
    /// with its error, once.
    #[test]
    fn short_pages_go_on_and_an_error_ends_the_listing() {
        let paged = |fail_at| Paged {
            inner: holding(25),
            cap: 10,
            fail_at,
            pages: AtomicUsize::new(0),
        };
        let store = paged(usize::MAX);
        let listed: Vec<PartInfo> = store_pages(&store).flat_map(Result::unwrap).collect();
        assert_eq!(listed, store.list().unwrap());
        let store = paged(1);
        let mut pages = store_pages(&store);
        assert_eq!(pages.next().unwrap().unwrap().len(), 10);
        assert!(pages.next().unwrap().is_err());
        assert!(pages.next().is_none());
        assert!(pages.next().is_none());
    }
}
