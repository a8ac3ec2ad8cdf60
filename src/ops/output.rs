//! Writing a recovered Data.fs: the chain copied (checked against its
//! `.dat` unless `--no-verify`) into `<output>.part`, renamed into place
//! with its `.index`, and the blob tree swapped in with it. Shared by a
//! full recover and by `--incremental` (its full fallback, and the index
//! it installs after appending).

use std::collections::HashMap;
use std::io::{BufWriter, Write};

use super::Ctx;
use super::blobs::StagedTree;
use super::meter::Meter;
use crate::error::{Error, IoContext, Result};
use crate::failpoint;
use crate::io::{AtomicFile, Md5Hasher};
use crate::repo::Chain;
use crate::repo::sidecar::{self, Checks};
use crate::report::{Event, Phase};

/// How a recover checks the chain files against the `.dat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Check {
    /// `--no-verify`: not at all.
    Skip,
    /// The default: every file, logging only repozo's non-`-w` lines.
    Quiet,
    /// `-w`: every file, logging each as repozo's `-w` does.
    Logged,
}

impl Check {
    /// The check of `-w` (`with_verify`) and `--no-verify` (`no_verify`):
    /// `-w` wins, as repozo's `-w` always checks.
    pub(super) fn of_flags(with_verify: bool, no_verify: bool) -> Self {
        match (with_verify, no_verify) {
            (true, _) => Check::Logged,
            (false, true) => Check::Skip,
            (false, false) => Check::Quiet,
        }
    }
}

/// Recovers `chain` into the file `output` from scratch: written to
/// `<output>.part`, fsynced, renamed over `<output>`; the chain's last
/// `.index` becomes `<output>.index` the same way (or a stale one is
/// removed). On failure the old output and index stay as they were.
///
/// With `blobs` = (repository, blob directory), the chain's blobs are
/// first restored as a complete new tree beside the blob directory; it
/// is swapped in just before the output is renamed into place, and
/// swapped back out if that fails. The old tree is removed only when
/// both new ones are in place.
pub(super) fn write_output(
    chain: &mut Chain,
    output: &str,
    check: Check,
    md5_only: bool,
    blobs: Option<&str>,
    ctx: Ctx,
) -> Result<()> {
    let mut truth = read_truth(chain, check, md5_only, ctx)?;
    if truth.is_some() {
        // Before anything is written: each file matching its own line is
        // not enough if the lines leave a gap.
        chain.check_coverage()?;
    }
    let mut staged = match blobs {
        Some(dir) => Some(StagedTree::build(chain, dir, ctx)?),
        None => None,
    };
    let part = format!("{output}.part");
    let mut out = AtomicFile::create_at(output, &part)?;
    if truth.is_none() && !ctx.report.wants_details() {
        // Nothing needs the md5 (repozo only logs it): copy in the kernel.
        copy_chain_unhashed(chain, &mut out, &part, ctx)?;
    } else {
        let copied = {
            let mut w = chunk_writer(&mut out);
            copy_chain(chain, truth.as_ref(), check, &mut w, &part, ctx)
                .and_then(|()| w.flush().at(&part))
        };
        if let Err(Error::SidecarConflict { .. }) = copied {
            // What was written cannot be vouched for: again, by md5.
            drop(out);
            out = AtomicFile::create_at(output, &part)?;
            if let Some(t) = truth.as_mut() {
                t.by_md5();
            }
            let mut w = chunk_writer(&mut out);
            copy_chain(chain, truth.as_ref(), check, &mut w, &part, ctx)?;
            w.flush().at(&part)?;
        } else {
            copied?;
        }
    }
    failpoint::hit("recover:data-copied");
    let source_index = chain.index_path();
    let target_index = format!("{output}.index");
    let index_copy = if chain.repo().exists(&chain.index_name())? {
        ctx.report.event(&Event::RestoringIndex {
            from: source_index.clone(),
            to: target_index.clone(),
        });
        let mut from = chain.repo().open_read(&chain.index_name())?;
        let mut f = AtomicFile::create(&target_index)?;
        std::io::copy(&mut from, &mut f).at(&target_index)?;
        Some(f)
    } else {
        ctx.report.event(&Event::NoIndexToRestore(source_index));
        None
    };
    if let Some(tree) = staged.as_mut() {
        tree.swap_in()?;
    }
    if let Err(e) = out.commit() {
        if let Some(tree) = staged {
            tree.roll_back();
        }
        return Err(e);
    }
    failpoint::hit("recover:output-renamed");
    match index_copy {
        // The output is in place: its index must follow, signal or not.
        Some(f) => f.commit_even_if_interrupted()?,
        None => {
            // An index left from an earlier Data.fs describes other bytes.
            if std::fs::remove_file(&target_index).is_ok() {
                ctx.report.event(&Event::RemovedStaleIndex(target_index));
            }
        }
    }
    if let Some(tree) = staged {
        super::blobs::all_restored(&tree.finish(ctx)?)?;
    }
    Ok(())
}

/// The writer of a recovered Data.fs: buffered (small chunks, the files
/// of a long chain, are gathered), while the hashing loop's full chunks
/// are no smaller than the buffer and go straight to the file.
///
/// Why not `O_DIRECT`, as backups write: on this VM, `-R` of a 553 MB
/// plain chain written by ZODB took 1.78–1.92 s with direct writes
/// (synchronous, one 256 KiB write at a time) against 1.37–1.67 s
/// through the page cache with early writeback and the fsync at the end
/// (three alternating runs each, load about 2).
fn chunk_writer(out: &mut AtomicFile) -> BufWriter<&mut AtomicFile> {
    /// The hashing loop's chunk size (`io::hashing`'s `BUF`).
    const CHUNK_BYTES: usize = 256 * 1024;
    BufWriter::with_capacity(CHUNK_BYTES, out)
}

/// Copies the uncompressed chain into `out` without hashing: plain files
/// with `copy_file_range`, gzipped ones through the chain reader.
fn copy_chain_unhashed(
    chain: &mut Chain,
    out: &mut AtomicFile,
    out_name: &str,
    ctx: Ctx,
) -> Result<()> {
    let meter = Meter::new(ctx.report, Phase::Recover, chain.expected_size());
    let files = chain.reader();
    for file in chain.files() {
        match chain.repo().local_file(&file.name) {
            Some(f) if !file.gzip() => {
                out.copy_from_file(&mut f?, &mut |n| meter.add(n))
                    .at(out_name)?;
            }
            _ => {
                files.copy(file.data_file(), &mut meter.tee(Some(&mut *out)), out_name)?;
            }
        }
    }
    Ok(())
}

/// Copies the chain's `.index` for its state to `target` (temp, fsync,
/// rename), or removes a stale `target` if the chain has none.
pub(super) fn install_index(chain: &Chain, target: &str, ctx: Ctx) -> Result<()> {
    let source = chain.index_path();
    if chain.repo().exists(&chain.index_name())? {
        ctx.report.event(&Event::RestoringIndex {
            from: source.clone(),
            to: target.to_string(),
        });
        // Streamed: an index is 8 bytes per object, tens of MB for a
        // large database, and need not sit in memory.
        let mut from = chain.repo().open_read(&chain.index_name())?;
        let mut f = AtomicFile::create(target)?;
        std::io::copy(&mut from, &mut f).at(target)?;
        f.commit()
    } else {
        ctx.report.event(&Event::NoIndexToRestore(source));
        if std::fs::remove_file(target).is_ok() {
            ctx.report
                .event(&Event::RemovedStaleIndex(target.to_string()));
        }
        Ok(())
    }
}

/// What each chain file must hold: its `.dat` line's size and md5, and
/// the BLAKE3 of its sidecar when every file has a usable one (and md5 is
/// not forced, `--md5`); see [`crate::repo::sidecar`].
pub(super) struct Truth {
    /// (size, md5) per chain file name, from the chain's `.dat`.
    lines: HashMap<String, (u64, String)>,
    /// How the files are checked.
    checks: Checks,
}

impl Truth {
    /// Checks by md5 from now on.
    pub(super) fn by_md5(&mut self) {
        self.checks = Checks::Md5;
    }
}

/// The `.dat`'s (size, md5) per chain file, and the sidecars' BLAKE3 where
/// they can be used (not with `md5_only`), unless `check` is
/// [`Check::Skip`].
pub(super) fn read_truth(
    chain: &mut Chain,
    check: Check,
    md5_only: bool,
    ctx: Ctx,
) -> Result<Option<Truth>> {
    if check == Check::Skip {
        return Ok(None);
    }
    let names: Vec<String> = chain.files().iter().map(|f| f.name.clone()).collect();
    let entries = match chain.required_entries() {
        Ok(e) => e,
        Err(Error::Io { source, .. })
            if check == Check::Quiet && source.kind() == std::io::ErrorKind::NotFound =>
        {
            return Err(Error::DatMissing(chain.dat_path().to_string()));
        }
        Err(e) => return Err(e),
    };
    let lines = entries
        .iter()
        .map(|e| (e.base_name().to_string(), (e.len(), e.md5.clone())))
        .collect();
    // Only the lines of the files recovered: later ones may lack sidecars.
    let used: Vec<_> = entries
        .iter()
        .filter(|e| names.iter().any(|n| n == e.base_name()))
        .cloned()
        .collect();
    let checks = sidecar::checks_for(chain.repo(), &used, md5_only, ctx.report)?;
    Ok(Some(Truth { lines, checks }))
}

/// Copies the uncompressed chain to `out`; with `truth`, checks each file
/// and stops at the first that does not match.
pub(super) fn copy_chain(
    chain: &mut Chain,
    truth: Option<&Truth>,
    check: Check,
    out: &mut dyn Write,
    out_name: &str,
    ctx: Ctx,
) -> Result<()> {
    let meter = Meter::new(ctx.report, Phase::Recover, chain.expected_size());
    let out = &mut meter.tee(Some(out));
    let files = chain.reader();
    let Some(truth) = truth else {
        let (size, md5) = files.concat(chain.data_files(), Some(out), out_name)?;
        ctx.report.event(&Event::Recovered { size, md5 });
        return Ok(());
    };
    // Without -w repozo logs the md5 of the whole output; only then is it
    // computed beside the per-file ones.
    let mut whole = (check == Check::Quiet && ctx.report.wants_details()).then(Md5Hasher::new);
    let mut total = 0u64;
    for file in chain.files() {
        let blake3 = truth.checks.blake3_of(&file.name);
        let sums = {
            let mut tee = Tee {
                out: &mut *out,
                md5: whole.as_mut(),
            };
            let digests = truth.checks.digests_for(&file.name);
            files.digest(file.data_file(), Some(&mut tee), out_name, digests)?
        };
        let size = sums.len;
        let Some((want_size, want_sum)) = truth.lines.get(&file.name) else {
            let how = if check == Check::Logged {
                "recover without -w"
            } else {
                "recover with --no-verify to restore it unchecked"
            };
            return Err(Error::NotListed {
                path: file.path.clone(),
                verb: "is not listed in",
                dat: chain.dat_path().to_string(),
                hint: format!("{how}, or check the repository with -V"),
            });
        };
        if size != *want_size {
            return Err(Error::SizeMismatch {
                path: file.path.clone(),
                size,
                want: *want_size,
                note: "",
            });
        }
        let sum = match (blake3, sums.blake3, sums.md5) {
            // The sidecar binds its BLAKE3 to the line's md5.
            (Some(want), Some(got), _) if want == got => want_sum.clone(),
            (Some(_), _, _) => {
                let want = (*want_size, want_sum.as_str());
                let again = sidecar::recheck_by_md5(&files, file.data_file(), want, ctx.report)?;
                let md5 = again.md5.unwrap_or_default();
                if again.len == *want_size && md5 == *want_sum {
                    return Err(Error::SidecarConflict {
                        path: file.path.clone(),
                    });
                }
                md5
            }
            (None, _, md5) => md5.unwrap_or_default(),
        };
        if sum != *want_sum {
            return Err(Error::ChecksumMismatch {
                path: file.path.clone(),
                got: sum,
                want: want_sum.clone(),
                note: "",
            });
        }
        total = total.saturating_add(size);
        if check == Check::Logged {
            ctx.report.event(&Event::RecoveredChunk {
                file: file.path.clone(),
                size,
                md5: sum,
            });
        }
    }
    match whole {
        Some(md5) => ctx.report.event(&Event::Recovered {
            size: total,
            md5: md5.finish_hex(),
        }),
        None if check == Check::Logged => ctx.report.event(&Event::RecoveredTotal(total)),
        None => {}
    }
    Ok(())
}

/// Writes to `out` and, if given, feeds the same bytes to `md5`.
struct Tee<'a> {
    out: &'a mut dyn Write,
    md5: Option<&'a mut Md5Hasher>,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        if let Some(h) = self.md5.as_mut() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
