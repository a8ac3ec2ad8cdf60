//! `-V` on the blob side: every manifest of the chain is read and every
//! object it names checked (its size with `-Q`, its hash otherwise); with
//! `--deep`, the manifests must list exactly the chain's blob records.

use std::collections::HashSet;
use std::path::Path;

use super::chain_blobs;
use crate::blob::store;
use crate::blob::{Entry, Store};
use crate::error::{Error, Result};
use crate::fs::BlobRecord;
use crate::ops::Ctx;
use crate::ops::meter::Meter;
use crate::repo::Chain;
use crate::report::{Event, Phase};

/// `-V --deep`: the union of the chain's manifests must list exactly the
/// blob records the chain's bytes hold (`records`, from the structural
/// check), `gone` lines included.
pub(in crate::ops) fn compare_records(
    chain: &Chain,
    entries: &[Entry],
    mut records: Vec<BlobRecord>,
) -> Result<()> {
    records.sort();
    records.dedup();
    let listed: Vec<BlobRecord> = entries
        .iter()
        .map(|e| BlobRecord {
            oid: e.oid,
            tid: e.tid,
        })
        .collect();
    if listed == records {
        return Ok(());
    }
    let listed_set: HashSet<&BlobRecord> = listed.iter().collect();
    let found_set: HashSet<&BlobRecord> = records.iter().collect();
    let unlisted = records.iter().filter(|r| !listed_set.contains(r)).count();
    let extra = listed.iter().filter(|r| !found_set.contains(r)).count();
    let first = records
        .iter()
        .find(|r| !listed_set.contains(r))
        .map(|r| format!("first unlisted: {:016x} {:016x}", r.oid, r.tid))
        .or_else(|| {
            listed
                .iter()
                .find(|r| !found_set.contains(r))
                .map(|r| format!("first not in the data: {:016x} {:016x}", r.oid, r.tid))
        })
        .unwrap_or_default();
    Err(Error::Verification(format!(
        "the blob manifests of the chain ending with {} do not match its data: {unlisted} blob \
         record(s) of the data are in no manifest, {extra} manifest line(s) name no blob record \
         ({first}). Make a new full backup with --blob-dir (-F)",
        chain.last().path
    )))
}

/// `-V`: checks every manifest of `chain` and every object it names;
/// returns the union of the manifests (for [`compare_records`]).
pub(in crate::ops) fn verify(chain: &Chain, quick: bool, ctx: Ctx) -> Result<Vec<Entry>> {
    let (_, entries, manifests) = chain_blobs(chain)?;
    let store = Store::of(chain.repo());
    let mut seen = HashSet::new();
    let mut problems = Vec::new();
    let (mut objects, mut bytes) = (0u64, 0u64);
    let meter = Meter::new(ctx.report, Phase::Blobs, None);
    let mut buf = vec![0u8; 1 << 20];
    for e in &entries {
        crate::interrupt::check()?;
        let Some((size, hash)) = e.content else {
            problems.push(format!(
                "blob {:016x} {:016x} was missing when it was backed up",
                e.oid, e.tid
            ));
            continue;
        };
        if !seen.insert(hash) {
            continue;
        }
        objects += 1;
        bytes += size;
        let shown = store.shown(&hash);
        let Some(s) = store.size_of(&hash)? else {
            problems.push(format!("{shown} is missing"));
            continue;
        };
        if s != size {
            problems.push(format!("{shown} is {s} bytes, should be {size} bytes"));
            continue;
        }
        // A local object is opened even with -Q: one that cannot be read
        // cannot be restored (as -Q opens each data file of the chain).
        // In an object store a listing-level check is what -Q is for.
        if quick && !store.opening_is_cheap() {
            meter.add(size);
            continue;
        }
        let Some(mut file) = store.open(&hash)? else {
            problems.push(format!("{shown} is missing"));
            continue;
        };
        if !quick {
            let (got, n) =
                store::hash_copy(&mut file, None, &mut buf, Path::new(&shown), Path::new(""))?;
            if got != hash || n != size {
                problems.push(format!("{shown} does not match its hash"));
            }
        }
        meter.add(size);
    }
    if let Some(first) = problems.first() {
        return Err(Error::Verification(format!(
            "{} blob problem(s) in {}; first: {first}. The Data.fs backups are not affected; \
             a new full backup with --blob-dir (-F) stores the blobs again",
            problems.len(),
            chain.repo().dir()
        )));
    }
    ctx.report.event(&Event::BlobsVerified {
        manifests,
        objects,
        bytes,
        quick,
    });
    Ok(entries)
}
