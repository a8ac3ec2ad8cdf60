//! `-B`: full or incremental backup, chosen as repozo chooses.

use std::io::{BufWriter, Write};
use std::path::Path;

use super::Ctx;
use super::source::Source;
use crate::error::{Error, IoContext, Result};
use crate::fs;
use crate::index;
use crate::io::{AtomicFile, CHUNK, append_synced, concat};
use crate::repo::{self, DatEntry, Repository, dat};
use crate::report::{Event, FullReason};

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
    },
    /// Wrote `[start, end)` to `dest`.
    Incremental {
        /// The new data file.
        dest: String,
        /// Where the increment starts (the repository's end).
        start: u64,
        /// Committed end of the Data.fs.
        end: u64,
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
    let repo = Repository::new(&opts.repository);
    let when = ctx.clock.now().to_string();
    let chain = repo.chain(&when, ctx.report)?;
    if opts.full || chain.is_empty() {
        ctx.report.event(&Event::DoingFull(FullReason::Requested));
        return full_backup(&repo, None, opts, ctx);
    }
    let src = Source::open(&opts.file)?;
    let decision = if opts.quick {
        decide_quick(&chain, &src, ctx)?
    } else {
        decide_thorough(&chain, &src, ctx)?
    };
    match decision {
        Decision::Nothing => {
            ctx.report.event(&Event::NothingToDo);
            Ok(BackupOutcome::NothingToDo)
        }
        Decision::Full(reason) => {
            ctx.report.event(&Event::DoingFull(reason));
            full_backup(&repo, Some(src), opts, ctx)
        }
        Decision::Incremental(start) => {
            ctx.report.event(&Event::DoingIncremental { start });
            incremental_backup(&repo, &chain, src, start, opts, ctx)
        }
    }
}

enum Decision {
    Nothing,
    Full(FullReason),
    Incremental(u64),
}

/// `-Q`: compare the md5 of the last `.dat` entry's range with the Data.fs.
fn decide_quick(chain: &[String], src: &Source, ctx: Ctx) -> Result<Decision> {
    let dat_path = repo::with_ext(&chain[0], ".dat");
    let Some(last) = dat::read(&dat_path)?.and_then(|mut v| v.pop()) else {
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
fn decide_thorough(chain: &[String], src: &Source, ctx: Ctx) -> Result<Decision> {
    let (repo_size, repo_sum) = concat(chain, None, "")?;
    ctx.report.event(&Event::RepositoryState {
        size: repo_size,
        md5: repo_sum.clone(),
    });
    let (backed_sum, src_sum) = if repo_size <= src.size {
        src.md5_prefixes(repo_size, src.size)?
    } else {
        let s = src.md5_range(0, src.size)?;
        (s.clone(), s)
    };
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

/// The destination of a new backup at this instant; refuses to replace an
/// existing file, as repozo does.
fn new_dest(repo: &Repository, full: bool, gzip: bool, ctx: Ctx) -> Result<(String, String)> {
    let stamp = ctx.clock.now().to_string();
    let ext = match (full, gzip) {
        (true, false) => ".fs",
        (true, true) => ".fsz",
        (false, false) => ".deltafs",
        (false, true) => ".deltafsz",
    };
    let dest = repo.path(&format!("{stamp}{ext}"));
    if Path::new(&dest).exists() {
        return Err(Error::WouldOverwrite(dest));
    }
    Ok((stamp, dest))
}

fn full_backup(
    repo: &Repository,
    src: Option<Source>,
    opts: &BackupOptions,
    ctx: Ctx,
) -> Result<BackupOutcome> {
    let (stamp, dest) = new_dest(repo, true, opts.gzip, ctx)?;
    let src = match src {
        Some(s) => s,
        None => Source::open(&opts.file)?,
    };
    let committed = fs::committed(Path::new(&src.path), &src.file, src.size, ctx.report)?;
    let end = committed.pos;
    ctx.report.event(&Event::WritingFull {
        bytes: end,
        dest: dest.clone(),
    });
    let md5 = write_data(&src, 0, end, &dest, opts.gzip)?;
    let entry = DatEntry {
        file: dest.clone(),
        start: 0,
        end,
        md5,
    };
    let mut dat_file = AtomicFile::create(repo.path(&format!("{stamp}.dat")), false)?;
    dat_file
        .write_all(entry.to_line().as_bytes())
        .at(repo.path(&format!("{stamp}.dat")))?;
    dat_file.commit()?;
    write_index(repo, &stamp, end, &committed.index, ctx)?;
    if opts.kill_old {
        delete_old_backups(repo, ctx)?;
    }
    Ok(BackupOutcome::Full { dest, end })
}

fn incremental_backup(
    repo: &Repository,
    chain: &[String],
    src: Source,
    start: u64,
    opts: &BackupOptions,
    ctx: Ctx,
) -> Result<BackupOutcome> {
    let (stamp, dest) = new_dest(repo, false, opts.gzip, ctx)?;
    let committed = fs::committed(Path::new(&src.path), &src.file, src.size, ctx.report)?;
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
        return full_backup(repo, Some(src), opts, ctx);
    }
    ctx.report.event(&Event::WritingIncremental {
        bytes: end - start,
        dest: dest.clone(),
    });
    let md5 = write_data(&src, start, end, &dest, opts.gzip)?;
    let entry = DatEntry {
        file: dest.clone(),
        start,
        end,
        md5,
    };
    append_synced(&repo::with_ext(&chain[0], ".dat"), &entry.to_line())?;
    write_index(repo, &stamp, end, &committed.index, ctx)?;
    Ok(BackupOutcome::Incremental { dest, start, end })
}

/// Copies `[start, end)` of the source into a new data file `dest`.
fn write_data(src: &Source, start: u64, end: u64, dest: &str, gzip: bool) -> Result<String> {
    let mut out = AtomicFile::create(dest, gzip)?;
    let md5 = {
        let mut w = BufWriter::with_capacity(CHUNK, &mut out);
        let md5 = src.copy_range(start, end, &mut w, dest)?;
        w.flush().at(dest)?;
        md5
    };
    out.commit()?;
    Ok(md5)
}

fn write_index(
    repo: &Repository,
    stamp: &str,
    pos: u64,
    ix: &index::Index,
    ctx: Ctx,
) -> Result<()> {
    ctx.report.event(&Event::WritingIndex);
    let path = repo.path(&format!("{stamp}.index"));
    let mut out = AtomicFile::create(&path, false)?;
    {
        let mut w = BufWriter::with_capacity(CHUNK, &mut out);
        index::write_to(&mut w, pos, ix).at(&path)?;
        w.flush().at(&path)?;
    }
    out.commit()
}

/// `-k`: removes every data file but the newest full one, with their
/// `.dat` and `.index` files (repozo's `delete_old_backups`).
fn delete_old_backups(repo: &Repository, ctx: Ctx) -> Result<()> {
    let names = repo.data_files()?;
    let Some(keep) = names.iter().rev().find(|n| repo::is_full(n)) else {
        return Ok(());
    };
    for name in names.iter().filter(|n| *n != keep) {
        ctx.report.event(&Event::RemovingOld(name.clone()));
        for ext in [".dat", ".index"] {
            let _ = std::fs::remove_file(repo.path(&repo::with_ext(name, ext)));
        }
        let path = repo.path(name);
        std::fs::remove_file(&path).at(&path)?;
    }
    Ok(())
}
