//! `-B`: full or incremental backup, chosen as repozo chooses.

use std::io::Write;
use std::path::Path;

use super::Ctx;
use super::blobs::{self, BlobDir};
use super::meter::Meter;
use super::retention::{self, Retention, RetentionOutcome};
use super::source::Source;
use crate::blob::Kind;
use crate::error::{Error, IoContext, Result};
use crate::failpoint;
use crate::fs;
use crate::index;
use crate::io::{CHUNK, Digests, ParallelGzip};
use crate::lock;
use crate::names;
use crate::repo::{self, Chain, DatEntry, Listing, RepoGuard, Repository, packdelta, sidecar};
use crate::report::{ChainProblem, Event, FullReason, Phase};

/// Options of a backup (`-B`).
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// Repository directory (`-r`), as given.
    pub repository: String,
    /// Source Data.fs (`-f`).
    pub file: String,
    /// Force a full backup (`-F`). Default: incremental when possible.
    pub full: bool,
    /// Decide by the md5 of the last `.dat` entry's range only (`-Q`)
    /// instead of the whole repository and Data.fs. Default: off.
    pub quick: bool,
    /// gzip the new file (`-z`). Default: off.
    pub gzip: bool,
    /// After a full backup, delete all older backups (`-k`). Default: off.
    pub kill_old: bool,
    /// How long to wait for another backup holding the repository lock.
    /// Default: [`lock::DEFAULT_WAIT`] (60 s).
    pub lock_wait: Option<std::time::Duration>,
    /// Also back up the blobs of this blob directory (`--blob-dir`; see
    /// [`super::blobs`]). Default: `None`, the Data.fs only.
    pub blob_dir: Option<String>,
    /// After a pack, write a pack delta against the last backed-up state
    /// instead of a plain full backup (`--pack-delta`;
    /// [`crate::repo::packdelta`]). Default: off.
    pub pack_delta: bool,
}

/// What a backup did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupOutcome {
    /// Wrote a full backup of `[0, end)` to `dest`.
    Full {
        /// The new data file.
        dest: String,
        /// Committed end of the Data.fs.
        end: u64,
        /// md5 hex of the bytes backed up (the new `.dat` line's).
        md5: String,
        /// Bytes the new file takes in the repository (compressed, with
        /// `-z`).
        stored: u64,
    },
    /// Wrote `[start, end)` to `dest`.
    Incremental {
        /// The new data file.
        dest: String,
        /// Where the increment starts (the repository's end).
        start: u64,
        /// Committed end of the Data.fs.
        end: u64,
        /// md5 hex of the bytes backed up (the new `.dat` line's).
        md5: String,
        /// Bytes the new file takes in the repository.
        stored: u64,
    },
    /// The repository already holds every committed byte.
    NothingToDo,
}

/// Backs up `opts.file` into `opts.repository` (repozo's `do_backup`).
///
/// Makes a full backup with `-F`, into an empty repository, when the
/// Data.fs shrank or its backed-up bytes changed (a pack); otherwise an
/// incremental one of the bytes committed since, or nothing if there are
/// none. Only committed transactions are copied (up to ZODB's `getSize()`).
pub fn backup(opts: &BackupOptions, ctx: Ctx) -> Result<BackupOutcome> {
    let repo = open_for_backup(opts)?;
    let held = repo.lock(opts.lock_wait.unwrap_or(lock::DEFAULT_WAIT))?;
    backup_locked(&repo, &held, opts, ctx)
}

/// The repository of a backup.
fn open_for_backup(opts: &BackupOptions) -> Result<Repository> {
    Repository::open(&opts.repository)
}

/// [`backup()`], then, only if it succeeded and still under the same
/// repository lock, `retention` ([`retention`](super::retention)). The
/// outer error is the backup's; the inner result is the retention's (the
/// backup is complete either way). Meant without `opts.kill_old`, which
/// leaves a single chain anyway.
pub fn backup_and_retain(
    opts: &BackupOptions,
    retention: &Retention,
    ctx: Ctx,
) -> Result<(BackupOutcome, Result<RetentionOutcome>)> {
    let repo = open_for_backup(opts)?;
    let held = repo.lock(opts.lock_wait.unwrap_or(lock::DEFAULT_WAIT))?;
    let outcome = backup_locked(&repo, &held, opts, ctx)?;
    Ok((outcome, retention::retain_locked(&repo, retention, ctx)))
}

fn backup_locked(
    repo: &Repository,
    held: &RepoGuard,
    opts: &BackupOptions,
    ctx: Ctx,
) -> Result<BackupOutcome> {
    // A wrong --blob-dir is found before anything is written.
    let blob_dir = opts.blob_dir.as_deref().map(BlobDir::open).transpose()?;
    failpoint::hit("backup:locked");
    let mut listing = repo.list()?;
    repo.remove_leftovers(&listing, ctx.report);
    let (outcome, src, mut ranges) =
        backup_data(repo, held, &mut listing, opts, blob_dir.is_some(), ctx)?;
    let Some(blob_dir) = blob_dir else {
        return finish(repo, &listing, outcome, opts, ctx);
    };
    match &outcome {
        BackupOutcome::Full { dest, end, .. } => ranges.push(blobs::Range {
            data: repo::base_name(dest).to_string(),
            kind: Kind::Full,
            start: 0,
            end: *end,
        }),
        BackupOutcome::Incremental {
            dest, start, end, ..
        } => ranges.push(blobs::Range {
            data: repo::base_name(dest).to_string(),
            kind: Kind::Incremental,
            start: *start,
            end: *end,
        }),
        BackupOutcome::NothingToDo => {}
    }
    if !ranges.is_empty() {
        let src = match src {
            Some(src) => src,
            None => Source::open(&opts.file)?,
        };
        let done = blobs::backup(
            repo, &listing, &src.file, &src.path, &blob_dir, &ranges, ctx,
        );
        if let Err(e) = done {
            if !matches!(e, Error::BlobsMissing { .. }) {
                // The Data.fs side is recorded; say what the next run does.
                ctx.report.event(&Event::BlobsNotBackedUp(
                    ranges.iter().map(|r| r.data.clone()).collect(),
                ));
            }
            return Err(e);
        }
    }
    finish(repo, &listing, outcome, opts, ctx)
}

/// `-k` after a full backup (and its blobs) is complete.
fn finish(
    repo: &Repository,
    listing: &Listing,
    outcome: BackupOutcome,
    opts: &BackupOptions,
    ctx: Ctx,
) -> Result<BackupOutcome> {
    if let (true, BackupOutcome::Full { dest, .. }) = (opts.kill_old, &outcome) {
        let mut listing = listing.clone();
        listing.push(repo::base_name(dest).to_string());
        delete_old_backups(repo, &listing, ctx)?;
        blobs::collect_garbage(repo, ctx)?;
    }
    Ok(outcome)
}

/// The Data.fs step: decides and writes the backup. Returns what it did,
/// the Data.fs it read (if it opened it), and, when `with_blobs` and the
/// chain is continued, the ranges of chain files that lack a blob
/// manifest.
fn backup_data(
    repo: &Repository,
    held: &RepoGuard,
    listing: &mut Listing,
    opts: &BackupOptions,
    with_blobs: bool,
    ctx: Ctx,
) -> Result<(BackupOutcome, Option<Source>, Vec<blobs::Range>)> {
    // Continue from the newest backup even if its stamp is ahead of the
    // clock, so an increment never overlaps a file the chain left out.
    let now = ctx.clock.now();
    let when = match listing.newest_stamp() {
        Some(newest) if newest > now => newest,
        _ => now,
    };
    let chain = repo.chain_in(listing, &when.to_string(), ctx.report);
    let mut chain = match chain {
        Some(chain) if !opts.full => chain,
        _ => {
            ctx.report.event(&Event::DoingFull(FullReason::Requested));
            let (stamp, dest) = new_dest(repo, listing, true, opts.gzip, ctx)?;
            let src = Source::open(&opts.file)?;
            let outcome = full_backup(repo, held, &src, (stamp, dest), opts, ctx)?;
            return Ok((outcome, Some(src), Vec::new()));
        }
    };
    let src = Source::open(&opts.file)?;
    let full = |reason: FullReason, src: Source, listing: &mut Listing| {
        ctx.report.event(&Event::DoingFull(reason));
        let dest = new_dest(repo, listing, true, opts.gzip, ctx)?;
        let outcome = full_backup(repo, held, &src, dest, opts, ctx)?;
        Ok((outcome, Some(src), Vec::new()))
    };
    if let Err(problem) = chain.reconcile(ctx.report, held)? {
        ctx.report.event(&Event::StartingNewChain(problem));
        return full(FullReason::Changed, src, listing);
    }
    // A chain whose pack delta lost its base cannot be read, so neither
    // compared nor continued (not even by -Q, which reads no chain file).
    if let Err(Error::PackDeltaBaseMissing { base, delta }) =
        packdelta::check_bases(repo, listing, &chain.files()[0].name)
    {
        let problem = ChainProblem::PackDeltaBaseMissing { base, delta };
        ctx.report.event(&Event::StartingNewChain(problem));
        return full(FullReason::Changed, src, listing);
    }
    if with_blobs && blobs::chain_has_holes(&chain, listing) {
        return full(FullReason::BlobsMissing, src, listing);
    }
    let decision = if opts.quick {
        decide_quick(&mut chain, &src, ctx)?
    } else {
        decide_thorough(&mut chain, &src, ctx)?
    };
    let repair = |chain: &mut Chain| -> Result<Vec<blobs::Range>> {
        if with_blobs {
            blobs::unmanifested(chain, listing)
        } else {
            Ok(Vec::new())
        }
    };
    match decision {
        Decision::Nothing => {
            ctx.report.event(&Event::NothingToDo);
            let ranges = repair(&mut chain)?;
            Ok((BackupOutcome::NothingToDo, Some(src), ranges))
        }
        Decision::Full(reason @ (FullReason::Shrunk | FullReason::Changed)) if opts.pack_delta => {
            ctx.report.event(&Event::DoingFull(reason));
            let outcome = match pack_delta_backup(repo, held, listing, &mut chain, &src, ctx)? {
                Some(outcome) => outcome,
                None => {
                    let dest = new_dest(repo, listing, true, opts.gzip, ctx)?;
                    full_backup(repo, held, &src, dest, opts, ctx)?
                }
            };
            Ok((outcome, Some(src), Vec::new()))
        }
        Decision::Full(reason) => full(reason, src, listing),
        Decision::Incremental(start) => {
            ctx.report.event(&Event::DoingIncremental { start });
            let ranges = repair(&mut chain)?;
            let outcome = incremental_backup(repo, held, listing, &chain, &src, start, opts, ctx)?;
            let ranges = match outcome {
                // A full backup after all: the old chain is not continued.
                BackupOutcome::Full { .. } => Vec::new(),
                _ => ranges,
            };
            Ok((outcome, Some(src), ranges))
        }
    }
}

enum Decision {
    Nothing,
    Full(FullReason),
    Incremental(u64),
}

/// `-Q`: compare the md5 of the last `.dat` entry's range with the Data.fs.
fn decide_quick(chain: &mut Chain, src: &Source, ctx: Ctx) -> Result<Decision> {
    let Some(last) = chain.entries()?.and_then(|v| v.last()).cloned() else {
        return Ok(Decision::Full(FullReason::MissingDat));
    };
    if src.size < last.end {
        return Ok(Decision::Full(FullReason::Shrunk));
    }
    let sum = src.md5_range(last.start, last.end)?;
    ctx.report
        .event(&Event::LastIncrementalFile(last.file.clone()));
    ctx.report
        .event(&Event::LastIncrementalChecksum(last.md5.clone()));
    ctx.report.event(&Event::SourceChecksumRange {
        start: last.start,
        end: last.end,
        sum: sum.clone(),
    });
    Ok(if sum != last.md5 {
        Decision::Full(FullReason::Changed)
    } else if src.size == last.end {
        Decision::Nothing
    } else {
        Decision::Incremental(last.end)
    })
}

/// Default: compare the whole chain with the Data.fs prefix of its size.
fn decide_thorough(chain: &mut Chain, src: &Source, ctx: Ctx) -> Result<Decision> {
    // The repository and the Data.fs are read and hashed at the same time;
    // the Data.fs in one pass that yields the md5 at the repository's
    // (expected) size and at its own end. The chain is read one file at a
    // time.
    let hint = chain.size_hint();
    let chain = &*chain;
    let (repo, source) = std::thread::scope(|scope| {
        let repo = std::thread::Builder::new()
            .spawn_scoped(scope, || {
                chain.reader().concat(chain.data_files(), None, "")
            })
            .map_err(Error::Thread)?;
        let meter = Meter::new(ctx.report, Phase::Compare, Some(src.size));
        let source = src.md5_prefixes(hint.unwrap_or(0).min(src.size), src.size, &meter);
        Ok::<_, Error>((repo.join().expect("hashing does not panic"), source))
    })?;
    let (repo_size, repo_sum) = repo?;
    let (mut backed_sum, src_sum) = source?;
    if hint != Some(repo_size) {
        // Rare: the hint was wrong; hash the prefix again at the real size.
        backed_sum = src.md5_range(0, repo_size)?;
    }
    ctx.report.event(&Event::RepositoryState {
        size: repo_size,
        md5: repo_sum.clone(),
    });
    ctx.report.event(&Event::CurrentState {
        size: src.size,
        md5: src_sum.clone(),
    });
    ctx.report.event(&Event::BackedUpState {
        size: repo_size,
        md5: backed_sum.clone(),
    });
    Ok(if src.size == repo_size && src_sum == repo_sum {
        Decision::Nothing
    } else if src.size < repo_size {
        Decision::Full(FullReason::Shrunk)
    } else if repo_sum == backed_sum {
        Decision::Incremental(repo_size)
    } else {
        Decision::Full(FullReason::Changed)
    })
}

/// The stamp and destination of a new backup.
///
/// The stamp is strictly later than every data file already in the
/// repository: if the clock has not passed the newest one yet, this waits
/// for it (up to three seconds), and otherwise takes the second after it.
/// Two backups in one second would otherwise sort so that repozo's chain
/// selection drops one of them. An existing file is never replaced.
fn new_dest(
    repo: &Repository,
    listing: &Listing,
    full: bool,
    gzip: bool,
    ctx: Ctx,
) -> Result<(String, String)> {
    let mut stamp = ctx.clock.now();
    if let Some(newest) = listing.newest_stamp()
        && stamp <= newest
    {
        stamp = ctx
            .clock
            .wait_past(newest, std::time::Duration::from_secs(3))
            .unwrap_or_else(|| newest.plus_seconds(1));
    }
    if stamp.year > 9999 {
        // A stray file dated 9999-12-31-23-59-59 would push the next name
        // to a five-digit year, which neither tool reads as a backup.
        return Err(Error::Layout(format!(
            "the newest backup file in {} is dated {}, so no later name exists; \
             remove the misdated file (and its .dat and .index) and run the backup again",
            repo.dir(),
            listing
                .newest_stamp()
                .map_or_else(String::new, |s| s.to_string())
        )));
    }
    let stamp = stamp.to_string();
    let ext = names::data_ext(full, gzip);
    let dest = repo.path(&format!("{stamp}{ext}"));
    if repo.exists(&format!("{stamp}{ext}"))? {
        return Err(Error::WouldOverwrite(dest));
    }
    Ok((stamp, dest))
}

fn full_backup(
    repo: &Repository,
    held: &RepoGuard,
    src: &Source,
    (stamp, dest): (String, String),
    opts: &BackupOptions,
    ctx: Ctx,
) -> Result<BackupOutcome> {
    let committed = fs::committed(Path::new(&src.path), &src.file, src.size, ctx.report)?;
    let end = committed.pos;
    // repozo writes (and logs) the index first; we write it last, so a
    // failed backup leaves no orphan index, but log in repozo's order.
    ctx.report.event(&Event::WritingIndex);
    ctx.report.event(&Event::WritingFull {
        bytes: end,
        dest: dest.clone(),
    });
    let (md5, blake3, stored) = write_data(repo, src, (0, end), &dest, opts.gzip, ctx)?;
    record_full(
        repo,
        held,
        &stamp,
        dest,
        (end, md5, blake3, stored),
        &committed.index,
    )
}

/// Makes the new data file `dest` (just committed, `[0, end)` of the
/// Data.fs, stored in `stored` bytes) the first of a new chain: its
/// sidecar, then `<stamp>.dat`, then `<stamp>.index`.
fn record_full(
    repo: &Repository,
    held: &RepoGuard,
    stamp: &str,
    dest: String,
    (end, md5, blake3, stored): (u64, String, String, u64),
    index: &index::Index,
) -> Result<BackupOutcome> {
    let entry = DatEntry {
        file: dest.clone(),
        start: 0,
        end,
        md5,
    };
    held.check()?;
    sidecar::write(repo, &entry, blake3)?;
    failpoint::hit("backup:sidecar-written");
    repo.write_whole(&names::dat_name(stamp), entry.to_line().as_bytes())?;
    failpoint::hit("backup:dat-written");
    write_index(repo, stamp, end, index)?;
    failpoint::hit("backup:index-written");
    Ok(BackupOutcome::Full {
        dest,
        end,
        md5: entry.md5,
        stored,
    })
}

/// `--pack-delta` after a pack: a new chain whose first file is a pack
/// delta of `[0, end)` against the state `chain` ends at (see
/// [`crate::repo::packdelta`]). Written like a full backup otherwise: data,
/// sidecar, `.dat`, `.index`, in that order.
///
/// The Data.fs is read twice at once, from the page cache: by the walk
/// that encodes the delta, and by the md5 and BLAKE3 threads.
///
/// `None` (nothing written) when the delta takes from the previous state
/// less than a tenth of the smaller of the two: the Data.fs was replaced
/// (another database), or the pack kept mostly changes made since the
/// last backup, and a delta would keep the previous chain alive for
/// little gain. A pack to now of a long history
/// keeps a small part of the old file but makes up the new one, and
/// commits after it add to the new one only: a test history whose pack
/// kept 25% and which then doubled shared 12% of the new file, 24% of the
/// old. The caller writes a plain full backup instead.
fn pack_delta_backup(
    repo: &Repository,
    held: &RepoGuard,
    listing: &mut Listing,
    chain: &mut Chain,
    src: &Source,
    ctx: Ctx,
) -> Result<Option<BackupOutcome>> {
    let base: Vec<DatEntry> = chain
        .entries()?
        .map(|v| v.to_vec())
        .unwrap_or_default()
        .into_iter()
        .map(|e| DatEntry {
            file: repo::base_name(&e.file).to_string(),
            ..e
        })
        .collect();
    let (stamp, dest) = new_dest(repo, listing, true, true, ctx)?;
    let committed = fs::committed(Path::new(&src.path), &src.file, src.size, ctx.report)?;
    let end = committed.pos;
    ctx.report.event(&Event::WritingIndex);
    ctx.report.event(&Event::WritingPackDelta {
        bytes: end,
        dest: dest.clone(),
        base: chain.files()[0].path.clone(),
    });
    let header = packdelta::Header { size: end, base };
    let base_len = header.base_len();
    let meter = Meter::new(ctx.report, Phase::Copy, Some(end));
    let mut out = repo.create_data(repo::base_name(&dest))?;
    out.write_all(&header.encode()).at(&dest)?;
    let chain = &*chain;
    let (sums, stats) = std::thread::scope(|scope| {
        let hashing = std::thread::Builder::new()
            .spawn_scoped(scope, || src.digest_range(0, end, Digests::Both, None))
            .map_err(Error::Thread)?;
        // Exactly the files the header names, as the reader will.
        let paths = header.base.iter().map(|e| repo.path(&e.file)).collect();
        let mut old = chain.reader().into_concat(paths);
        let mut new = Metered {
            inner: crate::io::FileRange {
                file: &src.file,
                path: src.path.clone(),
                pos: 0,
                end,
            },
            meter: &meter,
        };
        let encoder = flate2::write::DeflateEncoder::new(
            std::io::BufWriter::with_capacity(CHUNK, &mut out),
            flate2::Compression::fast(),
        );
        let encoded = fs::packdiff::diff(&mut old, base_len, &mut new, end, encoder)
            .and_then(|(enc, stats)| {
                enc.finish()?.flush()?;
                Ok(stats)
            })
            .at(&dest);
        let sums = hashing.join().expect("hashing does not panic");
        Ok::<_, Error>((sums?, encoded?))
    })?;
    if sums.len != end {
        return Err(Error::Source(format!(
            "{}: the file ended at byte {} while being backed up (it should reach {end}); \
             nothing was recorded. Run the backup again",
            src.path, sums.len
        )));
    }
    if stats.copied < end.min(base_len) / 10 {
        // Dropping the upload removes what was written.
        drop(out);
        ctx.report.event(&Event::PackDeltaNotWorthIt {
            shared: stats.copied,
            bytes: end,
        });
        return Ok(None);
    }
    failpoint::hit("backup:data-copied");
    src.check_not_replaced()?;
    let stored = out.commit()?;
    failpoint::hit("backup:data-renamed");
    ctx.report.event(&Event::PackDeltaWritten {
        copied: stats.copied,
        literal: stats.literal,
        stored,
    });
    let sums = (
        end,
        sums.md5.unwrap_or_default(),
        sums.blake3.unwrap_or_default(),
        stored,
    );
    record_full(repo, held, &stamp, dest, sums, &committed.index).map(Some)
}

/// A stream counted on `meter`.
struct Metered<'a, R> {
    inner: R,
    meter: &'a Meter<'a>,
}

impl<R: std::io::Read> std::io::Read for Metered<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.add(n as u64);
        Ok(n)
    }
}

#[allow(clippy::too_many_arguments)]
fn incremental_backup(
    repo: &Repository,
    held: &RepoGuard,
    listing: &mut Listing,
    chain: &Chain,
    src: &Source,
    start: u64,
    opts: &BackupOptions,
    ctx: Ctx,
) -> Result<BackupOutcome> {
    let (stamp, dest) = new_dest(repo, listing, false, opts.gzip, ctx)?;
    let hint = chain_index(chain, start);
    let committed =
        fs::committed_with_hint(Path::new(&src.path), &src.file, src.size, hint, ctx.report)?;
    let end = committed.pos;
    if end == start {
        // Only uncommitted bytes follow what is backed up: repozo would
        // record an empty increment; there is nothing to record.
        ctx.report.event(&Event::NothingToDo);
        return Ok(BackupOutcome::NothingToDo);
    }
    if end < start {
        // The repository holds bytes the Data.fs no longer has committed:
        // the chain cannot be continued, so start a new one.
        ctx.report.event(&Event::DoingFull(FullReason::Changed));
        let dest = new_dest(repo, listing, true, opts.gzip, ctx)?;
        return full_backup(repo, held, src, dest, opts, ctx);
    }
    ctx.report.event(&Event::WritingIndex);
    ctx.report.event(&Event::WritingIncremental {
        bytes: end - start,
        dest: dest.clone(),
    });
    let (md5, blake3, stored) = write_data(repo, src, (start, end), &dest, opts.gzip, ctx)?;
    let entry = DatEntry {
        file: dest.clone(),
        start,
        end,
        md5,
    };
    held.check()?;
    sidecar::write(repo, &entry, blake3)?;
    failpoint::hit("backup:sidecar-written");
    repo.append_line(&chain.dat_name(), &entry.to_line(), held)?;
    failpoint::hit("backup:dat-written");
    write_index(repo, &stamp, end, &committed.index)?;
    failpoint::hit("backup:index-written");
    Ok(BackupOutcome::Incremental {
        dest,
        start,
        end,
        md5: entry.md5,
        stored,
    })
}

/// The `.index` of the chain's last backup, if it is valid exactly where
/// the increment starts: the bytes before `start` were just checked by md5,
/// so it describes them and only the new bytes need scanning. Its first
/// bytes say where it is valid; it is streamed only if the scan uses it.
fn chain_index(chain: &Chain, start: u64) -> Option<fs::Hint<'static>> {
    let repo = chain.repo().clone();
    let path = chain.index_path();
    let name = chain.index_name();
    let head = repo.read_range(&name, 0, 64).ok()?;
    if index::peek_pos(&head)? != start {
        return None;
    }
    Some(fs::Hint {
        pos: start,
        load: Box::new(move || {
            let r = repo.open_read(&name).ok()?;
            index::load_from(&mut std::io::BufReader::with_capacity(CHUNK, r), &path)
                .ok()
                .filter(|(pos, _)| *pos == start)
                .map(|(_, ix)| ix)
        }),
    })
}

/// Copies `[start, end)` of the source into a new data file `dest`,
/// gzipped (as parallel members) if `gzip`. Returns the md5 and the BLAKE3
/// (for the sidecar) of the bytes copied, and the size stored.
fn write_data(
    repo: &Repository,
    src: &Source,
    (start, end): (u64, u64),
    dest: &str,
    gzip: bool,
    ctx: Ctx,
) -> Result<(String, String, u64)> {
    let meter = Meter::new(ctx.report, Phase::Copy, Some(end - start));
    let mut out = repo.create_data(repo::base_name(dest))?;
    let sums = if gzip {
        let mut gz = ParallelGzip::new(&mut out).map_err(Error::Thread)?;
        let sums = src.copy_range_with(
            start,
            end,
            &mut |c| {
                meter.add(c.len() as u64);
                gz.write_chunk(c).at(dest)
            },
            Digests::Both,
        )?;
        gz.finish().at(dest)?;
        sums
    } else {
        src.copy_range_with(
            start,
            end,
            &mut |c| {
                meter.add(c.len() as u64);
                out.write_all(c).at(dest)
            },
            Digests::Both,
        )?
    };
    let md5 = sums.md5.unwrap_or_default();
    let blake3 = sums.blake3.unwrap_or_default();
    failpoint::hit("backup:data-copied");
    src.check_not_replaced()?;
    let stored = out.commit()?;
    failpoint::hit("backup:data-renamed");
    Ok((md5, blake3, stored))
}

/// Writes `<stamp>.index` (streamed where the backend can).
fn write_index(repo: &Repository, stamp: &str, pos: u64, ix: &index::Index) -> Result<()> {
    repo.write_with(&names::index_name(stamp), &mut |w| {
        index::write_to(w, pos, ix)
    })
}

/// `-k`: removes every data file but the newest full one, with their
/// `.dat` and `.index` files (repozo's `delete_old_backups`), and their
/// blob manifests and sidecars; also manifests and sidecars older than the
/// kept full whose data file is gone (ZODB's repozo `-k` leaves them).
///
/// A chain that the kept full is based on (it is a pack delta,
/// [`crate::repo::packdelta`]), and the chain that one is based on, and
/// so on, stays whole, each file reported ([`Event::KeptForPackDelta`]).
/// After a plain full backup nothing older is needed, and everything
/// older goes, as with ZODB's repozo.
fn delete_old_backups(repo: &Repository, listing: &Listing, ctx: Ctx) -> Result<()> {
    let names = listing.data_files();
    let Some(keep) = names.iter().rev().find(|n| repo::is_full(n)) else {
        return Ok(());
    };
    let chains = listing.chains();
    let mut kept: Vec<bool> = chains.iter().map(|c| c[0] == *keep).collect();
    let bases = packdelta::keep_bases_in(repo, &chains, &mut kept)?;
    for base in &bases.kept {
        for file in chains[base.chain] {
            ctx.report.event(&Event::KeptForPackDelta {
                file: repo.path(file),
                needed_by: repo.path(&base.needed_by),
            });
        }
    }
    let kept_files: std::collections::HashSet<&str> = chains
        .iter()
        .zip(&kept)
        .filter(|(_, k)| **k)
        .flat_map(|(c, _)| c.iter().map(String::as_str))
        .collect();
    for name in names.iter().filter(|n| !kept_files.contains(n.as_str())) {
        ctx.report.event(&Event::RemovingOld(name.clone()));
        for ext in [".blobs", ".blake3", ".dat", ".index"] {
            let _ = repo.remove(&repo::with_ext(name, ext));
        }
        repo.remove(name)?;
        failpoint::hit("backup:removed-one-old");
    }
    let kept = repo::stamp_of(keep);
    for meta in listing.meta_files() {
        let stamp = repo::stamp_of(meta);
        if (meta.ends_with(".blobs") || meta.ends_with(".blake3"))
            && stamp < kept
            && !names.iter().any(|n| repo::stamp_of(n) == stamp)
        {
            let _ = repo.remove(meta);
        }
    }
    Ok(())
}
