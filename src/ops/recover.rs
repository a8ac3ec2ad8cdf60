//! `-R`: rebuild the Data.fs as of a date from its chain.

use std::io::Write;

use super::Ctx;
use super::output::{Check, copy_chain, read_truth, write_output};
use crate::error::{Error, IoContext, Result};
use crate::repo;
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
    /// `-w`: log every chain file's check as repozo's `-w` does
    /// ("Recovered chunk …"). The checks themselves are made unless
    /// `no_verify` is set. Default: off.
    pub with_verify: bool,
    /// `--no-verify`: skip checking each chain file's size and md5 against
    /// its `.dat` line (what ZODB's repozo does without `-w`). Default:
    /// off, so a recover fails, keeping the old output, on a damaged or
    /// unrecorded backup file.
    pub no_verify: bool,
    /// `--incremental`: bring the existing output up to date instead of
    /// rewriting it (see [`super::recover_incremental`]). Default: `None`,
    /// a full recover as repozo does. Requires `output`.
    pub incremental: Option<super::IncrementalOptions>,
    /// `--blob-dir`: also restore the blobs of the recovered state into
    /// this blob directory (see [`super::blobs::StagedTree`]; with
    /// `incremental`, [`super::blobs::TreeSync`]). Requires `output`.
    /// Default: `None`.
    pub blob_dir: Option<String>,
    /// `--md5`: check with md5 even where every file has a fast-hash
    /// sidecar ([`crate::repo::sidecar`]). Default: off.
    pub md5: bool,
}

/// Recovers the chain for `opts.date` into `opts.output` or `stdout`.
///
/// With an output file, the data is written to `<output>.part`, fsynced,
/// and only then renamed over `<output>`; the chain's last `.index` becomes
/// `<output>.index` the same way. If anything fails, the existing output
/// and its index are left exactly as they were and the `.part` is removed.
pub fn recover(opts: &RecoverOptions, ctx: Ctx, stdout: &mut dyn Write) -> Result<()> {
    let (mut chain, _) = repo::chain_for_date(
        &opts.repository,
        opts.date.as_deref(),
        ctx.clock,
        ctx.report,
    )?;
    // repozo says where it recovers to before it reads the `.dat` for -w.
    ctx.report.event(&match &opts.output {
        Some(output) => Event::RecoveringTo(output.clone()),
        None => Event::RecoveringToStdout,
    });
    let check = Check::of_flags(opts.with_verify, opts.no_verify);
    let blobs = opts.blob_dir.as_deref();
    if blobs.is_some() && opts.output.is_none() {
        return Err(Error::Config(
            "--blob-dir needs -o/--output: the blobs are restored beside a Data.fs file".into(),
        ));
    }
    let Some(output) = &opts.output else {
        let truth = read_truth(&mut chain, check, opts.md5, ctx)?;
        if truth.is_some() {
            chain.check_coverage()?;
        }
        copy_chain(&mut chain, truth.as_ref(), check, stdout, "<stdout>", ctx)?;
        return stdout.flush().at("<stdout>");
    };
    write_output(&mut chain, output, check, opts.md5, blobs, ctx)
}
