//! A local store's parts in name order, read a page at a time: a push from a large store
//! starts offering after its first page instead of after its whole listing.

use storage::{PartInfo, StoreError};

#[cfg(doc)]
use storage::PartStore;

/// Entries read at once: enough that paging costs nothing next to offering them.
const PAGE: usize = 4096;

/// The pages of a listing read with `list_page` (a store's [`PartStore::list_page`]), each one
/// non-empty, ending at the first empty page (a short page need not be the last: a store
/// promises only up to `limit` entries) or after the first error.
pub(super) fn store_pages<'a>(
    mut list_page: impl FnMut(Option<&str>, usize) -> Result<Vec<PartInfo>, StoreError> + 'a,
) -> impl Iterator<Item = Result<Vec<PartInfo>, StoreError>> + 'a {
    let mut after: Option<String> = None;
    let mut finished = false;
    std::iter::from_fn(move || {
        if finished {
            return None;
        }
        let page = list_page(after.as_deref(), PAGE);
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
    use super::*;
    use storage::{MemStore, OnConflict, PartName, PartStore, VerifiedPart};

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
            let pages: Vec<Vec<PartInfo>> =
                store_pages(|after, limit| store.list_page(after, limit))
                    .map(Result::unwrap)
                    .collect();
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
        let store = holding(25);
        let capped = |after: Option<&str>, limit: usize| store.list_page(after, limit.min(10));
        let listed: Vec<PartInfo> = store_pages(capped).flat_map(Result::unwrap).collect();
        assert_eq!(listed, store.list().unwrap());
        let mut served = 0;
        let failing_after_one = |after: Option<&str>, limit: usize| {
            served += 1;
            if served > 1 {
                return Err(StoreError::Io {
                    context: "listing".into(),
                    source: std::io::Error::other("the disk went away"),
                });
            }
            capped(after, limit)
        };
        let mut pages = store_pages(failing_after_one);
        assert_eq!(pages.next().unwrap().unwrap().len(), 10);
        assert!(pages.next().unwrap().is_err());
        assert!(pages.next().is_none());
        assert!(pages.next().is_none());
    }
}
