//! `-R -o OUT --incremental`: bring an existing Data.fs (a standby's) up to
//! the state of a date by appending only what is new.
//!
//! The target is exactly what a full recover with the same `-D` writes:
//! the chain for that date, ending at E (the end of its last `.dat` line).
//! b is the largest chain boundary ≤ min(size of OUT, E) below which OUT
//! is *proved* to hold the chain's bytes:
//!
//! * by default, by the md5 of every `.dat` range below b, read from OUT;
//! * with `-Q`, in constant time, from the state file `<OUT>.repozo-state`
//!   that our last recover into OUT wrote (the `.dat` lines OUT holds, its
//!   device, inode, size and mtime), plus the md5 of OUT's first and last
//!   MiB and the transaction that ends OUT, all as recorded then. `-Q`
//!   cannot see a byte changed in the middle of OUT by something that kept
//!   its size and restored its mtime; the default mode can. A missing or
//!   mismatching state file means the md5 proof.
//!
//! Bytes after b that are the chain's (a later state of the same chain, a
//! torn earlier append) are cut with `ftruncate`; bytes that are not
//! (local commits, a pack, another database) mean a full recover, or an
//! error under `--no-fallback`. Then the rest of the chain is appended,
//! each file checked against its `.dat` line, OUT is fsynced, the chain's
//! `.index` installed and the state file written last.
//!
//! After a pack backed up with `--pack-delta`, the chain starts with a
//! pack delta, and OUT (a standby) holds the state before the pack, the
//! delta's base, or its first files: proved the same way, against the
//! base's `.dat` lines, OUT is rebuilt from its own bytes and the delta
//! (with the base files it lacks from the repository) instead of a full
//! recover that reads the whole base from the repository ([`standby`]).
//! That writes OUT anew, as a full recover does (`.part`, rename).
//!
//! Invariants: OUT's bytes below b are never written; the state file
//! exists only while it describes OUT (it is removed before OUT changes);
//! a ZODB that has OUT open (its `<OUT>.lock`) makes this refuse (exit
//! 11), and the lock is held throughout, so none can open it meanwhile.

use std::fmt;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::FileExt;

mod standby;
mod state;

use self::state::{check_state, remove_state, write_state};
use super::Ctx;
use super::RecoverOptions;
use super::blobs::TreeSync;
use super::meter::Meter;
use super::output::{Check, install_index, write_output};
use super::source::Source;
use crate::error::{Error, IoContext, Result};
use crate::failpoint;
use crate::io::{CHUNK, Digests, open_regular};
use crate::lock::StorageLock;
use crate::repo::DataFile;
use crate::repo::sidecar::{self, Checks};
use crate::repo::{Chain, DatEntry, is_gzip_name};
use crate::report::{Event, Phase};

/// Options of `--incremental`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IncrementalOptions {
    /// Prove OUT's prefix from the state file in constant time (`-Q`)
    /// instead of by md5. Default: off.
    pub quick: bool,
    /// Fail instead of recovering in full when OUT cannot be continued
    /// (`--no-fallback`). Default: off.
    pub no_fallback: bool,
}

/// Why an incremental recover recovers in full instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FullReason {
    /// OUT does not exist yet.
    Missing,
    /// OUT is empty.
    Empty,
    /// The chain has no `.dat`, so nothing can be proved.
    NoDat(String),
    /// A chain file is not (or not in order) in the `.dat`.
    Unlisted {
        /// The chain file.
        file: String,
        /// The `.dat`.
        dat: String,
    },
    /// The `.dat`'s ranges do not follow one another from 0.
    NotContiguous(String),
    /// OUT is shorter than the chain's full backup.
    SmallerThanFull(String),
    /// A range of OUT does not have the md5 its `.dat` line records.
    Differs {
        /// The backup file of that range.
        file: String,
        /// Range start.
        start: u64,
        /// Range end.
        end: u64,
    },
    /// OUT goes on, from this offset, with bytes that are in no backup.
    ForeignTail(u64),
}

impl FullReason {
    /// Whether OUT holds something a full recover would throw away (as
    /// opposed to there being nothing to continue): `--no-fallback` refuses
    /// those.
    pub fn is_fallback(&self) -> bool {
        !matches!(self, FullReason::Missing | FullReason::Empty)
    }
}

impl fmt::Display for FullReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FullReason::Missing => f.write_str("it does not exist"),
            FullReason::Empty => f.write_str("it is empty"),
            FullReason::NoDat(dat) => write!(f, "{dat} is missing, so nothing can be proved"),
            FullReason::Unlisted { file, dat } => write!(
                f,
                "the lines of {dat} do not match the chain's files at {file} (a backup file \
                 missing, or not recorded)"
            ),
            FullReason::NotContiguous(dat) => {
                write!(f, "the ranges in {dat} do not follow one another")
            }
            FullReason::SmallerThanFull(file) => {
                write!(f, "it is smaller than the full backup {file}")
            }
            FullReason::Differs { file, start, end } => write!(
                f,
                "its bytes {start}..{end} differ from {file} (packed since, or another database)"
            ),
            FullReason::ForeignTail(at) => write!(
                f,
                "from byte {at} on it holds bytes that are in no backup (local commits?)"
            ),
        }
    }
}

/// What an incremental recover did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncrementalOutcome {
    /// OUT already held the target state (its index and state file were
    /// refreshed).
    AlreadyCurrent {
        /// OUT's size.
        size: u64,
    },
    /// OUT was cut back to a chain boundary and/or had files appended.
    Updated {
        /// The boundary OUT was cut back to, if it was longer.
        truncated_to: Option<u64>,
        /// Bytes appended.
        appended: u64,
        /// Backup files appended.
        files: usize,
    },
    /// OUT held the state a pack delta starting the chain is based on (or
    /// its first files), and was rebuilt from its own bytes and the delta.
    Rebuilt {
        /// OUT's size now.
        size: u64,
        /// Bytes of the base state read from OUT.
        from_standby: u64,
        /// Bytes of the base state read from the repository (those after).
        from_repository: u64,
    },
    /// OUT was recovered from scratch.
    Full(FullReason),
}

impl fmt::Display for IncrementalOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files = |n: usize| if n == 1 { "file" } else { "files" };
        match self {
            IncrementalOutcome::AlreadyCurrent { size } => {
                write!(f, "already current ({size} bytes)")
            }
            IncrementalOutcome::Updated {
                truncated_to: Some(b),
                files: 0,
                ..
            } => write!(f, "truncated to {b} bytes"),
            IncrementalOutcome::Updated {
                truncated_to: Some(b),
                appended,
                files: k,
            } => write!(
                f,
                "truncated to {b} bytes, then appended {appended} bytes from {k} {}",
                files(*k)
            ),
            IncrementalOutcome::Updated {
                truncated_to: None,
                appended,
                files: k,
            } => write!(f, "appended {appended} bytes from {k} {}", files(*k)),
            IncrementalOutcome::Rebuilt {
                size,
                from_standby,
                from_repository,
            } => write!(
                f,
                "rebuilt ({size} bytes) from its own first {from_standby} bytes and the pack \
                 delta, with {from_repository} bytes of the delta's base from the repository"
            ),
            IncrementalOutcome::Full(reason) => write!(f, "full recover because {reason}"),
        }
    }
}

/// Brings `opts.output` to the state of `opts.date` (see the module doc).
/// `opts.incremental` holds `-Q` and `--no-fallback` (default: neither).
pub fn recover_incremental(opts: &RecoverOptions, ctx: Ctx) -> Result<IncrementalOutcome> {
    let inc = opts.incremental.unwrap_or_default();
    let Some(output) = opts.output.as_deref() else {
        return Err(Error::Config(
            "--incremental needs -o/--output: it brings an existing Data.fs up to date".into(),
        ));
    };
    let _lock = StorageLock::acquire(output)?;
    failpoint::hit("incremental:locked");
    let (mut chain, _) = crate::repo::chain_for_date(
        &opts.repository,
        opts.date.as_deref(),
        ctx.clock,
        ctx.report,
    )?;
    ctx.report.event(&Event::RecoveringTo(output.to_string()));
    let mut checks = Checks::Md5;
    let plan = match target_lines(&mut chain)? {
        Err(reason) => Plan::Full(reason),
        Ok((lines, all)) => {
            checks = sidecar::checks_for(chain.repo(), &lines, opts.md5, ctx.report)?;
            let how = (&checks, inc.quick, opts.md5);
            choose(&chain, output, lines, &all, how, ctx)?
        }
    };
    failpoint::hit("incremental:proved");
    // Blobs first: their new files are in place before the Data.fs names
    // them; the ones the state no longer names go after it.
    let blobs = match opts.blob_dir.as_deref() {
        Some(dir) => Some(TreeSync::prepare(&chain, dir, inc.quick, ctx)?),
        None => None,
    };
    let outcome = update_data(&mut chain, output, plan, (&checks, opts.md5), inc, ctx)?;
    if let Some(sync) = blobs {
        super::blobs::all_restored(&sync.finish(ctx)?)?;
    }
    Ok(outcome)
}

/// What to do with OUT, once what it holds is proved (or not).
enum Plan {
    /// Cut back and/or append: OUT holds the target's first lines.
    Continue(Proof, Vec<DatEntry>),
    /// Rebuild OUT from its own bytes and the pack delta that starts the
    /// chain (the target's lines): OUT holds the first files of its base.
    Rebuild(standby::BaseProof, Source, Vec<DatEntry>),
    /// Recover in full, because of this.
    Full(FullReason),
}

/// Proves what OUT holds and plans from it: the target's first lines
/// (the usual case: append), or, when the chain starts with a pack delta,
/// the first files of the delta's base (the standby of the state before a
/// pack: rebuild from its own bytes), or neither (a full recover).
///
/// The base is tried first when OUT's size is a file boundary of the base
/// and of no target line (a standby not yet caught up since the pack);
/// otherwise only when the target's proof found OUT too short for the
/// delta's bytes or not holding them. Either way only what is proved is
/// used; the order only saves reading OUT twice.
fn choose(
    chain: &Chain,
    output: &str,
    lines: Vec<DatEntry>,
    all: &[DatEntry],
    (checks, quick, md5_only): (&Checks, bool, bool),
    ctx: Ctx,
) -> Result<Plan> {
    let (out, meta) = match open_out(output)? {
        Ok(o) => o,
        Err(reason) => return Ok(Plan::Full(reason)),
    };
    let at_target_boundary = all.iter().any(|l| l.end == out.size);
    let how = (quick, md5_only);
    // The chain's pack delta, once looked for (`None`: not yet).
    let mut delta = None;
    let mut tried = false;
    if !at_target_boundary {
        let header = standby::delta_of(chain)?;
        if let Some(h) = header
            .as_ref()
            .filter(|h| standby::is_boundary(h, out.size))
        {
            tried = true;
            if let Some(proof) = standby::prove(chain, output, &out, &meta, h, how, ctx)? {
                return Ok(Plan::Rebuild(proof, out, lines));
            }
        }
        delta = Some(header);
    }
    let reason = match plan(
        chain,
        output,
        &out,
        &meta,
        (&lines, all),
        checks,
        quick,
        ctx,
    )? {
        Ok(proof) => return Ok(Plan::Continue(proof, lines)),
        Err(reason) => reason,
    };
    // OUT too short for the delta's bytes, or not holding them.
    let not_the_delta = matches!(
        reason,
        FullReason::SmallerThanFull(_) | FullReason::Differs { start: 0, .. }
    );
    if tried || !not_the_delta {
        return Ok(Plan::Full(reason));
    }
    let header = match delta {
        Some(h) => h,
        None => standby::delta_of(chain)?,
    };
    if let Some(h) = header
        && let Some(proof) = standby::prove(chain, output, &out, &meta, &h, how, ctx)?
    {
        return Ok(Plan::Rebuild(proof, out, lines));
    }
    Ok(Plan::Full(reason))
}

/// OUT opened, with its metadata; or why there is nothing to continue.
fn open_out(output: &str) -> Result<Result<(Source, std::fs::Metadata), FullReason>> {
    let file = match open_regular(output) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Err(FullReason::Missing));
        }
        Err(e) => return Err(Error::io(output, e)),
    };
    let meta = file.metadata().at(output)?;
    if meta.len() == 0 {
        return Ok(Err(FullReason::Empty));
    }
    let out = Source {
        path: output.to_string(),
        file,
        size: meta.len(),
    };
    Ok(Ok((out, meta)))
}

/// The Data.fs part of [`recover_incremental`], once planned.
fn update_data(
    chain: &mut Chain,
    output: &str,
    plan: Plan,
    (checks, md5_only): (&Checks, bool),
    inc: IncrementalOptions,
    ctx: Ctx,
) -> Result<IncrementalOutcome> {
    match plan {
        Plan::Continue(proof, lines) => apply(chain, output, &lines, proof, checks, ctx),
        Plan::Rebuild(proof, out, lines) => {
            standby::rebuild(chain, output, (proof, out), &lines, md5_only, ctx)
        }
        Plan::Full(reason) if reason.is_fallback() && inc.no_fallback => {
            Err(Error::CannotContinue {
                file: output.to_string(),
                why: reason.to_string(),
            })
        }
        Plan::Full(reason) => {
            remove_state(output)?;
            write_output(chain, output, Check::Quiet, md5_only, None, ctx)?;
            if let Ok((lines, _)) = target_lines(chain)? {
                write_state(output, &lines)?;
            }
            Ok(IncrementalOutcome::Full(reason))
        }
    }
}

/// The `.dat` lines of the chain's files, in order (the target), and all
/// the `.dat`'s lines (the chain's later increments follow the target).
#[allow(clippy::type_complexity)]
fn target_lines(chain: &mut Chain) -> Result<Result<(Vec<DatEntry>, Vec<DatEntry>), FullReason>> {
    let dat = chain.dat_path().to_string();
    let names: Vec<String> = chain.files().iter().map(|f| f.name.clone()).collect();
    let Some(all) = chain.entries()? else {
        return Ok(Err(FullReason::NoDat(dat)));
    };
    for (i, name) in names.iter().enumerate() {
        if all.get(i).map(DatEntry::base_name) != Some(name.as_str()) {
            return Ok(Err(FullReason::Unlisted {
                file: chain.files()[i].path.clone(),
                dat,
            }));
        }
    }
    let mut end = 0;
    for line in all {
        if line.start != end {
            return Ok(Err(FullReason::NotContiguous(dat)));
        }
        end = line.end;
    }
    Ok(Ok((all[..names.len()].to_vec(), all.to_vec())))
}

/// Where OUT stands: `b` is proved to be the chain's, the target's first
/// `k` lines are below it, and OUT is `size` bytes long (what lies past
/// `b` is the chain's too).
#[derive(Debug, Clone, Copy)]
struct Proof {
    b: u64,
    k: usize,
    size: u64,
}

#[allow(clippy::too_many_arguments)]
fn plan(
    chain: &Chain,
    output: &str,
    out: &Source,
    meta: &std::fs::Metadata,
    (lines, all): (&[DatEntry], &[DatEntry]),
    checks: &Checks,
    quick: bool,
    ctx: Ctx,
) -> Result<Result<Proof, FullReason>> {
    let target_end = lines.last().map_or(0, |l| l.end);
    let limit = out.size.min(target_end);
    if quick {
        match check_state(output, meta, out, all)? {
            Ok(()) => {
                // OUT holds the chain's lines up to its size: no reads.
                let k = lines.iter().take_while(|l| l.end <= limit).count();
                let b = if k == 0 { 0 } else { lines[k - 1].end };
                if k > 0 {
                    ctx.report.event(&Event::ProvedPrefix {
                        bytes: b,
                        files: k,
                        quick: true,
                    });
                    return Ok(Ok(Proof {
                        b,
                        k,
                        size: out.size,
                    }));
                }
            }
            Err(why) => ctx.report.event(&Event::StateUnusable(why)),
        }
    }
    // The md5 proof: every target line that fits in OUT.
    let provable = lines.iter().take_while(|l| l.end <= limit);
    let meter = Meter::new(
        ctx.report,
        Phase::Prove,
        provable.clone().last().map(|l| l.end),
    );
    let mut b = 0;
    let mut k = 0;
    for line in provable {
        if !holds(out, line, checks, &meter, ctx)? {
            return Ok(Err(FullReason::Differs {
                file: line.file.clone(),
                start: line.start,
                end: line.end,
            }));
        }
        b = line.end;
        k += 1;
    }
    if k == 0 {
        return Ok(Err(FullReason::SmallerThanFull(
            chain.files()[0].path.clone(),
        )));
    }
    ctx.report.event(&Event::ProvedPrefix {
        bytes: b,
        files: k,
        quick: false,
    });
    // What follows b must be the chain's: later lines, whole or torn.
    let mut pos = b;
    for line in &all[k..] {
        if pos == out.size {
            break;
        }
        if line.end <= out.size {
            if out.md5_range(line.start, line.end)? != line.md5 {
                return Ok(Err(FullReason::ForeignTail(line.start)));
            }
            pos = line.end;
        } else {
            let path = chain.path_of(line.base_name());
            let df = DataFile {
                path: &path,
                gzip: is_gzip_name(&path),
            };
            if !prefix_matches(chain, out, line.start, out.size - line.start, df)? {
                return Ok(Err(FullReason::ForeignTail(line.start)));
            }
            pos = out.size;
        }
    }
    if pos < out.size {
        return Ok(Err(FullReason::ForeignTail(pos)));
    }
    Ok(Ok(Proof {
        b,
        k,
        size: out.size,
    }))
}

/// Whether OUT holds `line`'s bytes at its range: by the BLAKE3 of the
/// file's sidecar when `checks` has one, else (or if that does not match:
/// md5 decides) by its md5.
fn holds(out: &Source, line: &DatEntry, checks: &Checks, meter: &Meter, ctx: Ctx) -> Result<bool> {
    if let Some(want) = checks.blake3_of(line.base_name()) {
        let got = out.digest_range(line.start, line.end, Digests::Blake3, Some(meter))?;
        if got.len == line.len() && got.blake3.as_deref() == Some(want) {
            return Ok(true);
        }
        let holds = out.md5_range(line.start, line.end)? == line.md5;
        if holds {
            ctx.report.event(&Event::SidecarWrong {
                file: line.file.clone(),
            });
        }
        return Ok(holds);
    }
    Ok(out.md5_range_metered(line.start, line.end, meter)? == line.md5)
}

/// Whether OUT's `len` bytes at `at` are the first `len` uncompressed
/// bytes of `file` (false if the file is shorter or cannot be read).
fn prefix_matches(chain: &Chain, out: &Source, at: u64, len: u64, file: DataFile) -> Result<bool> {
    let mut r = match chain.reader().open(file) {
        Ok(r) => r,
        // A backup file that is gone proves nothing: the tail is foreign.
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    let mut theirs = vec![0u8; CHUNK];
    let mut ours = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < len {
        let want = (len - done).min(CHUNK as u64) as usize;
        match r.read_exact(&mut theirs[..want]) {
            Ok(()) => {}
            // Shorter than OUT's tail, or damaged gzip: not its bytes.
            Err(e) if e.raw_os_error().is_none() => return Ok(false),
            Err(e) => return Err(Error::io(file.path, e)),
        }
        out.file
            .read_exact_at(&mut ours[..want], at + done)
            .at(&out.path)?;
        if ours[..want] != theirs[..want] {
            return Ok(false);
        }
        done += want as u64;
    }
    Ok(true)
}

fn apply(
    chain: &Chain,
    output: &str,
    lines: &[DatEntry],
    proof: Proof,
    checks: &Checks,
    ctx: Ctx,
) -> Result<IncrementalOutcome> {
    let Proof { b, k, size } = proof;
    let index = format!("{output}.index");
    if k == lines.len() && size == b {
        install_index(chain, &index, ctx)?;
        failpoint::hit("incremental:index-installed");
        write_state(output, lines)?;
        failpoint::hit("incremental:state-written");
        return Ok(IncrementalOutcome::AlreadyCurrent { size });
    }
    // OUT is about to change: what describes it goes first.
    remove_state(output)?;
    if std::fs::remove_file(&index).is_ok() {
        ctx.report.event(&Event::RemovedStaleIndex(index.clone()));
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(output)
        .at(output)?;
    let truncated_to = (size > b).then_some(b);
    if truncated_to.is_some() {
        file.set_len(b).at(output)?;
        file.sync_all().at(output)?;
        failpoint::hit("incremental:truncated");
    }
    let files = chain.reader();
    let to_append = lines[k..].iter().map(DatEntry::len).sum();
    let meter = Meter::new(ctx.report, Phase::Recover, Some(to_append));
    let mut appended = 0u64;
    for (i, line) in lines[k..].iter().enumerate() {
        let f = &chain.files()[k + i];
        let mut blake3 = checks.blake3_of(line.base_name());
        let (n, md5) = loop {
            let mut w = BufWriter::with_capacity(CHUNK, Positioned::new(&file, line.start));
            let digests = if blake3.is_some() {
                Digests::Blake3
            } else {
                Digests::Md5
            };
            let copied = files
                .digest(
                    f.data_file(),
                    Some(&mut meter.tee(Some(&mut w))),
                    output,
                    digests,
                )
                .and_then(|r| w.flush().at(output).map(|()| r));
            drop(w);
            let sums = match copied {
                Ok(r) => r,
                Err(e) => {
                    // Interrupted or failed mid-file: back to the boundary
                    // before it, a complete state of the chain.
                    file.set_len(line.start).at(output)?;
                    file.sync_all().at(output)?;
                    return Err(e);
                }
            };
            let Some(want) = blake3 else {
                break (sums.len, sums.md5.unwrap_or_default());
            };
            if sums.blake3.as_deref() == Some(want) {
                // The sidecar binds its BLAKE3 to the line's md5.
                break (sums.len, line.md5.clone());
            }
            // md5 decides, never the sidecar alone: if the file matches
            // its md5, it is copied again, checked by md5.
            let want = (line.len(), line.md5.as_str());
            let again = sidecar::recheck_by_md5(&files, f.data_file(), want, ctx.report)?;
            if again.len != line.len() || again.md5.as_deref() != Some(line.md5.as_str()) {
                break (again.len, again.md5.unwrap_or_default());
            }
            blake3 = None;
        };
        if n != line.len() || md5 != line.md5 {
            // Keep OUT a valid state of the chain: cut the bad file off.
            file.set_len(line.start).at(output)?;
            file.sync_all().at(output)?;
            return Err(if n != line.len() {
                Error::SizeMismatch {
                    path: f.path.clone(),
                    size: n,
                    want: line.len(),
                    note: "",
                }
            } else {
                Error::ChecksumMismatch {
                    path: f.path.clone(),
                    got: md5,
                    want: line.md5.clone(),
                    note: "",
                }
            });
        }
        appended += n;
        ctx.report.event(&Event::RecoveredChunk {
            file: f.path.clone(),
            size: n,
            md5,
        });
        failpoint::hit("incremental:appended-file");
    }
    file.sync_all().at(output)?;
    drop(file);
    failpoint::hit("incremental:synced");
    install_index(chain, &index, ctx)?;
    failpoint::hit("incremental:index-installed");
    write_state(output, lines)?;
    failpoint::hit("incremental:state-written");
    Ok(IncrementalOutcome::Updated {
        truncated_to,
        appended,
        files: lines.len() - k,
    })
}

/// Sequential writes at a file position (`pwrite`), starting at `at`.
struct Positioned<'f> {
    file: &'f std::fs::File,
    at: u64,
}

impl<'f> Positioned<'f> {
    fn new(file: &'f std::fs::File, at: u64) -> Self {
        Positioned { file, at }
    }
}

impl Write for Positioned<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
