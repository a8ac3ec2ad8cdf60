//! `-R`: rebuild the Data.fs as of a date from its chain.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::Ctx;
use crate::error::{Error, IoContext, Result};
use crate::failpoint;
use crate::io::{AtomicFile, CHUNK, GzipReader, concat, copy_hashed, is_gzip_name, open_data_file};
use crate::repo::{self, Repository, dat};
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
}

/// Recovers the chain for `opts.date` into `opts.output` or `stdout`.
///
/// With an output file, the data is written to `<output>.part`, fsynced,
/// and only then renamed over `<output>`; the chain's last `.index` becomes
/// `<output>.index` the same way. If anything fails, the existing output
/// and its index are left exactly as they were and the `.part` is removed.
pub fn recover(opts: &RecoverOptions, ctx: Ctx, stdout: &mut dyn Write) -> Result<()> {
    let repo = Repository::new(&opts.repository);
    let date = opts.date.as_deref().filter(|d| !d.is_empty());
    if let Some(d) = date
        && !crate::clock::validate_date(d)
    {
        return Err(Error::BadDate(d.to_string()));
    }
    let when = date.map_or_else(|| ctx.clock.now().to_string(), str::to_string);
    let chain = repo.chain(&when, ctx.report)?;
    if chain.is_empty() {
        return Err(Error::NoFiles(match date {
            Some(d) => format!("No files in repository before {d}"),
            None => "No files in repository".to_string(),
        }));
    }
    // repozo says where it recovers to before it reads the `.dat` for -w.
    ctx.report.event(&match &opts.output {
        Some(output) => Event::RecoveringTo(output.clone()),
        None => Event::RecoveringToStdout,
    });
    let truth = if opts.with_verify {
        Some(read_truth(&repo, &chain)?)
    } else {
        None
    };
    let Some(output) = &opts.output else {
        copy_chain(&chain, truth.as_ref(), stdout, "<stdout>", ctx)?;
        return stdout.flush().at("<stdout>");
    };
    let part = format!("{output}.part");
    let mut out = AtomicFile::create_at(output, &part)?;
    if truth.is_none() && !ctx.report.wants_details() {
        // Nothing needs the md5 (repozo only logs it): copy in the kernel.
        copy_chain_unhashed(&chain, &mut out, &part)?;
    } else {
        let mut w = BufWriter::with_capacity(CHUNK, &mut out);
        copy_chain(&chain, truth.as_ref(), &mut w, &part, ctx)?;
        w.flush().at(&part)?;
    }
    failpoint::hit("recover:data-copied");
    let source_index = repo::with_ext(chain.last().expect("non-empty"), ".index");
    let target_index = format!("{output}.index");
    let index_copy = if Path::new(&source_index).exists() {
        ctx.report.event(&Event::RestoringIndex {
            from: source_index.clone(),
            to: target_index.clone(),
        });
        let bytes = std::fs::read(&source_index).at(&source_index)?;
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
/// with `copy_file_range`, gzipped ones through [`GzipReader`].
fn copy_chain_unhashed(chain: &[String], out: &mut AtomicFile, out_name: &str) -> Result<()> {
    for file in chain {
        let mut f = std::fs::File::open(file).at(file)?;
        if is_gzip_name(file) {
            let mut r = GzipReader::new(f);
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = std::io::Read::read(&mut r, &mut buf).at(file)?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n]).at(out_name)?;
            }
        } else {
            out.copy_from_file(&mut f).at(out_name)?;
        }
    }
    Ok(())
}

/// Expected (size, md5) per chain path, from the chain's `.dat`.
type Truth = HashMap<String, (u64, String)>;

fn read_truth(repo: &Repository, chain: &[String]) -> Result<Truth> {
    let dat_path = repo::with_ext(&chain[0], ".dat");
    let entries = dat::read(&dat_path)?
        .ok_or_else(|| Error::io(&dat_path, std::io::Error::from_raw_os_error(2)))?;
    Ok(entries
        .into_iter()
        .map(|e| (repo.path(e.base_name()), (e.len(), e.md5)))
        .collect())
}

/// Copies the uncompressed chain to `out`; with `truth`, checks each file.
fn copy_chain(
    chain: &[String],
    truth: Option<&Truth>,
    out: &mut dyn Write,
    out_name: &str,
    ctx: Ctx,
) -> Result<()> {
    let Some(truth) = truth else {
        let (size, md5) = concat(chain, Some(out), out_name)?;
        ctx.report.event(&Event::Recovered { size, md5 });
        return Ok(());
    };
    let mut total = 0u64;
    for file in chain {
        let mut r = open_data_file(file)?;
        let (size, sum) = copy_hashed(&mut r, Some(&mut *out), file, out_name)?;
        let Some((want_size, want_sum)) = truth.get(file) else {
            return Err(Error::Verification(format!(
                "{file} is not listed in {}; recover without -w, or check the \
                 repository with -V",
                repo::with_ext(&chain[0], ".dat")
            )));
        };
        if size != *want_size {
            return Err(Error::Verification(format!(
                "{file} is {size} bytes, should be {want_size} bytes"
            )));
        }
        if sum != *want_sum {
            return Err(Error::Verification(format!(
                "{file} has checksum {sum} instead of {want_sum}"
            )));
        }
        total += size;
        ctx.report.event(&Event::RecoveredChunk {
            file: file.clone(),
            size,
            md5: sum,
        });
    }
    ctx.report.event(&Event::RecoveredTotal(total));
    Ok(())
}
