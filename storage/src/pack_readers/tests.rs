//! What a block read ahead may serve. Most tests rewrite bytes of the pack behind the
//! readers' back, so a read shows whether it came from the file or from a block.

use std::os::unix::fs::FileExt;

use super::*;

const PACK: u64 = 0;

/// A pack of `len` bytes, all `fill`, in a fresh directory.
fn pack_of(len: usize, fill: u8) -> (tempfile::TempDir, PackReaders) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(packs::pack_path(dir.path(), PACK), vec![fill; len]).unwrap();
    let readers = PackReaders::new(dir.path().to_path_buf());
    (dir, readers)
}

fn rewrite(dir: &tempfile::TempDir, from: u64, len: usize, fill: u8) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(packs::pack_path(dir.path(), PACK))
        .unwrap();
    file.write_all_at(&vec![fill; len], from).unwrap();
}

fn at(offset: u64, len: u64) -> BodyAt {
    BodyAt {
        pack: PACK,
        offset,
        len,
    }
}

fn read(readers: &PackReaders, offset: u64, len: u64) -> Option<Vec<u8>> {
    readers.read(at(offset, len)).unwrap()
}

/// Bytes past the settled length may still be cut back and written again (a failed append),
/// so a block stops where the index has applied, and a later read past it reads the file.
#[test]
fn a_block_holds_only_settled_bytes() {
    let (dir, readers) = pack_of(4000, 1);
    readers.settle(PACK, 2000);
    assert_eq!(read(&readers, 0, 100), Some(vec![1; 100]));
    assert_eq!(read(&readers, 150, 100), Some(vec![1; 100]));

    rewrite(&dir, 0, 4000, 2);
    assert_eq!(
        read(&readers, 300, 100),
        Some(vec![1; 100]),
        "a following read within the block is served from it"
    );
    assert_eq!(read(&readers, 1900, 100), Some(vec![1; 100]));
    readers.settle(PACK, 4000);
    assert_eq!(
        read(&readers, 2050, 100),
        Some(vec![2; 100]),
        "bytes that were not settled when the block was read come from the file"
    );
}

/// A read that does not follow the previous one (random gets) reads only its own bytes.
#[test]
fn reads_that_do_not_follow_fill_no_block() {
    let (dir, readers) = pack_of(100_000, 1);
    readers.settle(PACK, 100_000);
    assert_eq!(read(&readers, 0, 100), Some(vec![1; 100]));
    assert_eq!(read(&readers, 50_000, 100), Some(vec![1; 100]));

    rewrite(&dir, 0, 100_000, 2);
    assert_eq!(read(&readers, 50_150, 100), Some(vec![2; 100]));
    assert_eq!(read(&readers, 300, 100), Some(vec![2; 100]));
}

/// Large reads go straight to the file, and so do reads after a gap longer than a record's
/// header and name.
#[test]
fn large_reads_and_gaps_fill_no_block() {
    let (dir, readers) = pack_of(200_000, 1);
    readers.settle(PACK, 200_000);
    assert_eq!(read(&readers, 0, 100), Some(vec![1; 100]));
    assert_eq!(read(&readers, 100, 20_000), Some(vec![1; 20_000]));
    assert_eq!(read(&readers, 20_100 + 1000, 100), Some(vec![1; 100]));

    rewrite(&dir, 0, 200_000, 2);
    assert_eq!(read(&readers, 21_200, 100), Some(vec![2; 100]));
    assert_eq!(read(&readers, 21_300, 100), Some(vec![2; 100]));
}

/// A retired pack's block goes with its handle: once the file is deleted, its bytes are gone.
#[test]
fn retiring_a_pack_drops_its_block() {
    let (dir, readers) = pack_of(4000, 1);
    readers.settle(PACK, 4000);
    assert_eq!(read(&readers, 0, 100), Some(vec![1; 100]));
    assert_eq!(read(&readers, 150, 100), Some(vec![1; 100]));

    readers.retire(PACK);
    std::fs::remove_file(packs::pack_path(dir.path(), PACK)).unwrap();
    assert_eq!(read(&readers, 300, 100), None);
}

/// A pack shorter than the index says (damaged from outside) reads as a missing body, not as
/// an error and not as a block.
#[test]
fn a_pack_shorter_than_settled_reads_what_is_there() {
    let (_dir, readers) = pack_of(1000, 1);
    readers.settle(PACK, 8000);
    assert_eq!(read(&readers, 0, 100), Some(vec![1; 100]));
    assert_eq!(read(&readers, 150, 100), Some(vec![1; 100]));
    assert_eq!(read(&readers, 300, 100), Some(vec![1; 100]));
    assert_eq!(read(&readers, 420, 600), None);
}
