//! `-V`: check every file of the current chain against its `.dat` entry.

use super::Ctx;
use super::meter::Meter;
use crate::error::{Error, Result};
use crate::io::DataFiles;
use crate::repo::{ChainFile, Repository};
use crate::report::{Event, Phase};

/// Options of a verify (`-V`).
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Repository directory (`-r`), as given.
    pub repository: String,
    /// Compare sizes only, not md5s (`-Q`). Gzipped files are still
    /// decompressed to learn their size. Default: off.
    pub quick: bool,
}

/// Verifies the chain of the newest full backup (repozo's `do_verify`):
/// each file its `.dat` lists must exist and have the recorded
/// uncompressed size and md5. Stops at the first failure, with repozo's
/// message. Files are read one at a time, whatever the chain's length.
pub fn verify(opts: &VerifyOptions, ctx: Ctx) -> Result<()> {
    let repo = Repository::new(&opts.repository);
    let (_, chain) = repo.chain(&ctx.clock.now().to_string(), ctx.report)?;
    let Some(mut chain) = chain else {
        return Err(Error::NoFiles("No files in repository".to_string()));
    };
    let entries = chain.required_entries()?.to_vec();
    let total = entries.iter().try_fold(0u64, |s, e| s.checked_add(e.len()));
    let meter = Meter::new(ctx.report, Phase::Verify, total);
    let files = DataFiles::new();
    for entry in &entries {
        let file = ChainFile {
            path: repo.path(entry.base_name()),
            name: entry.base_name().to_string(),
        };
        ctx.report.event(&Event::Verifying(file.path.clone()));
        let note = if file.gzip() {
            " (when uncompressed)"
        } else {
            ""
        };
        let (size, sum) = measure(&files, &file, opts.quick, &meter)?;
        if size != entry.len() {
            return Err(Error::Verification(format!(
                "{} is {size} bytes{note}, should be {} bytes",
                file.path,
                entry.len()
            )));
        }
        if let Some(sum) = sum
            && sum != entry.md5
        {
            return Err(Error::Verification(format!(
                "{} has checksum {sum}{note} instead of {}",
                file.path, entry.md5
            )));
        }
    }
    // Recover concatenates the chain, not the .dat: a file it would use
    // that the .dat does not describe has never been checked.
    let listed: std::collections::HashSet<&str> = entries.iter().map(|e| e.base_name()).collect();
    if let Some(extra) = chain
        .files()
        .iter()
        .find(|f| !listed.contains(f.name.as_str()))
    {
        return Err(Error::Verification(format!(
            "{} would be used by recover but is not listed in {}; \
             the next backup records it, or remove it if it does not belong",
            extra.path,
            chain.dat_path()
        )));
    }
    Ok(())
}

/// Uncompressed size and (unless `quick`) md5 of a chain file.
///
/// Only a file that does not exist is "missing" (repozo's message); any
/// other failure to open or read it keeps its OS error and path, and a
/// gzip file whose contents are damaged says so.
fn measure(
    files: &DataFiles,
    file: &ChainFile,
    quick: bool,
    meter: &Meter,
) -> Result<(u64, Option<String>)> {
    // Opened even when only its size is wanted, as repozo does: a backup
    // file that cannot be read is not a verified backup.
    match crate::io::open_regular(&file.path).and_then(|f| f.metadata()) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Verification(format!("{} is missing", file.path)));
        }
        Err(e) => return Err(Error::io(&file.path, e)),
        Ok(meta) if quick && !file.gzip() => {
            meter.add(meta.len());
            return Ok((meta.len(), None));
        }
        Ok(_) => {}
    }
    // A gzip reader's own errors (not the operating system's) mean the
    // contents are damaged or cut short.
    let damaged = |e: Error| match e {
        Error::Io { source, .. } if file.gzip() && source.raw_os_error().is_none() => {
            Error::Verification(format!("{} cannot be read as gzip: {source}", file.path))
        }
        e => e,
    };
    if quick {
        // Sizes only: a gzipped file must still be decompressed to learn
        // its size, but nothing needs its md5.
        let size = files
            .copy(file.data_file(), &mut meter.tee(None), "")
            .map_err(damaged)?;
        return Ok((size, None));
    }
    let (size, sum) = files
        .hash(file.data_file(), Some(&mut meter.tee(None)), "")
        .map_err(damaged)?;
    Ok((size, Some(sum)))
}
