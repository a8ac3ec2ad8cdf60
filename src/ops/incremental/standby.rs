//! After a pack: a standby rebuilt from its own bytes and the pack delta.
//!
//! A chain written by `-B --pack-delta` after a pack starts with a pack
//! delta ([`crate::repo::packdelta`]): the packed Data.fs as operations
//! against a *base*, the state of the last backup before the pack. A
//! standby kept current with `--incremental` holds that state (or, if it
//! was last caught up earlier, the base's first files), yet its bytes are
//! no prefix of the new chain, so it would be recovered in full: the whole
//! base read from the repository (on S3, downloaded) to apply the delta.
//!
//! Instead, when OUT ends exactly at a file boundary of the base and holds
//! those base files (proved as the chain's lines are: by md5, by their
//! sidecars' BLAKE3, or with `-Q` by the state file), the delta is applied
//! to OUT's own bytes, followed by the base files OUT lacks, read from the
//! repository. The output is written as a full recover writes it, by the
//! same code ([`write_output`]): to `<OUT>.part`, every chain file checked
//! against its `.dat` line (the delta's rebuilt bytes by its md5 or
//! sidecar, like any file), fsynced, renamed over OUT, the `.index`
//! following; only the base files' reader differs
//! ([`Chain::read_base_head_from`]). A crash leaves OUT's old bytes or the
//! new ones, never a mix.
//!
//! Invariants: only a proved prefix of OUT is read, and only when OUT
//! holds nothing after it (nothing a rebuild would throw away, so
//! `--no-fallback` allows it); whatever is not proved means the full
//! recover of before.

use std::sync::Arc;

use super::state::{check_state, remove_state, write_state};
use super::{Ctx, IncrementalOutcome, holds};
use crate::error::Result;
use crate::ops::meter::Meter;
use crate::ops::output::{Check, write_output};
use crate::ops::source::Source;
use crate::repo::packdelta::{self, Header};
use crate::repo::sidecar;
use crate::repo::{BaseHead, Chain, DatEntry};
use crate::report::{Event, Phase};

/// What OUT was proved to hold of the base of the pack delta that starts
/// the chain: its first `k` files.
#[derive(Debug, Clone)]
pub(super) struct BaseProof {
    /// The delta's header.
    header: Header,
    /// How many of its base files OUT holds (at least one).
    k: usize,
    /// Proved from the state file (`-Q`).
    quick: bool,
}

/// The header of the chain's first file if it is a pack delta.
pub(super) fn delta_of(chain: &Chain) -> Result<Option<Header>> {
    packdelta::header_of(chain.repo(), &chain.files()[0].name)
}

/// Whether `size` is the end of one of `header`'s base files.
pub(super) fn is_boundary(header: &Header, size: u64) -> bool {
    header.base.iter().any(|l| l.end == size)
}

/// Whether OUT holds the first files of `header`'s base and nothing after
/// them: proved from the state file with `quick` (if it can be used), else
/// by the md5 (or sidecar BLAKE3) of every such file's range in OUT.
/// `None` if not, after an [`Event::NotPackDeltaBase`] saying why.
pub(super) fn prove(
    chain: &Chain,
    output: &str,
    out: &Source,
    meta: &std::fs::Metadata,
    header: &Header,
    (quick, md5_only): (bool, bool),
    ctx: Ctx,
) -> Result<Option<BaseProof>> {
    let refuse = |why: String| {
        ctx.report.event(&Event::NotPackDeltaBase {
            delta: chain.files()[0].path.clone(),
            why,
        });
        Ok(None)
    };
    let base = &header.base;
    let mut end = 0;
    for line in base {
        if line.start != end {
            return refuse("the ranges of its base files do not follow one another".into());
        }
        end = line.end;
    }
    let Some(k) = base.iter().position(|l| l.end == out.size).map(|i| i + 1) else {
        return refuse(format!(
            "{output} is {} bytes long, which is not where one of the {} files of the \
             delta's base ({end} bytes) ends",
            out.size,
            base.len()
        ));
    };
    let proof = |quick| {
        Ok(Some(BaseProof {
            header: header.clone(),
            k,
            quick,
        }))
    };
    if quick {
        match check_state(output, meta, out, base)? {
            Ok(()) => return proof(true),
            Err(why) => ctx.report.event(&Event::StateUnusable(why)),
        }
    }
    let held = &base[..k];
    let checks = sidecar::checks_for(chain.repo(), held, md5_only, ctx.report)?;
    let meter = Meter::new(ctx.report, Phase::Prove, Some(out.size));
    for line in held {
        if !holds(out, line, &checks, &meter, ctx)? {
            return refuse(format!(
                "its bytes {}..{} differ from {}, a file of the delta's base",
                line.start,
                line.end,
                chain.path_of(&line.file)
            ));
        }
    }
    proof(false)
}

/// Rebuilds OUT from the base files it was proved to hold (`proof`, read
/// through `out`, the handle they were proved on), the base files after
/// them from the repository and the chain, whose `.dat` lines are `lines`:
/// see the module doc.
pub(super) fn rebuild(
    chain: &mut Chain,
    output: &str,
    (proof, out): (BaseProof, Source),
    lines: &[DatEntry],
    md5_only: bool,
    ctx: Ctx,
) -> Result<IncrementalOutcome> {
    let BaseProof { header, k, quick } = proof;
    let head = BaseHead {
        delta: chain.files()[0].name.clone(),
        lines: header.base[..k].to_vec(),
        file: Arc::new(out.file),
        path: output.to_string(),
    };
    let from_standby = head.len();
    let from_repository = header.base_len() - from_standby;
    ctx.report.event(&Event::RebuildingFromStandby {
        delta: chain.files()[0].path.clone(),
        base_bytes_from_standby: from_standby,
        base_files_from_standby: k,
        base_bytes_from_repository: from_repository,
        base_files_from_repository: header.base.len() - k,
        quick,
    });
    chain.read_base_head_from(head);
    // OUT is about to be replaced: what describes it goes first.
    remove_state(output)?;
    write_output(chain, output, Check::Quiet, md5_only, None, ctx)?;
    write_state(output, lines)?;
    Ok(IncrementalOutcome::Rebuilt {
        size: lines.last().map_or(0, |l| l.end),
        from_standby,
        from_repository,
    })
}
