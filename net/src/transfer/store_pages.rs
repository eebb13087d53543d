//! A local store's parts in name order, read a page at a time: a push from a large store
//! starts offering after its first page instead of after its whole listing.

use storage::{PartInfo, PartStore, StoreError};

/// Entries read at once: enough that paging costs nothing next to offering them.
const PAGE: usize = 4096;

/// The pages of `store`'s listing, each one non-empty, ending after the last or the first
/// error.
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
        match &page {
            Ok(page) if page.len() < PAGE => finished = true,
            Ok(page) => after = page.last().map(|info| info.name.as_str().to_owned()),
            Err(_) => finished = true,
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
    use storage::{MemStore, OnConflict, PartName, VerifiedPart};

    #[test]
    fn pages_hold_every_part_once_in_name_order() {
        let store = MemStore::default();
        let mut held = 0;
        for count in [0, 1, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE] {
            for number in held..count {
                let name = PartName::new(format!("p{number:06}")).unwrap();
                let part = VerifiedPart::hashing(name, vec![1]).unwrap();
                store.put(&part, OnConflict::Refuse).unwrap();
            }
            held = count;
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
}
