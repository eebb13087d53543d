//! Choosing which of a remote peer's parts a command works on, and taking them in batches.

use net::Client;
use storage::{PartInfo, PartName, VerifiedPart};

/// Bytes of fetched parts held before they are committed or written out.
pub const BATCH_BYTES: u64 = 64 * 1024 * 1024;

/// The peer's parts named in `names` (all when empty), and the names it does not have.
pub fn select(
    client: &mut Client,
    names: &[PartName],
) -> anyhow::Result<(Vec<PartInfo>, Vec<PartName>)> {
    let remote = client.list()?;
    if names.is_empty() {
        return Ok((remote, Vec::new()));
    }
    let mut missing = Vec::new();
    let mut chosen = Vec::new();
    for name in names {
        match remote.binary_search_by(|info| info.name.cmp(name)) {
            Ok(at) => chosen.push(remote[at].clone()),
            Err(_) => missing.push(name.clone()),
        }
    }
    Ok((chosen, missing))
}

/// Fetches `parts` and hands them to `take` in batches of about [`BATCH_BYTES`]; a part that
/// fails is reported to `failed` and the others go on.
pub fn fetch_in_batches(
    client: &mut Client,
    parts: &[PartInfo],
    mut take: impl FnMut(Vec<VerifiedPart>) -> anyhow::Result<()>,
    mut failed: impl FnMut(&PartName, String),
) -> anyhow::Result<u64> {
    let mut batch = Vec::new();
    let mut batch_bytes = 0;
    let mut received = 0;
    let mut taken = Ok(());
    client.fetch(parts, |info, result| match result {
        Ok(part) => {
            received += part.size();
            batch_bytes += part.size();
            batch.push(part);
            if batch_bytes >= BATCH_BYTES && taken.is_ok() {
                batch_bytes = 0;
                taken = take(std::mem::take(&mut batch));
            }
        }
        Err(err) => failed(&info.name, err.to_string()),
    })?;
    taken?;
    if !batch.is_empty() {
        take(batch)?;
    }
    Ok(received)
}
