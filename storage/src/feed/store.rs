//! A store that publishes to a [`Feed`] what its puts newly store.

use std::sync::Arc;

use super::Feed;
use crate::{
    BatchOutcome, OnConflict, PartInfo, PartName, PartStore, PutOutcome, StoreError, StoreStats,
    VerifiedPart,
};

/// `inner`, with every plain part and manifest a put stores or replaces published to `feed`
/// once durable. Repairs and parts already held change nothing a follower sees, and are not
/// published. Everything else is `inner`'s.
pub struct FeedStore {
    inner: Arc<dyn PartStore>,
    feed: Arc<Feed>,
}

impl FeedStore {
    pub fn new(inner: Arc<dyn PartStore>, feed: Arc<Feed>) -> Self {
        Self { inner, feed }
    }

    pub fn feed(&self) -> &Arc<Feed> {
        &self.feed
    }
}

impl PartStore for FeedStore {
    fn put_batch(
        &self,
        parts: &[VerifiedPart],
        on_conflict: OnConflict,
    ) -> Result<BatchOutcome, StoreError> {
        let outcomes = self.inner.put_batch(parts, on_conflict)?;
        let published = parts.iter().zip(&outcomes).filter_map(|(part, outcome)| {
            let new = matches!(
                outcome,
                Ok(PutOutcome::Stored | PutOutcome::Replaced { .. })
            );
            (new && !part.name().is_chunk()).then(|| part.info())
        });
        self.feed.publish(published);
        Ok(outcomes)
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

    fn list_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<PartInfo>, StoreError> {
        self.inner.list_page(after, limit)
    }

    fn remove(&self, name: &PartName) -> Result<bool, StoreError> {
        self.inner.remove(name)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.inner.sync()
    }

    fn compact(&self) -> Result<u64, StoreError> {
        self.inner.compact()
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.inner.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::Since;
    use crate::{MemStore, PartKind};

    #[test]
    fn stored_and_replaced_parts_are_published_once_repeats_and_chunks_are_not() {
        let feed = Feed::new();
        let start = feed.cursor();
        let store = FeedStore::new(Arc::new(MemStore::default()), Arc::clone(&feed));
        let part = |name: &str, bytes: &[u8]| {
            VerifiedPart::hashing(PartName::new(name).unwrap(), bytes.to_vec()).unwrap()
        };
        let chunk_bytes = b"a chunk".to_vec();
        let chunk_name = format!(
            "{}{}",
            crate::CHUNK_PREFIX,
            crate::PartHash::of(&chunk_bytes)
        );
        store.put(&part("a", b"one"), OnConflict::Refuse).unwrap();
        store.put(&part("a", b"one"), OnConflict::Refuse).unwrap();
        store.put(&part("a", b"two"), OnConflict::Replace).unwrap();
        store
            .put(&part(&chunk_name, &chunk_bytes), OnConflict::Refuse)
            .unwrap();
        let Since::Entries(entries) = feed.since(start, 10) else {
            panic!("a gap");
        };
        let seen: Vec<_> = entries
            .iter()
            .map(|(seq, info)| (*seq, info.hash))
            .collect();
        let hash = |bytes: &[u8]| crate::PartHash::of(bytes);
        assert_eq!(seen, [(1, hash(b"one")), (2, hash(b"two"))]);
        assert!(entries.iter().all(|(_, info)| info.kind == PartKind::Plain));
    }
}
