//! The blob side of `-B`, `-R` and `-V` (`--blob-dir`), and the blob
//! store's garbage collection after `-k` and retention.
//!
//! **Backup.** After the Data.fs step has written the data file, its
//! `.dat` line and its `.index`, the blob records of the backed-up byte
//! range are read from the same open Data.fs ([`fs::blob_records`]), and
//! each named file `<blob dir>/<layout path>/<tid>.blob` is stored. A file
//! a concurrent pack has moved is taken from `<blob dir>.old/`; one found
//! nowhere is recorded as `gone` and the backup exits 3. Contents are
//! committed to the store before the manifest naming them is written. A
//! data file of the continued chain that has no manifest (a crash, a
//! backup without `--blob-dir`, or ZODB's repozo) gets one in the same
//! run, from the same Data.fs, whose prefix the backup decision has just
//! matched against the chain.
//!
//! **Restore.** The union of the selected chain's manifests is written as
//! a new tree beside the blob directory (`<dir>.repozo-new-<pid>`), every
//! content checked against its hash, the filesystem synced; only then is
//! the new Data.fs written and both swapped in. See [`StagedTree`].
//!
//! **Verify.** Every manifest of the chain is read (its last line checks
//! it is whole) and each object it names is checked: its size with `-Q`,
//! its BLAKE3 hash otherwise.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use super::Ctx;
use super::meter::Meter;
use crate::blob::manifest::MAX_LINE;
use crate::blob::store;
use crate::blob::{Entry, Hash, Kind, Layout, Manifest, Store};
use crate::error::{Error, IoContext, Result};
use crate::failpoint;
use crate::fs::{self, BlobRecord};
use crate::io::syncfs;
use crate::repo::{self, Chain, Listing, Repository};
use crate::report::{Event, Phase};

/// A blob directory being backed up (`--blob-dir`).
#[derive(Debug, Clone)]
pub struct BlobDir {
    dir: PathBuf,
    old: PathBuf,
    shown: String,
    layout: Layout,
}

impl BlobDir {
    /// Checks that `dir` is a directory and reads its layout. Called
    /// before the Data.fs step, so a wrong `--blob-dir` writes nothing.
    pub fn open(dir: &str) -> Result<BlobDir> {
        let path = PathBuf::from(dir);
        let meta = std::fs::metadata(&path).at(&path)?;
        if !meta.is_dir() {
            return Err(Error::Source(format!(
                "--blob-dir {dir} is not a directory: give the blob directory of the \
                 Data.fs (blob-dir in zope.conf or the ZEO configuration); nothing was written"
            )));
        }
        // Listed (ZODB's layout detection does) and entered (every blob
        // file is opened through it): found out here, the error names the
        // directory, not a file in it, and comes before the Data.fs step.
        std::fs::read_dir(&path).at(&path)?;
        std::fs::metadata(path.join(".")).at(&path)?;
        let layout = Layout::of_dir(&path)?;
        let trimmed = dir.trim_end_matches('/');
        Ok(BlobDir {
            old: PathBuf::from(format!("{trimmed}.old")),
            dir: path,
            shown: dir.to_string(),
            layout,
        })
    }

    /// Opens the file of `rec`: in the blob directory, else in `.old`.
    fn open_file(&self, rec: &BlobRecord) -> Result<Option<(File, PathBuf)>> {
        let rel = self.layout.file(rec.oid, rec.tid);
        for base in [&self.dir, &self.old] {
            let path = base.join(&rel);
            match crate::io::open_regular(&path) {
                Ok(f) => return Ok(Some((f, path))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {}
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        Ok(None)
    }
}

/// A byte range of the Data.fs that needs a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Range {
    /// The data file's base name.
    pub data: String,
    /// Full or incremental.
    pub kind: Kind,
    /// Range start.
    pub start: u64,
    /// Range end.
    pub end: u64,
}

/// The manifest name of a data file name.
pub(super) fn manifest_name(data: &str) -> String {
    repo::with_ext(data, ".blobs")
}

/// The ranges of `chain`'s data files that have no manifest in `listing`,
/// or one that is not whole ([`Manifest::looks_whole`]: empty, cut short
/// or garbage), which a restore would refuse: the backup writes it again.
pub(super) fn unmanifested(chain: &mut Chain, listing: &Listing) -> Result<Vec<Range>> {
    let names: HashSet<String> = chain
        .files()
        .iter()
        .filter(|f| {
            let name = manifest_name(&f.name);
            !listing.has_meta(&name) || !looks_whole(chain.repo(), &name)
        })
        .map(|f| f.name.clone())
        .collect();
    let Some(entries) = chain.entries()? else {
        return Ok(Vec::new());
    };
    Ok(entries
        .iter()
        .filter(|e| names.contains(e.base_name()))
        .map(|e| Range {
            data: e.base_name().to_string(),
            kind: if repo::is_full(e.base_name()) {
                Kind::Full
            } else {
                Kind::Incremental
            },
            start: e.start,
            end: e.end,
        })
        .collect())
}

/// Whether any manifest of `chain` records missing blob files (reads
/// only their first lines).
pub(super) fn chain_has_holes(chain: &Chain, listing: &Listing) -> bool {
    chain.files().iter().any(|f| {
        let name = manifest_name(&f.name);
        listing.has_meta(&name) && peek_gone(chain.repo(), &name).is_some_and(|n| n > 0)
    })
}

/// How many revisions the manifest `name` of `repo` records as missing,
/// from its first line ([`Manifest::peek_gone_in`]); `None` if it cannot
/// be read as a manifest.
pub(super) fn peek_gone(repo: &Repository, name: &str) -> Option<u64> {
    Manifest::peek_gone_in(&repo.read_range(name, 0, MAX_LINE).ok()?)
}

/// Whether the manifest `name` of `repo` looks whole, from its first and
/// last lines ([`Manifest::looks_whole_parts`]).
fn looks_whole(repo: &Repository, name: &str) -> bool {
    let ends = || -> Result<(Vec<u8>, Vec<u8>)> {
        let len = repo.size(name)?.unwrap_or(0);
        let head = repo.read_range(name, 0, MAX_LINE)?;
        let tail = repo.read_range(name, len.saturating_sub(MAX_LINE), MAX_LINE)?;
        Ok((head, tail))
    };
    ends().is_ok_and(|(head, tail)| Manifest::looks_whole_parts(&head, &tail))
}

/// Reads and checks the manifest `name` of `repo`; `None` if there is no
/// such file.
fn load_manifest(repo: &Repository, name: &str) -> Result<Option<Manifest>> {
    match repo.open_optional(name)? {
        None => Ok(None),
        Some(r) => Manifest::parse(r, &repo.path(name)).map(Some),
    }
}

/// Backs up the blobs of `ranges` of the open Data.fs `src` (shown as
/// `shown`), writing one manifest per range. Fails with
/// [`Error::BlobsMissing`] (exit 3) after writing everything if some
/// file was found nowhere.
pub(super) fn backup(
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

/// Runs `work(i, buffer)` for every `i` in `0..n` on up to `workers`
/// threads (each with its own 1 MiB buffer) and returns the results in
/// order of `i`; `done` sees each result on this thread as it arrives
/// (progress). Blob work is many small files: creating them, or waiting
/// for an object store's round trips, not copying bytes, bounds it, and
/// those overlap. Stops at the first error (the others at their next
/// item) and returns it.
fn in_parallel<T: Send>(
    n: usize,
    workers: usize,
    work: impl Fn(usize, &mut [u8]) -> Result<T> + Sync,
    mut done: impl FnMut(&T),
) -> Result<Vec<T>> {
    let workers = workers.clamp(1, n.max(1));
    let next = AtomicUsize::new(0);
    let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<T>)>();
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, work) = (&next, &work);
            std::thread::Builder::new()
                .spawn_scoped(scope, move || {
                    let mut buf = vec![0u8; 1 << 20];
                    loop {
                        let i = next.fetch_add(1, AtomicOrdering::Relaxed);
                        if i >= n {
                            break;
                        }
                        let got = crate::interrupt::check().and_then(|()| work(i, &mut buf));
                        let failed = got.is_err();
                        if tx.send((i, got)).is_err() || failed {
                            break;
                        }
                    }
                })
                .map_err(Error::Thread)?;
        }
        drop(tx);
        let mut first_error = None;
        for (i, got) in rx {
            match got {
                Ok(got) => {
                    done(&got);
                    out[i] = Some(got);
                }
                Err(e) => {
                    // Stop the others at their next item.
                    next.store(n, AtomicOrdering::Relaxed);
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    })?;
    out.into_iter()
        .map(|g| g.ok_or_else(|| Error::Source("a blob worker stopped early".into())))
        .collect()
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

/// The blob set of `chain`: the union of its manifests, and the layout of
/// the newest. Fails, naming the data file, when one has no manifest.
pub(super) fn chain_blobs(chain: &Chain) -> Result<(Layout, Vec<Entry>, usize)> {
    let mut union: Vec<Entry> = Vec::new();
    let mut layout = Layout::Bushy;
    let mut count = 0;
    for file in chain.files() {
        let name = manifest_name(&file.name);
        let path = chain.path_of(&name);
        let m = match load_manifest(chain.repo(), &name)? {
            Some(m) => m,
            None => {
                return Err(Error::Verification(format!(
                    "{} has no blob manifest ({path}): it was backed up without --blob-dir or \
                     by ZODB's repozo. Run a backup with --blob-dir to add it, or recover \
                     without --blob-dir",
                    file.path
                )));
            }
        };
        if m.data != file.name {
            return Err(Error::Verification(format!(
                "{path} describes {}, not {}: the manifest was renamed or copied; make a new \
                 full backup with --blob-dir (-F)",
                m.data, file.name
            )));
        }
        layout = m.layout;
        union.extend(m.entries);
        count += 1;
    }
    union.sort();
    union.dedup_by_key(|e| (e.oid, e.tid));
    Ok((layout, union, count))
}

/// Whether the chain has at least one manifest (then `-V` checks blobs).
pub(super) fn chain_has_manifests(chain: &Chain) -> bool {
    chain.files().iter().any(|f| {
        chain
            .repo()
            .exists(&manifest_name(&f.name))
            .unwrap_or(false)
    })
}

/// `-V --deep`: the union of the chain's manifests must list exactly the
/// blob records the chain's bytes hold (`records`, from the structural
/// check), `gone` lines included.
pub(super) fn compare_records(
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
pub(super) fn verify(chain: &Chain, quick: bool, ctx: Ctx) -> Result<Vec<Entry>> {
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

/// Removes the store's objects that no readable manifest of the
/// repository names. Does nothing if any manifest cannot be read (an
/// object it names might be removed).
pub(super) fn collect_garbage(repo: &Repository, ctx: Ctx) -> Result<()> {
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

/// A restored blob tree, complete and synced beside the blob directory,
/// waiting to be swapped in ([`StagedTree::swap_in`]). Dropping it without
/// swapping removes it.
pub struct StagedTree {
    new: PathBuf,
    target: PathBuf,
    files: u64,
    bytes: u64,
    gone: Vec<String>,
    swapped: bool,
}

impl StagedTree {
    /// Writes the blob set of `chain` as a tree beside `target`, checking
    /// every content against its hash. Nothing existing is touched.
    pub fn build(chain: &Chain, target: &str, ctx: Ctx) -> Result<StagedTree> {
        let (layout, entries, _) = chain_blobs(chain)?;
        let target = PathBuf::from(target.trim_end_matches('/'));
        // Something else under that name (a file given by mistake) would
        // be renamed aside and replaced by the tree.
        match std::fs::metadata(&target) {
            Ok(m) if !m.is_dir() => {
                return Err(Error::Source(format!(
                    "--blob-dir {} exists and is not a directory: give the blob directory to \
                     restore into (it is created if missing); nothing was restored",
                    target.display()
                )));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&target, e)),
        }
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .ok_or_else(|| {
                Error::Source(format!(
                    "--blob-dir {} names no directory",
                    target.display()
                ))
            })?
            .to_string_lossy()
            .into_owned();
        let new = parent.join(format!("{name}.repozo-new-{}", std::process::id()));
        if new.exists() {
            std::fs::remove_dir_all(&new).at(&new)?;
        }
        std::fs::create_dir(&new).at(&new)?;
        let mut tree = StagedTree {
            new,
            target,
            files: 0,
            bytes: 0,
            gone: Vec::new(),
            swapped: false,
        };
        tree.fill(&Store::of(chain.repo()), layout, &entries, ctx)?;
        Ok(tree)
    }

    fn fill(&mut self, store: &Store, layout: Layout, entries: &[Entry], ctx: Ctx) -> Result<()> {
        std::fs::write(self.new.join(crate::blob::layout::MARKER), layout.name())
            .at(self.new.join(crate::blob::layout::MARKER))?;
        std::fs::create_dir(self.new.join("tmp")).at(self.new.join("tmp"))?;
        let meter = Meter::new(ctx.report, Phase::Blobs, None);
        let mut made: HashSet<String> = HashSet::new();
        let mut todo = Vec::with_capacity(entries.len());
        for e in entries {
            let rel = layout.file(e.oid, e.tid);
            let Some(content) = e.content else {
                self.gone.push(rel);
                continue;
            };
            let dir = layout.oid_dir(e.oid);
            if made.insert(dir.clone()) {
                let d = self.new.join(&dir);
                std::fs::create_dir_all(&d).at(&d)?;
            }
            todo.push((e, content, self.new.join(&rel)));
        }
        let restore = |i: usize, buf: &mut [u8]| {
            let (e, content, dest) = &todo[i];
            restore_file(store, e, *content, dest, buf)
        };
        let sizes = in_parallel(todo.len(), store.parallelism(), restore, |n| meter.add(*n))?;
        self.files += sizes.len() as u64;
        self.bytes += sizes.iter().sum::<u64>();
        syncfs(&self.new)
    }

    /// Swaps the new tree in: the old one (if any) is renamed aside, the
    /// new one into place, the parent synced. Call [`StagedTree::finish`]
    /// once the Data.fs is in place too, or [`StagedTree::roll_back`].
    pub fn swap_in(&mut self) -> Result<()> {
        let aside = self.aside();
        if self.target.exists() {
            std::fs::rename(&self.target, &aside).at(&self.target)?;
        }
        if let Err(e) = std::fs::rename(&self.new, &self.target) {
            let _ = std::fs::rename(&aside, &self.target);
            return Err(Error::io(&self.target, e));
        }
        self.swapped = true;
        failpoint::hit("recover:blobs-swapped");
        syncfs(&self.target)
    }

    /// Puts the old tree back after a failed Data.fs step.
    pub fn roll_back(mut self) {
        if self.swapped {
            let _ = std::fs::rename(&self.target, &self.new);
            let _ = std::fs::rename(self.aside(), &self.target);
            self.swapped = false;
        }
    }

    /// Removes the old tree; reports what was restored. Returns the
    /// revisions the manifests record as missing (restored without them).
    pub fn finish(mut self, ctx: Ctx) -> Result<Vec<String>> {
        let aside = self.aside();
        if aside.exists() {
            remove_tree(&aside)?;
        }
        ctx.report.event(&Event::BlobsRestored {
            dir: self.target.display().to_string(),
            files: self.files,
            bytes: self.bytes,
        });
        self.swapped = false;
        self.new = PathBuf::new();
        Ok(std::mem::take(&mut self.gone))
    }

    fn aside(&self) -> PathBuf {
        let mut s = self.target.clone().into_os_string();
        s.push(format!(".repozo-old-{}", std::process::id()));
        PathBuf::from(s)
    }
}

impl Drop for StagedTree {
    fn drop(&mut self) {
        if !self.swapped && !self.new.as_os_str().is_empty() && self.new.exists() {
            let _ = remove_tree(&self.new);
        }
    }
}

/// Exit 3 ([`Error::BlobsNotRestored`]) when a restore left out blob
/// files the manifests record as missing.
pub(super) fn all_restored(gone: &[String]) -> Result<()> {
    match gone.first() {
        None => Ok(()),
        Some(first) => Err(Error::BlobsNotRestored {
            count: gone.len(),
            first: first.clone(),
        }),
    }
}

/// Removes a tree whose files may be read-only.
fn remove_tree(path: &Path) -> Result<()> {
    std::fs::remove_dir_all(path).at(path)
}

/// `-R --incremental --blob-dir`: brings an existing blob directory (a
/// standby's) to the blob set of `chain` in place, copying only what it
/// lacks. Revisions already there are kept when their size matches (`-Q`)
/// or their hash does (default, which reads them); others are written
/// from the store (checked against their hash) under a temporary name and
/// renamed over. Files the set does not name are removed only by
/// [`TreeSync::finish`], after the Data.fs is up to date, so that a crash
/// in between leaves extra files, never missing ones.
pub struct TreeSync {
    target: PathBuf,
    extras: Vec<PathBuf>,
    copied: u64,
    bytes: u64,
    kept: u64,
    gone: Vec<String>,
}

impl TreeSync {
    /// Adds and repairs what `target` lacks (see the type's doc).
    pub fn prepare(chain: &Chain, target: &str, quick: bool, ctx: Ctx) -> Result<TreeSync> {
        let (layout, entries, _) = chain_blobs(chain)?;
        let target = PathBuf::from(target.trim_end_matches('/'));
        std::fs::create_dir_all(&target).at(&target)?;
        let have = Layout::of_dir(&target)?;
        if have != layout {
            return Err(Error::Source(format!(
                "{} is a {} blob directory, the backups are {}: recover without \
                 --incremental to rebuild it",
                target.display(),
                have.name(),
                layout.name()
            )));
        }
        let marker = target.join(crate::blob::layout::MARKER);
        if !marker.exists() {
            std::fs::write(&marker, layout.name()).at(&marker)?;
        }
        std::fs::create_dir_all(target.join("tmp")).at(target.join("tmp"))?;
        let store = Store::of(chain.repo());
        let meter = Meter::new(ctx.report, Phase::Blobs, None);
        let mut sync = TreeSync {
            target,
            extras: Vec::new(),
            copied: 0,
            bytes: 0,
            kept: 0,
            gone: Vec::new(),
        };
        let mut wanted = HashSet::new();
        let mut todo = Vec::with_capacity(entries.len());
        for e in &entries {
            let rel = layout.file(e.oid, e.tid);
            wanted.insert(PathBuf::from(&rel));
            match e.content {
                None => sync.gone.push(rel),
                Some(content) => todo.push((e, content, sync.target.join(&rel))),
            }
        }
        let target = &sync.target;
        // `Some(bytes)` when the revision was written, `None` when kept.
        let bring = |i: usize, buf: &mut [u8]| -> Result<Option<u64>> {
            let (e, (size, hash), dest) = &todo[i];
            let current = match std::fs::metadata(dest) {
                Ok(m) if m.len() == *size && quick => true,
                Ok(m) if m.len() == *size => {
                    let mut f = crate::io::open_regular(dest).at(dest)?;
                    store::hash_copy(&mut f, None, buf, dest, dest)?.0 == *hash
                }
                _ => false,
            };
            if current {
                return Ok(None);
            }
            let dir = target.join(layout.oid_dir(e.oid));
            std::fs::create_dir_all(&dir).at(&dir)?;
            let tmp = dest.with_extension("blob.repozo-tmp");
            let _ = std::fs::remove_file(&tmp);
            let n = restore_file(&store, e, (*size, *hash), &tmp, buf)?;
            std::fs::rename(&tmp, dest).at(dest)?;
            Ok(Some(n))
        };
        let done = in_parallel(todo.len(), store.parallelism(), bring, |n| {
            if let Some(n) = n {
                meter.add(*n);
            }
        })?;
        for n in done {
            match n {
                Some(n) => {
                    sync.copied += 1;
                    sync.bytes += n;
                }
                None => sync.kept += 1,
            }
        }
        syncfs(&sync.target)?;
        sync.extras = blob_files(&sync.target)?
            .into_iter()
            .filter(|rel| !wanted.contains(rel))
            .map(|rel| sync.target.join(rel))
            .collect();
        Ok(sync)
    }

    /// Removes the revisions the set does not name; reports. Returns the
    /// revisions the manifests record as missing.
    pub fn finish(self, ctx: Ctx) -> Result<Vec<String>> {
        for path in &self.extras {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        ctx.report.event(&Event::BlobsSynced {
            dir: self.target.display().to_string(),
            copied: self.copied,
            bytes: self.bytes,
            kept: self.kept,
            removed: self.extras.len() as u64,
        });
        Ok(self.gone)
    }
}

/// The `*.blob` files under a blob directory, relative to it (`tmp/` and
/// hidden entries at its top are not revisions).
fn blob_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for entry in std::fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            let name = entry.file_name();
            if rel.as_os_str().is_empty()
                && (name == "tmp" || name.as_encoded_bytes().starts_with(b"."))
            {
                continue;
            }
            let kind = entry.file_type().at(entry.path())?;
            if kind.is_dir() {
                stack.push(rel.join(&name));
            } else if name.as_encoded_bytes().ends_with(b".blob") {
                out.push(rel.join(&name));
            }
        }
    }
    Ok(out)
}

/// Writes stored object `content` of revision `e` to the new read-only
/// file `dest`, checking it against its hash; returns its size. A
/// damaged object leaves no `dest`.
fn restore_file(
    store: &Store,
    e: &Entry,
    (size, hash): (u64, Hash),
    dest: &Path,
    buf: &mut [u8],
) -> Result<u64> {
    let src_path = PathBuf::from(store.shown(&hash));
    let Some(mut src) = store.open(&hash)? else {
        return Err(Error::Verification(format!(
            "{} (blob {:016x} {:016x}) is missing from the blob store. Nothing was restored; \
             restore an earlier date, or make a new full backup with --blob-dir if the blob \
             directory still has the file",
            src_path.display(),
            e.oid,
            e.tid
        )));
    };
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(dest)
        .at(dest)?;
    let copied = store::hash_copy(&mut src, Some(&mut out), buf, &src_path, dest);
    match copied {
        Ok((got, n)) if got == hash && n == size => Ok(n),
        failed => {
            let _ = std::fs::remove_file(dest);
            Err(failed.err().unwrap_or_else(|| damaged_object(&src_path, e)))
        }
    }
}

/// The error for a stored object whose content no longer matches its hash.
fn damaged_object(path: &Path, e: &Entry) -> Error {
    Error::Verification(format!(
        "{} (blob {:016x} {:016x}) is damaged: its content no longer matches the hash it is \
         stored under. Nothing was restored; restore an earlier date, or make a new full \
         backup with --blob-dir if the blob directory still has the file",
        path.display(),
        e.oid,
        e.tid
    ))
}
