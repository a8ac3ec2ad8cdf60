//! `-V`: check every file of the current chain against its `.dat` entry.

use std::path::Path;

use super::Ctx;
use crate::error::{Error, Result};
use crate::io::{copy_hashed, is_gzip_name, open_data_file};
use crate::repo::{self, Repository, dat};
use crate::report::Event;

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
/// message.
pub fn verify(opts: &VerifyOptions, ctx: Ctx) -> Result<()> {
    let repo = Repository::new(&opts.repository);
    let chain = repo.chain(&ctx.clock.now().to_string(), ctx.report)?;
    if chain.is_empty() {
        return Err(Error::NoFiles("No files in repository".to_string()));
    }
    let dat_path = repo::with_ext(&chain[0], ".dat");
    let entries = dat::read(&dat_path)?
        .ok_or_else(|| Error::io(&dat_path, std::io::Error::from_raw_os_error(2)))?;
    let listed: Vec<String> = entries.iter().map(|e| repo.path(e.base_name())).collect();
    for entry in entries {
        let filename = repo.path(entry.base_name());
        ctx.report.event(&Event::Verifying(filename.clone()));
        let gz = is_gzip_name(&filename);
        let note = if gz { " (when uncompressed)" } else { "" };
        let (size, sum) = measure(&filename, gz, opts.quick)?;
        if size != entry.len() {
            return Err(Error::Verification(format!(
                "{filename} is {size} bytes{note}, should be {} bytes",
                entry.len()
            )));
        }
        if let Some(sum) = sum
            && sum != entry.md5
        {
            return Err(Error::Verification(format!(
                "{filename} has checksum {sum}{note} instead of {}",
                entry.md5
            )));
        }
    }
    // Recover concatenates the chain, not the .dat: a file it would use
    // that the .dat does not describe has never been checked.
    if let Some(extra) = chain.iter().find(|f| !listed.contains(f)) {
        return Err(Error::Verification(format!(
            "{extra} would be used by recover but is not listed in {dat_path}; \
             the next backup records it, or remove it if it does not belong"
        )));
    }
    Ok(())
}

/// Uncompressed size and (unless `quick`) md5 of a chain file.
fn measure(filename: &str, gz: bool, quick: bool) -> Result<(u64, Option<String>)> {
    let missing = || Error::Verification(format!("{filename} is missing"));
    if !gz && quick {
        let meta = std::fs::metadata(filename).map_err(|_| missing())?;
        return Ok((meta.len(), None));
    }
    if !Path::new(filename).is_file() {
        return Err(missing());
    }
    let mut r = open_data_file(filename).map_err(|_| missing())?;
    let unreadable = |e: Error| {
        Error::Verification(format!(
            "{filename} cannot be read{}: {e}",
            if gz { " as gzip" } else { "" }
        ))
    };
    if quick {
        // Sizes only: a gzipped file must still be decompressed to learn
        // its size, but nothing needs its md5.
        let size = std::io::copy(&mut r, &mut std::io::sink())
            .map_err(|e| unreadable(Error::io(filename, e)))?;
        return Ok((size, None));
    }
    let (size, sum) = copy_hashed(&mut r, None, filename, "").map_err(unreadable)?;
    Ok((size, Some(sum)))
}
