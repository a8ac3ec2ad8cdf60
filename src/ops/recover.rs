//! `-R`: rebuild the Data.fs as of a date from its chain.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::Ctx;
use crate::error::{Error, IoContext, Result};
use crate::failpoint;
use crate::io::{AtomicFile, CHUNK, DataFiles};
use crate::repo::{Chain, Repository};
use crate::report::Event;

/// Options of a recover (`-R`).
#[derive(Debug, Clone, Default)]
pub struct RecoverOptions {
    /// Repository directory (`-r`), as given.
    pub repository: String,
    /// State as of this UTC date (`-D`, `yyyy-mm-dd[-hh[-mm[-ss]]]`,
    /// compared as a string like repozo). Default (`None`): now.
    pub date: Option<String>,
    /// Output file (`-o`). Default (`None`): standard output, without an
    /// index.
    pub output: Option<String>,
    /// Check every chain file against its `.dat` entry while copying (`-w`).
    /// Default: off.
    pub with_verify: bool,
    /// `--incremental`: bring the existing output up to date instead of
    /// rewriting it (see [`super::recover_incremental`]). Default: `None`,
    /// a full recover as repozo does. Requires `output`.
    pub incremental: Option<super::IncrementalOptions>,
}

/// Recovers the chain for `opts.date` into `opts.output` or `stdout`.
///
/// With an output file, the data is written to `<output>.part`, fsynced,
/// and only then renamed over `<output>`; the chain's last `.index` becomes
/// `<output>.index` the same way. If anything fails, the existing output
/// and its index are left exactly as they were and the `.part` is removed.
pub fn recover(opts: &RecoverOptions, ctx: Ctx, stdout: &mut dyn Write) -> Result<()> {
    let mut chain = select(opts, ctx)?;
    // repozo says where it recovers to before it reads the `.dat` for -w.
    ctx.report.event(&match &opts.output {
        Some(output) => Event::RecoveringTo(output.clone()),
        None => Event::RecoveringToStdout,
    });
    let Some(output) = &opts.output else {
        let truth = if opts.with_verify {
            Some(read_truth(&mut chain)?)
        } else {
            None
        };
        copy_chain(&chain, truth.as_ref(), stdout, "<stdout>", ctx)?;
        return stdout.flush().at("<stdout>");
    };
    write_output(&mut chain, output, opts.with_verify, ctx)
}

/// Validates `-D` and selects the chain for it (repozo's `find_files`);
/// no chain is repozo's "No files in repository" error.
pub(super) fn select(opts: &RecoverOptions, ctx: Ctx) -> Result<Chain> {
    let repo = Repository::new(&opts.repository);
    let date = opts.date.as_deref().filter(|d| !d.is_empty());
    if let Some(d) = date
        && !crate::clock::validate_date(d)
    {
        return Err(Error::BadDate(d.to_string()));
    }
    let when = date.map_or_else(|| ctx.clock.now().to_string(), str::to_string);
    let (_, chain) = repo.chain(&when, ctx.report)?;
    chain.ok_or_else(|| {
        Error::NoFiles(match date {
            Some(d) => format!("No files in repository before {d}"),
            None => "No files in repository".to_string(),
        })
    })
}

/// Recovers `chain` into the file `output` from scratch: written to
/// `<output>.part`, fsynced, renamed over `<output>`; the chain's last
/// `.index` becomes `<output>.index` the same way (or a stale one is
/// removed). On failure the old output and index stay as they were.
pub(super) fn write_output(
    chain: &mut Chain,
    output: &str,
    with_verify: bool,
    ctx: Ctx,
) -> Result<()> {
    let truth = if with_verify {
        Some(read_truth(chain)?)
    } else {
        None
    };
    let part = format!("{output}.part");
    let mut out = AtomicFile::create_at(output, &part)?;
    if truth.is_none() && !ctx.report.wants_details() {
        // Nothing needs the md5 (repozo only logs it): copy in the kernel.
        copy_chain_unhashed(chain, &mut out, &part)?;
    } else {
        let mut w = BufWriter::with_capacity(CHUNK, &mut out);
        copy_chain(chain, truth.as_ref(), &mut w, &part, ctx)?;
        w.flush().at(&part)?;
    }
    failpoint::hit("recover:data-copied");
    let source_index = chain.index_path();
    let target_index = format!("{output}.index");
    let index_copy = if Path::new(&source_index).exists() {
        ctx.report.event(&Event::RestoringIndex {
            from: source_index.clone(),
            to: target_index.clone(),
        });
        let bytes = crate::io::read_regular(&source_index).at(&source_index)?;
        let mut f = AtomicFile::create(&target_index)?;
        f.write_all(&bytes).at(&target_index)?;
        Some(f)
    } else {
        ctx.report.event(&Event::NoIndexToRestore(source_index));
        None
    };
    out.commit()?;
    failpoint::hit("recover:output-renamed");
    match index_copy {
        Some(f) => f.commit()?,
        None => {
            // An index left from an earlier Data.fs describes other bytes.
            if std::fs::remove_file(&target_index).is_ok() {
                ctx.report.event(&Event::RemovedStaleIndex(target_index));
            }
        }
    }
    Ok(())
}

/// Copies the uncompressed chain into `out` without hashing: plain files
/// with `copy_file_range`, gzipped ones through the chain reader.
fn copy_chain_unhashed(chain: &Chain, out: &mut AtomicFile, out_name: &str) -> Result<()> {
    let files = DataFiles::new();
    for file in chain.files() {
        if file.gzip() {
            files.copy(file.data_file(), out, out_name)?;
        } else {
            let mut f = crate::io::open_regular(&file.path).at(&file.path)?;
            out.copy_from_file(&mut f).at(out_name)?;
        }
    }
    Ok(())
}

/// Copies the chain's `.index` for its state to `target` (temp, fsync,
/// rename), or removes a stale `target` if the chain has none.
pub(super) fn install_index(chain: &Chain, target: &str, ctx: Ctx) -> Result<()> {
    let source = chain.index_path();
    if Path::new(&source).exists() {
        ctx.report.event(&Event::RestoringIndex {
            from: source.clone(),
            to: target.to_string(),
        });
        let bytes = crate::io::read_regular(&source).at(&source)?;
        let mut f = AtomicFile::create(target)?;
        f.write_all(&bytes).at(target)?;
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

/// Expected (size, md5) per chain file name, from the chain's `.dat`.
type Truth = HashMap<String, (u64, String)>;

fn read_truth(chain: &mut Chain) -> Result<Truth> {
    Ok(chain
        .required_entries()?
        .iter()
        .map(|e| (e.base_name().to_string(), (e.len(), e.md5.clone())))
        .collect())
}

/// Copies the uncompressed chain to `out`; with `truth`, checks each file.
fn copy_chain(
    chain: &Chain,
    truth: Option<&Truth>,
    out: &mut dyn Write,
    out_name: &str,
    ctx: Ctx,
) -> Result<()> {
    let files = DataFiles::new();
    let Some(truth) = truth else {
        let (size, md5) = files.concat(chain.data_files(), Some(out), out_name)?;
        ctx.report.event(&Event::Recovered { size, md5 });
        return Ok(());
    };
    let mut total = 0u64;
    for file in chain.files() {
        let (size, sum) = files.hash(file.data_file(), Some(&mut *out), out_name)?;
        let Some((want_size, want_sum)) = truth.get(&file.name) else {
            return Err(Error::Verification(format!(
                "{} is not listed in {}; recover without -w, or check the \
                 repository with -V",
                file.path,
                chain.dat_path()
            )));
        };
        if size != *want_size {
            return Err(Error::Verification(format!(
                "{} is {size} bytes, should be {want_size} bytes",
                file.path
            )));
        }
        if sum != *want_sum {
            return Err(Error::Verification(format!(
                "{} has checksum {sum} instead of {want_sum}",
                file.path
            )));
        }
        total = total.saturating_add(size);
        ctx.report.event(&Event::RecoveredChunk {
            file: file.path.clone(),
            size,
            md5: sum,
        });
    }
    ctx.report.event(&Event::RecoveredTotal(total));
    Ok(())
}
