//! A chain: the full backup and the incrementals after it that together
//! reproduce one state of the Data.fs, with the `.dat` that describes them.
//!
//! Every operation works on one [`Chain`] chosen by
//! [`Repository::chain`](super::Repository::chain). It owns the file
//! paths, the naming rules (which file is gzipped, where the `.dat` and the
//! last `.index` are) and the `.dat` entries, read at most once.

use super::dat::DatEntry;
use super::reader::{BaseHead, DataFile, DataFiles};
use super::sidecar::{self, Lookup};
use super::{RepoGuard, Repository, base_name, is_full, is_gzip_name, with_ext};
use crate::error::{Error, Result};
use crate::io::Digests;
use crate::report::{ChainProblem, Event, Report};

/// What to do about a chain with a gap or an overlap.
pub const HINT_COVERAGE: &str = "Recover would restore a Data.fs with bytes missing or repeated \
     (ZODB's repozo leaves such a gap after a full and an incremental backup in the same second). \
     Make a full backup (-F) now; to salvage this state, recover it and repair the copy with \
     ZODB's fsrecover.py";

/// One data file of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFile {
    /// Repository path as `-r` was given, joined with the name (the form
    /// repozo prints and records).
    pub path: String,
    /// The file name (`<stamp>.<ext>`).
    pub name: String,
}

impl ChainFile {
    /// Whether repozo gunzips this file (its name ends with `fsz`).
    pub fn gzip(&self) -> bool {
        is_gzip_name(&self.name)
    }

    /// Whether this is a full backup (`.fs`, `.fsz`).
    pub fn full(&self) -> bool {
        is_full(&self.name)
    }

    /// The file as the chain reader needs it.
    pub fn data_file(&self) -> DataFile<'_> {
        DataFile {
            path: &self.path,
            gzip: self.gzip(),
        }
    }
}

/// The data files that reproduce one state, oldest first.
///
/// Invariant: never empty (a repository with nothing to chain has no
/// `Chain`). The `.dat` belongs to the first file; the `.index` of the
/// state to the last.
#[derive(Debug, Clone)]
pub struct Chain {
    repo: Repository,
    files: Vec<ChainFile>,
    dat_path: String,
    /// The `.dat` entries once read: `Some(None)` if there is no `.dat`.
    entries: Option<Option<Vec<DatEntry>>>,
    /// Where the first files of a pack delta's base are read from instead
    /// of the repository ([`Chain::read_base_head_from`]).
    base_head: Option<BaseHead>,
}

impl Chain {
    /// The chain of `names` (ascending) in `repo`; `None` if `names` is
    /// empty.
    pub(super) fn new(repo: &Repository, names: &[&str]) -> Option<Chain> {
        let first = names.first()?;
        Some(Chain {
            repo: repo.clone(),
            files: names
                .iter()
                .map(|n| ChainFile {
                    path: repo.path(n),
                    name: n.to_string(),
                })
                .collect(),
            dat_path: repo.path(&with_ext(first, ".dat")),
            entries: None,
            base_head: None,
        })
    }

    /// The chain's repository.
    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    /// An opener of the chain's files (local or in an object store).
    pub fn reader(&self) -> DataFiles {
        let files = DataFiles::new(std::sync::Arc::clone(self.repo.backend()));
        match &self.base_head {
            Some(head) => files.with_base_head(head.clone()),
            None => files,
        }
    }

    /// From now on, every reader of this chain reads the pack delta
    /// `head.delta` with the first files of its base from `head` (a
    /// standby that holds them) instead of the repository: the same bytes,
    /// checked the same way ([`BaseHead`]).
    pub fn read_base_head_from(&mut self, head: BaseHead) {
        self.base_head = Some(head);
    }

    /// The path of `name` in the chain's repository (as `-r` was given).
    pub fn path_of(&self, name: &str) -> String {
        self.repo.path(name)
    }

    /// The files, oldest first (at least one).
    pub fn files(&self) -> &[ChainFile] {
        &self.files
    }

    /// The paths of the files, oldest first.
    pub fn paths(&self) -> Vec<String> {
        self.files.iter().map(|f| f.path.clone()).collect()
    }

    /// The files as the chain reader needs them.
    pub fn data_files(&self) -> impl Iterator<Item = DataFile<'_>> {
        self.files.iter().map(ChainFile::data_file)
    }

    /// The last file (the newest state).
    pub fn last(&self) -> &ChainFile {
        // Non-empty by construction (see `Chain::new`).
        &self.files[self.files.len() - 1]
    }

    /// Path of the chain's `.dat` (named after its first file).
    pub fn dat_path(&self) -> &str {
        &self.dat_path
    }

    /// Path of the `.index` of the chain's state (named after its last
    /// file; it may not exist).
    pub fn index_path(&self) -> String {
        with_ext(&self.last().path, ".index")
    }

    /// Name of the `.index` of the chain's state ([`Chain::index_path`]).
    pub fn index_name(&self) -> String {
        with_ext(&self.last().name, ".index")
    }

    /// Name of the chain's `.dat` ([`Chain::dat_path`]).
    pub fn dat_name(&self) -> String {
        base_name(&self.dat_path).to_string()
    }

    /// Whether every file is uncompressed.
    pub fn all_plain(&self) -> bool {
        self.files.iter().all(|f| !f.gzip())
    }

    /// Whether the `.dat` ends in an incomplete line left by an
    /// interrupted backup, which every reader leaves out
    /// ([`super::dat::complete_lines`]). A `.dat` that cannot be read
    /// counts as not torn: reading the entries reports it.
    pub fn dat_has_torn_tail(&self) -> bool {
        match self.repo.read_optional(&self.dat_name()) {
            Ok(Some(raw)) => super::dat::complete_lines(&raw).1,
            _ => false,
        }
    }

    /// The `.dat` entries, read on first use, without a torn last line
    /// ([`super::dat::complete_lines`]); `None` if there is no `.dat`.
    pub fn entries(&mut self) -> Result<Option<&[DatEntry]>> {
        if self.entries.is_none() {
            let raw = self.repo.read_optional(&self.dat_name())?;
            self.entries = Some(match raw {
                None => None,
                Some(b) => Some(
                    String::from_utf8_lossy(super::dat::complete_lines(&b).0)
                        .lines()
                        .enumerate()
                        .map(|(i, l)| DatEntry::parse(l, &self.dat_path, i + 1))
                        .collect::<Result<Vec<_>>>()?,
                ),
            });
        }
        Ok(self.entries.as_ref().and_then(|e| e.as_deref()))
    }

    /// The `.dat` entries, which must exist (`-V`, `-R -w`): a missing
    /// `.dat` is the error Python gives for opening it.
    pub fn required_entries(&mut self) -> Result<&[DatEntry]> {
        let path = self.dat_path.clone();
        self.entries()?
            .ok_or_else(|| Error::io(path, std::io::Error::from_raw_os_error(2)))
    }

    /// The uncompressed size of the chain's state as its `.dat` records it
    /// (`None` without a `.dat`, or if it does not list every file).
    pub fn expected_size(&mut self) -> Option<u64> {
        let names: Vec<String> = self.files.iter().map(|f| f.name.clone()).collect();
        let entries = self.entries().ok()??;
        let by_name = DatEntry::first_by_name(entries);
        names.iter().try_fold(0u64, |sum, n| {
            let e = by_name.get(n.as_str())?;
            sum.checked_add(e.len())
        })
    }

    /// The file a `.dat` entry describes (by base name), if it is in the
    /// chain.
    pub fn find(&self, entry: &DatEntry) -> Option<&ChainFile> {
        self.files.iter().find(|f| f.name == entry.base_name())
    }

    /// The chain's uncompressed size as far as it can be known without
    /// reading it: the sum of the file sizes if none is gzipped, else what
    /// the `.dat` records ([`Chain::expected_size`]). Only a hint: callers
    /// check it.
    pub fn size_hint(&mut self) -> Option<u64> {
        if self.all_plain() {
            return self.files.iter().try_fold(0u64, |sum, f| {
                sum.checked_add(self.repo.size(&f.name).ok()??)
            });
        }
        self.expected_size()
    }

    /// Makes the `.dat` describe the chain, after a crash.
    ///
    /// A backup renames its data file into place before it records it in
    /// the `.dat`; a crash in between leaves a complete file that recover
    /// uses but the `.dat` lacks, and a crash while appending can leave a
    /// torn last line. Trailing files missing from the `.dat` are recorded
    /// now (their start is the previous entry's end; size and md5 come from
    /// the file) and a torn line is dropped. `Ok(Err(problem))` means the
    /// two disagree in some other way, and only a new full backup gives a
    /// consistent chain. Call only while holding the repository lock,
    /// `held`.
    pub fn reconcile(
        &mut self,
        report: &dyn Report,
        held: &RepoGuard,
    ) -> Result<Result<(), ChainProblem>> {
        let dat_path = self.dat_path.clone();
        let dat_name = self.dat_name();
        let raw = self.repo.read_optional(&dat_name)?.unwrap_or_default();
        let (complete, torn) = super::dat::complete_lines(&raw);
        if torn {
            report.event(&Event::DroppedTornDatLine(dat_path.clone()));
            crate::interrupt::check()?;
            held.check()?;
            self.repo.write_whole(&dat_name, complete)?;
        }
        let mut entries = Vec::new();
        for (i, line) in String::from_utf8_lossy(complete).lines().enumerate() {
            match DatEntry::parse(line, &dat_path, i + 1) {
                Ok(e) => entries.push(e),
                Err(e) => return Ok(Err(ChainProblem::DatUnreadable(e.to_string()))),
            }
        }
        let names: Vec<&str> = self.files.iter().map(|f| f.name.as_str()).collect();
        let listed: Vec<&str> = entries.iter().map(DatEntry::base_name).collect();
        if listed.len() > names.len() || listed[..] != names[..listed.len()] {
            return Ok(Err(ChainProblem::DatDisagrees {
                dat: dat_path,
                listed: listed.iter().map(|s| s.to_string()).collect(),
                chain: names.iter().map(|s| s.to_string()).collect(),
            }));
        }
        // A plain file's size is known without reading it: a `.dat` that
        // records another one cannot be used to verify the chain.
        for (entry, file) in entries.iter().zip(&self.files) {
            if file.gzip() {
                continue;
            }
            let actual = self.repo.size(&file.name)?.ok_or_else(|| {
                Error::io(&file.path, std::io::Error::from_raw_os_error(libc::ENOENT))
            })?;
            if actual != entry.len() {
                return Ok(Err(ChainProblem::SizeDisagrees {
                    dat: dat_path,
                    file: file.path.clone(),
                    recorded: entry.len(),
                    actual,
                }));
            }
        }
        let mut end = entries.last().map_or(0, |e| e.end);
        let files = self.reader();
        for file in &self.files[entries.len()..] {
            let sums = files.digest(file.data_file(), None, "", Digests::Both)?;
            let (size, md5) = (sums.len, sums.md5.unwrap_or_default());
            let Some(new_end) = end.checked_add(size) else {
                return Ok(Err(ChainProblem::DatUnreadable(format!(
                    "{dat_path}: the offsets recorded overflow"
                ))));
            };
            let entry = DatEntry {
                file: file.path.clone(),
                start: end,
                end: new_end,
                md5,
            };
            // Its sidecar first, as a backup writes it (a backup interrupted
            // after writing it left a good one).
            if !matches!(sidecar::lookup(&self.repo, &entry)?, Lookup::Valid(_)) {
                held.check()?;
                sidecar::write(&self.repo, &entry, sums.blake3.unwrap_or_default())?;
            }
            self.repo.append_line(&dat_name, &entry.to_line(), held)?;
            report.event(&Event::RecordedUnlistedFile {
                file: file.path.clone(),
                dat: dat_path.clone(),
            });
            end = entry.end;
            entries.push(entry);
        }
        self.entries = Some(if entries.is_empty() && raw.is_empty() {
            // No `.dat` (or an empty one): `-Q` treats both alike.
            None
        } else {
            Some(entries)
        });
        Ok(Ok(()))
    }

    /// Checks that the chain's files, by their `.dat` lines, cover the Data.fs
    /// from byte 0 with no gap and no overlap; returns where the last one ends
    /// (the size of the state). Files the `.dat` does not list are skipped
    /// here: callers report them. A gap is what a deleted incremental, or
    /// ZODB's repozo's same-second full and incremental, leave: each file
    /// matches its own `.dat` line, yet the concatenation is not the state.
    pub fn check_coverage(&mut self) -> Result<u64> {
        let chain = self;
        let dat = chain.dat_path().to_string();
        let names: Vec<(String, String)> = chain
            .files()
            .iter()
            .map(|f| (f.name.clone(), f.path.clone()))
            .collect();
        let entries = chain.required_entries()?;
        let by_name = DatEntry::first_by_name(entries);
        let mut end = 0u64;
        let mut previous: Option<&str> = None;
        for (name, path) in &names {
            let Some(e) = by_name.get(name.as_str()) else {
                continue; // reported by the caller
            };
            let after = match previous {
                Some(p) => format!("the previous file of the chain, {p}, ends at byte {end}"),
                None => "a chain must start at byte 0".to_string(),
            };
            if e.start > end {
                let holders: Vec<&str> = entries
                    .iter()
                    .filter(|o| o.start < e.start && o.end > end)
                    .filter(|o| !names.iter().any(|(n, _)| n == o.base_name()))
                    .map(DatEntry::base_name)
                    .collect();
                let held = if holders.is_empty() {
                    "no file holds them".to_string()
                } else {
                    format!(
                        "{dat} records them in {}, which recover does not use",
                        holders.join(", ")
                    )
                };
                return Err(Error::Coverage(format!(
                    "{path} starts at Data.fs byte {} according to {dat}, but {after}: bytes \
                     {end} to {} are missing from the chain ({held}). {HINT_COVERAGE}",
                    e.start, e.start
                )));
            }
            if e.start < end {
                return Err(Error::Coverage(format!(
                    "{path} starts at Data.fs byte {} according to {dat}, but {after}: the files \
                     overlap. {HINT_COVERAGE}",
                    e.start
                )));
            }
            end = e.end;
            previous = Some(path);
        }
        Ok(end)
    }
}
