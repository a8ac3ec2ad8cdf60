//! Backup of the blob files a byte range of the Data.fs names: each file
//! is stored (read once, hashed, committed to the store) before the
//! manifest naming it is written.

use std::collections::HashMap;
use std::fs::File;

use super::{BlobDir, Range, load_manifest, manifest_name};
use crate::blob::store;
use crate::blob::{Entry, Hash, Kind, Manifest, Store};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::fs::{self, BlobRecord};
use crate::ops::Ctx;
use crate::ops::meter::Meter;
use crate::ops::workers::in_parallel;
use crate::repo::{Listing, Repository};
use crate::report::{Event, Phase};

/// Backs up the blobs of `ranges` of the open Data.fs `src` (shown as
/// `shown`), writing one manifest per range. Fails with
/// [`Error::BlobsMissing`] (exit 3) after writing everything if some
/// file was found nowhere.
pub(in crate::ops) fn backup(
    repo: &Repository,
    listing: &Listing,
    src: &File,
    shown: &str,
    blobs: &BlobDir,
    ranges: &[Range],
    ctx: Ctx,
) -> Result<()> {
    failpoint::hit("backup:blobs-start");
    let store = Store::of(repo);
    // Hashes already known by (oid, tid): blob files are never rewritten,
    // so a revision stored once need not be read again (a full backup
    // after a pack then reads no blob file it has stored before).
    let known = if ranges.iter().any(|r| r.kind == Kind::Full) || ranges.len() > 1 {
        known_revisions(repo, listing)
    } else {
        HashMap::new()
    };
    // An object store is listed once rather than asked per known revision.
    let in_store = if known.is_empty() {
        None
    } else {
        store.sizes()?
    };
    let writer = store.writer()?;
    let meter = Meter::new(ctx.report, Phase::Blobs, None);
    let mut manifests = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    for range in ranges {
        let mut records = fs::blob_records(src, shown, range.start, range.end)?;
        records.sort();
        records.dedup();
        let (mut stored, mut bytes, mut reused) = (0u64, 0u64, 0u64);
        let mut entries = Vec::with_capacity(records.len());
        let mut gone = 0u64;
        let got = fetch_all(
            writer.as_ref(),
            blobs,
            &store,
            &known,
            in_store.as_ref(),
            &records,
            &meter,
        )?;
        for (rec, got) in records.iter().zip(got) {
            let content = match got {
                Got::Known(size, hash) | Got::Stored(size, hash, false) => {
                    reused += 1;
                    Some((size, hash))
                }
                Got::Stored(size, hash, true) => {
                    stored += 1;
                    bytes += size;
                    Some((size, hash))
                }
                Got::Missing => {
                    let path = blobs.dir.join(blobs.layout.file(rec.oid, rec.tid));
                    let path = path.display().to_string();
                    ctx.report.event(&Event::BlobMissing { path: path.clone() });
                    missing.push(path);
                    gone += 1;
                    None
                }
            };
            entries.push(Entry {
                oid: rec.oid,
                tid: rec.tid,
                content,
            });
        }
        let manifest = Manifest {
            layout: blobs.layout,
            data: range.data.clone(),
            kind: range.kind,
            start: range.start,
            end: range.end,
            entries,
        };
        manifests.push((manifest, stored, bytes, reused, gone));
    }
    writer.commit()?;
    let mut last_with_holes = None;
    for (manifest, stored, bytes, reused, gone) in manifests {
        let name = manifest_name(&manifest.data);
        let path = repo.path(&name);
        crate::interrupt::check()?;
        // Replaces a manifest that was not whole (see `unmanifested`).
        repo.write_whole(&name, &manifest.to_bytes())?;
        failpoint::hit("backup:manifest-written");
        if gone > 0 {
            last_with_holes = Some(path.clone());
        }
        ctx.report.event(&Event::BlobsBackedUp {
            manifest: path,
            records: manifest.entries.len() as u64,
            stored,
            bytes,
            reused,
            missing: gone,
        });
    }
    write_state(&store, ranges)?;
    match last_with_holes {
        None => Ok(()),
        Some(manifest) => Err(Error::BlobsMissing {
            count: missing.len(),
            dir: blobs.shown.clone(),
            first: missing.first().cloned().unwrap_or_default(),
            manifest,
        }),
    }
}

/// What became of one blob record in a backup.
enum Got {
    /// Already stored under this (size, hash): not read.
    Known(u64, Hash),
    /// Read and stored (or found stored: `false`).
    Stored(u64, Hash, bool),
    /// Neither in the blob directory nor in `.old`.
    Missing,
}

/// Stores the file of every record, on [`Store::parallelism`] threads,
/// in the order of `records`; a revision in `known` whose object is
/// stored (by `stored`, [`Store::sizes`], if given) is not read again.
/// Progress is reported from this thread.
fn fetch_all(
    writer: &dyn crate::backend::ObjectWriter,
    blobs: &BlobDir,
    store: &Store,
    known: &HashMap<(u64, u64), (u64, Hash)>,
    stored: Option<&HashMap<Hash, u64>>,
    records: &[BlobRecord],
    meter: &Meter,
) -> Result<Vec<Got>> {
    let fetch_one = |i: usize, buf: &mut [u8]| -> Result<Got> {
        let rec = &records[i];
        if let Some(&(size, hash)) = known.get(&(rec.oid, rec.tid)) {
            let have = match stored {
                Some(sizes) => sizes.get(&hash).copied(),
                None => store.size_of(&hash)?,
            };
            if have == Some(size) {
                return Ok(Got::Known(size, hash));
            }
        }
        Ok(match blobs.open_file(rec)? {
            Some((mut file, path)) => {
                let store::Stored { hash, size, new } = writer.put(&mut file, &path, buf)?;
                Got::Stored(size, hash, new)
            }
            None => Got::Missing,
        })
    };
    in_parallel(records.len(), store.parallelism(), fetch_one, |got| {
        if let Got::Stored(size, ..) = got {
            meter.add(*size);
        }
    })
}

/// `blobs/STATE` ([`Store::touch_state`]), naming the last manifest.
fn write_state(store: &Store, ranges: &[Range]) -> Result<()> {
    store.touch_state(ranges.last().map_or("", |r| r.data.as_str()))
}

/// Every (oid, tid) → (size, hash) the repository's readable manifests
/// record. Unreadable manifests are skipped: this only saves reading.
fn known_revisions(repo: &Repository, listing: &Listing) -> HashMap<(u64, u64), (u64, Hash)> {
    let mut known = HashMap::new();
    for name in listing
        .meta_files()
        .iter()
        .filter(|n| n.ends_with(".blobs"))
    {
        if let Ok(Some(m)) = load_manifest(repo, name) {
            for e in m.entries {
                if let Some(c) = e.content {
                    known.insert((e.oid, e.tid), c);
                }
            }
        }
    }
    known
}
