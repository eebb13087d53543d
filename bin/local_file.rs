//! Reading a local file as a part, shared by `import` and `send`.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::Context;
use storage::{MAX_PART_SIZE, PartName, VerifiedPart, check_size};

/// A part that could not even be read: its display name and why.
pub struct Rejected(pub String, pub String);

/// Reads a file as a part named `name` or its file name; any failure is a rejection of that
/// file alone.
pub fn read_part(path: &Path, name: Option<&PartName>) -> Result<VerifiedPart, Rejected> {
    let display = match name {
        Some(name) => name.to_string(),
        None => path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
    };
    let reject = |reason: String| Rejected(display.clone(), reason);
    let name = match name {
        Some(name) => name.clone(),
        None => {
            let file_name = path
                .file_name()
                .ok_or_else(|| reject(format!("{} has no file name", path.display())))?;
            PartName::from_bytes(file_name.as_encoded_bytes()).map_err(|e| reject(e.to_string()))?
        }
    };
    let bytes = read_bounded(path).map_err(|e| reject(format!("{e:#}")))?;
    VerifiedPart::hashing(name, bytes).map_err(|e| reject(e.to_string()))
}

/// Reads a whole file, refusing one larger than a part may be before allocating for it.
fn read_bounded(path: &Path) -> anyhow::Result<Vec<u8>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let meta = file.metadata()?;
    anyhow::ensure!(!meta.is_dir(), "{} is a directory", path.display());
    check_size(&path.display().to_string(), meta.len())?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_PART_SIZE + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    check_size(&path.display().to_string(), bytes.len() as u64)?;
    Ok(bytes)
}
