//! Garbage collection of the blob store after `-k` and retention: objects
//! no manifest names are removed, and only when every manifest was read.

use std::collections::HashSet;

use super::load_manifest;
use crate::blob::Store;
use crate::error::Result;
use crate::ops::Ctx;
use crate::repo::Repository;
use crate::report::Event;

/// Removes the store's objects that no readable manifest of the
/// repository names. Does nothing if any manifest cannot be read (an
/// object it names might be removed).
pub(in crate::ops) fn collect_garbage(repo: &Repository, ctx: Ctx) -> Result<()> {
    let store = Store::of(repo);
    let listing = repo.list()?;
    let mut keep = HashSet::new();
    for name in listing
        .meta_files()
        .iter()
        .filter(|n| n.ends_with(".blobs"))
    {
        match load_manifest(repo, name) {
            Ok(Some(m)) => keep.extend(m.entries.iter().filter_map(|e| e.content.map(|c| c.1))),
            // Removed meanwhile by hand: names nothing.
            Ok(None) => {}
            Err(_) => return Ok(()),
        }
    }
    let (objects, bytes) = store.sweep(&keep)?;
    if objects > 0 {
        ctx.report.event(&Event::BlobsCollected { objects, bytes });
    }
    Ok(())
}
