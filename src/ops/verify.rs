//! `-V`: check every file of a chain against its `.dat` entry, and the
//! stored blobs its manifests name; with `--deep`, also check that the
//! chain is a valid FileStorage.

use std::io::{Read, Write};

use super::Ctx;
use super::meter::Meter;
use crate::error::{Error, IoContext, Result};
use crate::fs::check::{Checker, Problem, Summary, oid_hex};
use crate::index::{self, Index};
use crate::io::{CHUNK, Digested, Digests};
use crate::repo::DataFiles;
use crate::repo::sidecar::{self, Checks};
use crate::repo::{Chain, ChainFile, DatEntry, split_ext};
use crate::report::{Event, Phase};

/// Options of a verify (`-V`).
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Repository directory (`-r`), as given.
    pub repository: String,
    /// Compare sizes only, not md5s (`-Q`). Gzipped files are still
    /// decompressed to learn their size. Default: off.
    pub quick: bool,
    /// Verify the chain of the state as of this UTC date (`-D`,
    /// `yyyy-mm-dd[-hh[-mm[-ss]]]`, compared as a string, as recover does).
    /// Default (`None`): now, as repozo verifies.
    pub date: Option<String>,
    /// `--deep`: after the size and md5 checks, read the chain as one
    /// FileStorage and check its structure, its coverage of the `.dat`
    /// ranges and its `.index` ([`verify`]). Default: off.
    pub deep: bool,
    /// `--md5`: check with md5 even where every file has a fast-hash
    /// sidecar ([`crate::repo::sidecar`]). Default: off (BLAKE3 when every
    /// file read has a usable sidecar).
    pub md5: bool,
}

/// What to do about a chain whose bytes are not a sound FileStorage.
const HINT_STRUCTURE: &str = "The chain's files match their .dat checksums, so the Data.fs was \
     already damaged when it was backed up (or the .dat was rewritten to match): recover restores \
     it as it is. Make a full backup (-F) from a healthy Data.fs (check it with ZODB's fstest.py); \
     to salvage this state, recover it and repair the copy with ZODB's fsrecover.py";

/// Verifies the chain for `opts.date` (by default the newest full backup
/// and its increments, repozo's `do_verify`): each file its `.dat` lists
/// (with `-D`, each file up to that date) must exist and have the recorded
/// uncompressed size and md5, and each file recover would use must be
/// listed. Stops at the first failure, with repozo's message. Files are
/// read one at a time, whatever the chain's length.
///
/// With `deep`, the chain is then read as one FileStorage
/// ([`crate::fs::check`]: the checks of ZODB's `fstest.py` and every
/// backpointer), and must cover the `.dat` ranges from byte 0 without a gap
/// or an overlap, each file starting at a transaction boundary; the fsIndex
/// rebuilt from it must equal the chain's stored `.index` byte for byte (if
/// there is one). Without `-Q`, the structure is checked while the md5s
/// are computed (one read of the chain); its failures are reported after
/// every md5 has matched. Memory: 16 bytes per data record plus the index
/// (see [`crate::fs::check`]).
pub fn verify(opts: &VerifyOptions, ctx: Ctx) -> Result<()> {
    let date = opts.date.as_deref().filter(|d| !d.is_empty());
    let (mut chain, when) =
        crate::repo::chain_for_date(&opts.repository, date, ctx.clock, ctx.report)?;
    // With -D, the full's .dat also lists the increments made after that
    // date: they belong to later states, not to this one.
    let entries: Vec<DatEntry> = chain
        .required_entries()?
        .iter()
        .filter(|e| date.is_none() || split_ext(e.base_name()).0 <= when.as_str())
        .cloned()
        .collect();
    let total = entries.iter().try_fold(0u64, |s, e| s.checked_add(e.len()));
    let meter = Meter::new(ctx.report, Phase::Verify, total);
    let files = chain.reader();
    // The structure is checked during the md5 pass when that pass reads
    // exactly the chain's files, in order (the usual case).
    let same_files = entries.len() == chain.files().len()
        && entries
            .iter()
            .zip(chain.files())
            .all(|(e, f)| e.base_name() == f.name);
    let with_blobs = super::blobs::chain_has_manifests(&chain);
    let checks = if opts.quick {
        Checks::Md5
    } else {
        sidecar::checks_for(chain.repo(), &entries, opts.md5, ctx.report)?
    };
    let mut deep = (opts.deep && !opts.quick && same_files).then(|| {
        Deep::new(
            entries.iter().fold(0u64, |n, e| n.saturating_add(e.len())),
            with_blobs,
        )
    });
    for entry in &entries {
        let file = ChainFile {
            path: chain.path_of(entry.base_name()),
            name: entry.base_name().to_string(),
        };
        ctx.report.event(&Event::Verifying(file.path.clone()));
        let note = if file.gzip() {
            " (when uncompressed)"
        } else {
            ""
        };
        if let Some(d) = deep.as_mut() {
            d.start_file(&file.path);
        }
        let blake3 = checks.blake3_of(&file.name);
        let (size, sums) = measure(
            &chain,
            &files,
            &file,
            (!opts.quick).then_some(checks.digests_for(&file.name)),
            deep.as_mut(),
            &meter,
        )?;
        if size != entry.len() {
            return Err(Error::SizeMismatch {
                path: file.path,
                size,
                want: entry.len(),
                note,
            });
        }
        let mut sum = sums.and_then(|s| {
            if blake3.is_some() && s.blake3.as_deref() == blake3 {
                // The sidecar binds this BLAKE3 to the line's md5.
                Some(entry.md5.clone())
            } else {
                s.md5
            }
        });
        if blake3.is_some() && sum.as_deref() != Some(entry.md5.as_str()) {
            let want = (entry.len(), entry.md5.as_str());
            sum = sidecar::recheck_by_md5(&files, file.data_file(), want, ctx.report)
                .map_err(damaged(&file))?
                .md5;
        }
        if let Some(sum) = sum
            && sum != entry.md5
        {
            return Err(Error::ChecksumMismatch {
                path: file.path,
                got: sum,
                want: entry.md5.clone(),
                note,
            });
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
        return Err(Error::NotListed {
            path: extra.path.clone(),
            verb: "would be used by recover but is not listed in",
            dat: chain.dat_path().to_string(),
            hint: "the next backup records it, or remove it if it does not belong".into(),
        });
    }
    // A chain backed up with --blob-dir: its blobs are part of the backup.
    let blobs = if with_blobs {
        super::blobs::verify(&chain, opts.quick, ctx)?
    } else {
        Vec::new()
    };
    if !opts.deep {
        return Ok(());
    }
    let size = chain.check_coverage()?;
    let deep = match deep {
        Some(d) => d,
        None => {
            let mut d = Deep::new(size, with_blobs);
            for file in chain.files() {
                d.start_file(&file.path);
                files
                    .copy(file.data_file(), &mut d, "")
                    .map_err(damaged(file))?;
            }
            d
        }
    };
    let (summary, index, blob_records) = deep.finish()?;
    ctx.report.event(&Event::StructureChecked {
        size: summary.size,
        transactions: summary.transactions,
        records: summary.records,
        backpointers: summary.backpointers,
    });
    compare_index(&chain, &summary, &index, ctx)?;
    if with_blobs {
        super::blobs::compare_records(&chain, &blobs, blob_records)?;
    }
    Ok(())
}

/// Uncompressed size and (unless `digests` is `None`, `-Q`) digests of a
/// chain file; its bytes also go to `deep` if given.
///
/// Only a file that does not exist is "missing" (repozo's message); any
/// other failure to open or read it keeps its OS error and path, and a
/// gzip file whose contents are damaged says so.
fn measure(
    chain: &Chain,
    files: &DataFiles,
    file: &ChainFile,
    digests: Option<Digests>,
    deep: Option<&mut Deep>,
    meter: &Meter,
) -> Result<(u64, Option<Digested>)> {
    let quick = digests.is_none();
    // Opened even when only its size is wanted, as repozo does: a backup
    // file that cannot be read is not a verified backup.
    match chain.repo().size_readable(&file.name)? {
        None => {
            return Err(Error::Verification(format!("{} is missing", file.path)));
        }
        Some(len) if quick && !file.gzip() => {
            meter.add(len);
            return Ok((len, None));
        }
        Some(_) => {}
    }
    if quick {
        // Sizes only: a gzipped file must still be decompressed to learn
        // its size, but nothing needs its md5.
        let size = files
            .copy(file.data_file(), &mut meter.tee(None), "")
            .map_err(damaged(file))?;
        return Ok((size, None));
    }
    let out = deep.map(|d| d as &mut dyn Write);
    let sums = files
        .digest(
            file.data_file(),
            Some(&mut meter.tee(out)),
            "",
            digests.unwrap_or(Digests::Md5),
        )
        .map_err(damaged(file))?;
    Ok((sums.len, Some(sums)))
}

/// A gzip reader's own errors (not the operating system's) mean the
/// contents of `file` are damaged or cut short.
fn damaged(file: &ChainFile) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        Error::Io { source, .. } if file.gzip() && source.raw_os_error().is_none() => {
            Error::Verification(format!("{} cannot be read as gzip: {source}", file.path))
        }
        e => e,
    }
}

/// The structural check of a chain read as one stream: a [`Checker`] plus
/// where each file starts, to name the file and the offset in it.
struct Deep {
    checker: Checker,
    /// (Data.fs offset, path) of each file started, ascending.
    files: Vec<(u64, String)>,
    /// A file that does not start at a transaction boundary (the first
    /// such, found before any structural problem); nothing more is checked.
    boundary: Option<Problem>,
}

impl Deep {
    fn new(size: u64, blobs: bool) -> Self {
        Deep {
            checker: if blobs {
                Checker::tracking_blobs(size)
            } else {
                Checker::new(size)
            },
            files: Vec::new(),
            boundary: None,
        }
    }

    /// The next file's bytes follow: it must start where a transaction
    /// does.
    fn start_file(&mut self, path: &str) {
        let pos = self.checker.pos();
        if self.boundary.is_none()
            && self.checker.problem().is_none()
            && !self.checker.at_transaction_boundary()
        {
            let inside = self
                .checker
                .current_transaction()
                .map_or_else(String::new, |t| {
                    format!(", inside the transaction at byte {t}")
                });
            self.boundary = Some(Problem {
                pos,
                what: format!(
                    "this backup file starts at Data.fs byte {pos}{inside}: every backup file \
                     must start and end at a transaction boundary"
                ),
            });
        }
        self.files.push((pos, path.to_string()));
    }

    fn feed(&mut self, data: &[u8]) {
        if self.boundary.is_none() {
            self.checker.feed(data);
        }
    }

    /// The summary and rebuilt index, or the first problem as an error
    /// naming the backup file and the offsets.
    fn finish(self) -> Result<(Summary, Index, Vec<crate::fs::BlobRecord>)> {
        let Deep {
            checker,
            files,
            boundary,
        } = self;
        match boundary {
            Some(p) => Err(located(&files, &p)),
            None => checker.finish_with_blobs().map_err(|p| located(&files, &p)),
        }
    }
}

impl Write for Deep {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.feed(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A structural problem as an error: the backup file holding its offset,
/// the offset in that file and in the Data.fs, what is wrong and what to
/// do.
fn located(files: &[(u64, String)], p: &Problem) -> Error {
    let i = files.partition_point(|(start, _)| *start <= p.pos);
    let Some((start, path)) = i.checked_sub(1).and_then(|i| files.get(i)) else {
        return Error::Verification(format!(
            "Data.fs byte {}: {}. {HINT_STRUCTURE}",
            p.pos, p.what
        ));
    };
    Error::Verification(format!(
        "{path}: byte {} of the file (Data.fs byte {}): {}. {HINT_STRUCTURE}",
        p.pos - start,
        p.pos,
        p.what
    ))
}

/// Compares the chain's stored `.index` with `index`, rebuilt from the
/// chain, byte for byte (reading the stored one as it is compared).
fn compare_index(chain: &Chain, summary: &Summary, index: &Index, ctx: Ctx) -> Result<()> {
    let path = chain.index_path();
    let Some(file) = chain.repo().open_optional(&chain.index_name())? else {
        ctx.report.event(&Event::NoIndexToCompare(path));
        return Ok(());
    };
    let mut cmp = Compare {
        stored: std::io::BufReader::with_capacity(CHUNK, file),
        at: 0,
        differs_at: None,
    };
    index::write_to(&mut cmp, summary.size, index).at(&path)?;
    if cmp.differs_at.is_none() {
        let mut extra = [0u8; 1];
        if cmp.stored.read(&mut extra).at(&path)? > 0 {
            cmp.differs_at = Some(cmp.at);
        }
    }
    let Some(at) = cmp.differs_at else {
        ctx.report.event(&Event::IndexMatches(path));
        return Ok(());
    };
    let bytes = chain.repo().read(&chain.index_name())?;
    let detail = match index::load(&bytes, &path) {
        Err(e) => format!("it cannot be read as an index ({e})"),
        Ok((pos, _)) if pos != summary.size => format!(
            "it is the index of a Data.fs of {pos} bytes, but the chain holds {} bytes",
            summary.size
        ),
        Ok((_, stored)) => match stored.first_difference(index) {
            None => "it holds the same entries, laid out differently".to_string(),
            Some((oid, there, here)) => {
                let show = |p: Option<u64>| p.map_or("absent".to_string(), |p| format!("byte {p}"));
                format!(
                    "oid {} is at {} there, at {} in the chain",
                    oid_hex(oid),
                    show(there),
                    show(here)
                )
            }
        },
    };
    Err(Error::Verification(format!(
        "{path} differs from the index rebuilt from the chain (first at byte {at} of the file): \
         {detail}. Recover installs it as <output>.index, where a FileStorage that trusts it \
         reads the wrong records: after recovering this state, delete <output>.index so that \
         FileStorage rebuilds it, and make a full backup (-F) to get a correct one"
    )))
}

/// A writer that compares what is written with `stored`, noting the first
/// offset where they differ.
struct Compare<R> {
    stored: R,
    at: u64,
    differs_at: Option<u64>,
}

impl<R: Read> Write for Compare<R> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.differs_at.is_some() {
            return Ok(buf.len());
        }
        let mut theirs = vec![0u8; buf.len()];
        let mut got = 0;
        while got < buf.len() {
            match self.stored.read(&mut theirs[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let same = buf[..got]
            .iter()
            .zip(&theirs[..got])
            .position(|(a, b)| a != b)
            .unwrap_or(got);
        if same < buf.len() {
            self.differs_at = Some(self.at + same as u64);
        }
        self.at += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
