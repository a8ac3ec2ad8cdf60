//! How operations tell the front end what they are doing.
//!
//! The library never prints. Every operation takes a `&dyn Report` and
//! hands it [`Event`]s; the command-line front end prints them as repozo's
//! `-v` log lines (their `Display` is repozo's wording, which is part of
//! the drop-in contract), while another front end could draw progress or
//! emit JSON from the same events.

use std::fmt;

/// Receives events from operations. Implementations must not fail.
pub trait Report {
    /// Called once per event, in the order things happen.
    fn event(&self, event: &Event);

    /// Whether events that only inform (such as the md5 of a recovered file
    /// in [`Event::Recovered`]) are wanted. Operations skip work that only
    /// serves them when this is false. Default: true.
    fn wants_details(&self) -> bool {
        true
    }

    /// Called as long work advances: at every chunk (256 KiB to 1 MiB) of
    /// a copy, hash or check, so an implementation should be cheap and
    /// decide itself how often to draw. Default: ignored.
    fn progress(&self, _progress: &Progress) {}
}

/// What long work is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Backup: comparing the repository and the Data.fs (md5 of both).
    Compare,
    /// Backup: copying (and, with `-z`, compressing) into the new file.
    Copy,
    /// Recover: writing the output.
    Recover,
    /// Verify: reading and hashing the chain's files.
    Verify,
    /// Incremental recover: proving the output's prefix by md5.
    Prove,
    /// Blob backup, restore or verify: bytes of blob files.
    Blobs,
}

impl Phase {
    /// A short lowercase name (JSON `phase`, progress bar prefix).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Compare => "compare",
            Phase::Copy => "copy",
            Phase::Recover => "recover",
            Phase::Verify => "verify",
            Phase::Prove => "prove",
            Phase::Blobs => "blobs",
        }
    }
}

/// How far long work has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// What is being done.
    pub phase: Phase,
    /// Bytes done in this phase (uncompressed bytes of the Data.fs).
    pub done: u64,
    /// Bytes this phase will take, if known.
    pub total: Option<u64>,
}

/// A [`Report`] that drops everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Report for Silent {
    fn event(&self, _: &Event) {}

    fn wants_details(&self) -> bool {
        false
    }
}

/// Why a backup is a full one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullReason {
    /// `-F`, or no backup in the repository yet.
    Requested,
    /// `-Q` and the chain's `.dat` is missing or empty.
    MissingDat,
    /// The Data.fs is smaller than what is backed up: packed.
    Shrunk,
    /// The backed-up bytes no longer match the Data.fs: packed.
    Changed,
    /// The chain's blob manifests record missing blob files.
    BlobsMissing,
}

/// Why a chain's `.dat` cannot be trusted, so that a backup starts a new
/// chain with a full backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainProblem {
    /// A line of the `.dat` does not parse (the parser's message).
    DatUnreadable(String),
    /// The `.dat` records a size for a plain chain file that it does not
    /// have.
    SizeDisagrees {
        /// The `.dat` file.
        dat: String,
        /// The chain file.
        file: String,
        /// Bytes the `.dat` records.
        recorded: u64,
        /// Bytes the file has.
        actual: u64,
    },
    /// The chain starts with a pack delta whose base file is gone, so its
    /// state cannot be read (nor continued).
    PackDeltaBaseMissing {
        /// The missing file (its path).
        base: String,
        /// The pack delta (its path).
        delta: String,
    },
    /// The `.dat` lists files that are not the chain's, or in another order.
    DatDisagrees {
        /// The `.dat` file.
        dat: String,
        /// File names it lists.
        listed: Vec<String>,
        /// File names of the chain.
        chain: Vec<String>,
    },
}

/// Something an operation did or noticed. `Display` gives repozo's `-v`
/// wording (ZODB's log wording for the warnings); the events for which
/// [`Event::is_warning`] holds are meant to be shown even without `-v`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Chain selection started for the state as of `when`.
    LookingForFiles {
        /// The date compared against file stamps.
        when: String,
    },
    /// The chain chosen for `when`, oldest first.
    FilesNeeded {
        /// The date compared against file stamps.
        when: String,
        /// Repository paths, as `-r` was given, joined with the file name.
        files: Vec<String>,
    },
    /// No backup file is at or before the date.
    NoFilesFound,
    /// A full backup will be made.
    DoingFull(FullReason),
    /// `-Q`: the `.dat` entry checked.
    LastIncrementalFile(String),
    /// `-Q`: its recorded checksum.
    LastIncrementalChecksum(String),
    /// `-Q`: the checksum of the same range of the Data.fs.
    SourceChecksumRange {
        /// Range start.
        start: u64,
        /// Range end.
        end: u64,
        /// md5 of the Data.fs bytes in the range.
        sum: String,
    },
    /// The repository already holds everything committed.
    NothingToDo,
    /// An incremental backup will start at this offset.
    DoingIncremental {
        /// Offset in the Data.fs.
        start: u64,
    },
    /// Size and md5 of the whole chain (backup without `-Q`).
    RepositoryState {
        /// Bytes.
        size: u64,
        /// md5 hex.
        md5: String,
    },
    /// Size and md5 of the whole Data.fs (backup without `-Q`).
    CurrentState {
        /// Bytes.
        size: u64,
        /// md5 hex.
        md5: String,
    },
    /// md5 of the Data.fs up to the chain's size (backup without `-Q`).
    BackedUpState {
        /// Bytes.
        size: u64,
        /// md5 hex.
        md5: String,
    },
    /// The `.index` of a backup is being written.
    WritingIndex,
    /// A full backup is being written.
    WritingFull {
        /// Bytes copied.
        bytes: u64,
        /// Destination path.
        dest: String,
    },
    /// A pack delta (`--pack-delta`) is being written: the packed Data.fs
    /// against the last backed-up state.
    WritingPackDelta {
        /// Bytes of the Data.fs it stands for.
        bytes: u64,
        /// Destination path.
        dest: String,
        /// The first file of the chain it is based on.
        base: String,
    },
    /// A pack delta was made but not kept: the Data.fs shares too few
    /// bytes with the last backed-up state (another database, or a pack
    /// that kept mostly changes never backed up); a plain full backup
    /// follows.
    PackDeltaNotWorthIt {
        /// Bytes it shares with the last backed-up state.
        shared: u64,
        /// Bytes of the Data.fs.
        bytes: u64,
    },
    /// A pack delta was written.
    PackDeltaWritten {
        /// Bytes it takes from the previous backup.
        copied: u64,
        /// Bytes it holds itself (before compression).
        literal: u64,
        /// Bytes it takes in the repository.
        stored: u64,
    },
    /// An incremental backup is being written.
    WritingIncremental {
        /// Bytes copied.
        bytes: u64,
        /// Destination path.
        dest: String,
    },
    /// `-k`: an older backup file (and its `.dat`/`.index`) is removed.
    RemovingOld(String),
    /// `-k` or retention: a backup file that would otherwise go is kept
    /// because a kept pack delta is based on its chain.
    KeptForPackDelta {
        /// The data file kept (its path).
        file: String,
        /// The pack delta that needs its chain (its path).
        needed_by: String,
    },
    /// Retention (`--keep…`): a file of a chain no rule keeps is removed.
    RemovingExpired {
        /// The data, `.dat` or `.index` file.
        file: String,
        /// The stamp of its chain; `None` for a `.dat`/`.index` left
        /// without data files by an interrupted removal.
        chain: Option<String>,
    },
    /// Recover writes to standard output.
    RecoveringToStdout,
    /// Recover writes to this file.
    RecoveringTo(String),
    /// `-w`: one chain file was copied and matched its `.dat` entry.
    RecoveredChunk {
        /// The chain file.
        file: String,
        /// Uncompressed bytes.
        size: u64,
        /// md5 hex of them.
        md5: String,
    },
    /// `-w`: total bytes recovered.
    RecoveredTotal(u64),
    /// Recover without `-w` finished.
    Recovered {
        /// Bytes written.
        size: u64,
        /// md5 hex of them.
        md5: String,
    },
    /// The chain's last `.index` is copied next to the output.
    RestoringIndex {
        /// Source `.index`.
        from: String,
        /// `<output>.index`.
        to: String,
    },
    /// The chain's last backup has no `.index`.
    NoIndexToRestore(String),
    /// A stale `<output>.index` was removed because the recovered chain has
    /// no index for it.
    RemovedStaleIndex(String),
    /// `-V`: a chain file is being checked.
    Verifying(String),
    /// `-V --deep`: the chain read as one FileStorage passed the structural
    /// checks.
    StructureChecked {
        /// Bytes read (the Data.fs size of the chain's state).
        size: u64,
        /// Transactions.
        transactions: u64,
        /// Data records.
        records: u64,
        /// Backpointers among them.
        backpointers: u64,
    },
    /// `-V --deep`: the chain's `.index` equals the index rebuilt from it.
    IndexMatches(String),
    /// `-V --deep`: the chain's last backup has no `.index` to compare.
    NoIndexToCompare(String),
    /// `--incremental`: the output's first `bytes` were proved to be the
    /// chain's first `files` backup files.
    ProvedPrefix {
        /// Bytes proved.
        bytes: u64,
        /// Backup files they make up.
        files: usize,
        /// Proved from the state file (`-Q`) rather than by md5.
        quick: bool,
    },
    /// `--incremental -Q`: the state file cannot be used (why); the output
    /// is proved by md5 instead.
    StateUnusable(String),
    /// `--incremental`: the output holds the first files of the state the
    /// pack delta starting the chain is based on (the state before a
    /// pack), so it is rebuilt from its own bytes and the delta instead of
    /// recovered in full.
    RebuildingFromStandby {
        /// The pack delta.
        delta: String,
        /// Bytes of the base state read from the output.
        base_bytes_from_standby: u64,
        /// Base files they make up.
        base_files_from_standby: usize,
        /// Bytes of the base state read from the repository (those after).
        base_bytes_from_repository: u64,
        /// Base files they make up.
        base_files_from_repository: usize,
        /// Proved from the state file (`-Q`) rather than by md5.
        quick: bool,
    },
    /// `--incremental`: the output cannot be rebuilt with the pack delta
    /// starting the chain (why); what happens instead is reported next.
    NotPackDeltaBase {
        /// The pack delta.
        delta: String,
        /// Why.
        why: String,
    },
    /// Warning: a temporary file left by an interrupted backup of ours
    /// was removed.
    RemovedLeftover(String),
    /// Warning: the `.dat` ended in an incomplete line (an interrupted
    /// backup), which was dropped.
    DroppedTornDatLine(String),
    /// Warning: the fast-hash sidecar of a file cannot be used (damaged,
    /// cut short, or written for other bytes); md5 checks it instead.
    SidecarUnusable {
        /// The sidecar.
        path: String,
        /// Why.
        why: String,
    },
    /// Which checksum the files of this operation are checked with: the
    /// BLAKE3 of their sidecars (every file has a usable one) or md5. Not
    /// a log line ([`Event::is_log_line`]): `-v` stays repozo's log; the
    /// `--json` summary says it (`checked_with`).
    CheckingWith {
        /// True for BLAKE3.
        blake3: bool,
    },
    /// Warning: a file's bytes match its `.dat` md5 but not its sidecar's
    /// BLAKE3: the sidecar is wrong, and was not used.
    SidecarWrong {
        /// The data file.
        file: String,
    },
    /// Warning: the `.dat` ends in an incomplete line (an interrupted
    /// backup), which a reader (`-R`, `-V`) leaves out.
    IgnoredTornDatLine(String),
    /// Warning: a chain file the `.dat` did not list (a backup was
    /// interrupted between renaming it and recording it) was recorded.
    RecordedUnlistedFile {
        /// The data file.
        file: String,
        /// The `.dat` it was recorded in.
        dat: String,
    },
    /// Warning: the chain cannot be continued; a full backup follows.
    StartingNewChain(ChainProblem),
    /// Warning (ZODB's): `<Data.fs>.index` is not used (it does not fit
    /// the file); the file is scanned instead. Holds the absolute path of
    /// the Data.fs.
    IgnoringIndex(String),
    /// Warning: `<Data.fs>.index` cannot be read as an index.
    UnreadableIndex {
        /// The index file.
        path: String,
        /// Why (the index reader's error).
        why: String,
    },
    /// Warning (ZODB's): a transaction id is not greater than the previous.
    TimeStampReduction {
        /// The Data.fs.
        file: String,
        /// Offset of the transaction.
        pos: u64,
    },
    /// Warning (ZODB's): a transaction has an unknown status byte.
    InvalidStatus {
        /// The Data.fs.
        file: String,
        /// The status byte.
        status: u8,
        /// Offset of the transaction.
        pos: u64,
    },
    /// Warning (ZODB's): the scan stopped at a transaction header whose
    /// length is impossible, judged to be trailing garbage.
    InvalidTxnHeader {
        /// The Data.fs.
        file: String,
        /// Offset of the header.
        pos: u64,
    },
    /// A blob manifest was written.
    BlobsBackedUp {
        /// The manifest.
        manifest: String,
        /// Blob records it lists.
        records: u64,
        /// Objects added to the store.
        stored: u64,
        /// Bytes of those objects.
        bytes: u64,
        /// Records whose content was already stored.
        reused: u64,
        /// Records whose file was not found.
        missing: u64,
    },
    /// Warning: the blob step of a backup failed after its Data.fs step
    /// was recorded; these data files have no manifest yet.
    BlobsNotBackedUp(Vec<String>),
    /// Warning: a blob file a backup needs was not found.
    BlobMissing {
        /// Where it should have been.
        path: String,
    },
    /// A blob tree was restored.
    BlobsRestored {
        /// The blob directory.
        dir: String,
        /// Files written.
        files: u64,
        /// Their bytes.
        bytes: u64,
    },
    /// A blob directory was brought up to date in place (`--incremental`).
    BlobsSynced {
        /// The blob directory.
        dir: String,
        /// Files written.
        copied: u64,
        /// Their bytes.
        bytes: u64,
        /// Files already right.
        kept: u64,
        /// Files removed (not in the recovered state).
        removed: u64,
    },
    /// The blobs of a chain were verified.
    BlobsVerified {
        /// Manifests read.
        manifests: usize,
        /// Distinct objects checked.
        objects: u64,
        /// Their bytes.
        bytes: u64,
        /// Sizes only (`-Q`).
        quick: bool,
    },
    /// Unreferenced blob objects were removed from the store.
    BlobsCollected {
        /// Objects removed.
        objects: u64,
        /// Their bytes.
        bytes: u64,
    },
}

impl Event {
    /// False for events that are not log lines: front ends keep them for
    /// their summaries (`--json`), and `-v` stays repozo's log.
    pub fn is_log_line(&self) -> bool {
        !matches!(self, Event::CheckingWith { .. })
    }

    /// True for events shown even without `-v`.
    pub fn is_warning(&self) -> bool {
        use Event::*;
        matches!(
            self,
            RemovedLeftover(_)
                | DroppedTornDatLine(_)
                | SidecarUnusable { .. }
                | SidecarWrong { .. }
                | IgnoredTornDatLine(_)
                | RecordedUnlistedFile { .. }
                | StartingNewChain(_)
                | IgnoringIndex(_)
                | UnreadableIndex { .. }
                | TimeStampReduction { .. }
                | InvalidStatus { .. }
                | InvalidTxnHeader { .. }
                | BlobMissing { .. }
                | BlobsNotBackedUp(_)
        )
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Event::*;
        match self {
            LookingForFiles { when } => {
                write!(
                    f,
                    "looking for files between last full backup and {when}..."
                )
            }
            FilesNeeded { when, files } => {
                write!(f, "files needed to recover state as of {when}:")?;
                files.iter().try_for_each(|x| write!(f, "\n\t{x}"))
            }
            NoFilesFound => f.write_str("no files found"),
            DoingFull(FullReason::Requested) => f.write_str("doing a full backup"),
            DoingFull(FullReason::MissingDat) => {
                f.write_str("missing or empty .dat file (full backup)")
            }
            DoingFull(FullReason::Shrunk) => {
                f.write_str("file shrunk, possibly because of a pack (full backup)")
            }
            DoingFull(FullReason::Changed) => {
                f.write_str("file changed, possibly because of a pack (full backup)")
            }
            DoingFull(FullReason::BlobsMissing) => {
                f.write_str("the last backup lacks blob files (full backup)")
            }
            BlobsBackedUp {
                manifest,
                records,
                stored,
                bytes,
                reused,
                missing,
            } => write!(
                f,
                "blobs: wrote {manifest}: {records} blob record(s), {stored} new object(s) \
                 ({bytes} bytes), {reused} already stored, {missing} missing"
            ),
            BlobMissing { path } => write!(
                f,
                "blob file {path} is named by a backed-up transaction but is neither there \
                 nor in the blob directory's .old"
            ),
            BlobsRestored { dir, files, bytes } => {
                write!(
                    f,
                    "blobs: restored {files} file(s), {bytes} bytes, into {dir}"
                )
            }
            BlobsNotBackedUp(files) => write!(
                f,
                "the Data.fs backup is recorded, but the blobs of {} are not: fix the cause \
                 below and run the backup with --blob-dir again, which backs them up",
                files.join(", ")
            ),
            BlobsSynced {
                dir,
                copied,
                bytes,
                kept,
                removed,
            } => write!(
                f,
                "blobs: {dir}: wrote {copied} file(s) ({bytes} bytes), kept {kept}, removed {removed}"
            ),
            BlobsVerified {
                manifests,
                objects,
                bytes,
                quick,
            } => write!(
                f,
                "blobs: {manifests} manifest(s), {objects} object(s), {bytes} bytes {}",
                if *quick {
                    "present with their sizes"
                } else {
                    "match their hashes"
                }
            ),
            BlobsCollected { objects, bytes } => write!(
                f,
                "blobs: removed {objects} stored object(s) no manifest names ({bytes} bytes)"
            ),
            LastIncrementalFile(x) => write!(f, "last incremental file: {x}"),
            LastIncrementalChecksum(x) => write!(f, "last incremental checksum: {x}"),
            SourceChecksumRange { start, end, sum } => {
                write!(f, "source checksum range: [{start}..{end}], sum: {sum}")
            }
            NothingToDo => f.write_str("No changes, nothing to do"),
            DoingIncremental { start } => write!(f, "doing incremental, starting at: {start}"),
            RepositoryState { size, md5 } => {
                write!(f, "repository state: {size} bytes, md5: {md5}")
            }
            CurrentState { size, md5 } => write!(f, "current state   : {size} bytes, md5: {md5}"),
            BackedUpState { size, md5 } => write!(f, "backed up state : {size} bytes, md5: {md5}"),
            WritingIndex => f.write_str("writing index"),
            WritingFull { bytes, dest } => {
                write!(f, "writing full backup: {bytes} bytes to {dest}")
            }
            WritingPackDelta { bytes, dest, base } => {
                write!(
                    f,
                    "writing pack delta: {bytes} bytes to {dest}, based on the chain of {base}"
                )
            }
            PackDeltaNotWorthIt { shared, bytes } => write!(
                f,
                "the Data.fs shares only {shared} of its {bytes} bytes with the last backup \
                 (another database, or a pack of mostly changes never backed up): writing a full \
                 backup instead of a pack delta"
            ),
            PackDeltaWritten {
                copied,
                literal,
                stored,
            } => write!(
                f,
                "pack delta: {copied} bytes taken from the previous backup, {literal} new, \
                 {stored} bytes stored"
            ),
            WritingIncremental { bytes, dest } => {
                write!(f, "writing incremental: {bytes} bytes to {dest}")
            }
            RemovingOld(x) => write!(f, "removing old backup file {x} (and .dat / .index)"),
            KeptForPackDelta { file, needed_by } => write!(
                f,
                "keeping backup file {file}: the pack delta {needed_by} is based on its chain"
            ),
            RemovingExpired {
                file,
                chain: Some(chain),
            } => write!(f, "removing expired backup file {file} (chain {chain})"),
            RemovingExpired { file, chain: None } => write!(
                f,
                "removing {file}, left without data files by an interrupted removal"
            ),
            RecoveringToStdout => f.write_str("Recovering file to stdout"),
            RecoveringTo(x) => write!(f, "Recovering file to {x}"),
            RecoveredChunk { file, size, md5 } => {
                write!(f, "Recovered chunk {file} : {size} bytes, md5: {md5}")
            }
            RecoveredTotal(n) => write!(f, "Recovered a total of {n} bytes"),
            Recovered { size, md5 } => write!(f, "Recovered {size} bytes, md5: {md5}"),
            RestoringIndex { from, to } => write!(f, "Restoring index file {from} to {to}"),
            NoIndexToRestore(x) => write!(f, "No index file to restore: {x}"),
            RemovedStaleIndex(x) => write!(f, "Removed stale index file {x}"),
            Verifying(x) => write!(f, "Verifying {x}"),
            StructureChecked {
                size,
                transactions,
                records,
                backpointers,
            } => write!(
                f,
                "Checked the chain as one FileStorage: {size} bytes, {transactions} transactions, \
                 {records} data records, {backpointers} backpointers"
            ),
            IndexMatches(x) => write!(f, "Index file {x} matches the chain"),
            NoIndexToCompare(x) => write!(f, "No index file to compare: {x}"),
            ProvedPrefix {
                bytes,
                files,
                quick,
            } => write!(
                f,
                "the output's first {bytes} bytes are the chain's first {files} files (proved {})",
                if *quick {
                    "by the state file"
                } else {
                    "by md5"
                }
            ),
            StateUnusable(why) => write!(f, "{why}: proving the output by md5"),
            RebuildingFromStandby {
                delta,
                base_bytes_from_standby,
                base_files_from_standby,
                base_bytes_from_repository,
                base_files_from_repository,
                quick,
            } => {
                let files = |n: usize| if n == 1 { "file" } else { "files" };
                write!(
                    f,
                    "the output's {base_bytes_from_standby} bytes are the first \
                     {base_files_from_standby} {} of the state {delta} is based on (proved {}): \
                     rebuilding it from them and that pack delta, with the \
                     {base_bytes_from_repository} bytes of the {base_files_from_repository} {} \
                     after them from the repository",
                    files(*base_files_from_standby),
                    if *quick {
                        "by the state file"
                    } else {
                        "by md5"
                    },
                    files(*base_files_from_repository),
                )
            }
            NotPackDeltaBase { delta, why } => write!(
                f,
                "the output cannot be rebuilt from its own bytes with the pack delta {delta}: {why}"
            ),
            RemovedLeftover(x) => write!(f, "removed {x} left by an interrupted backup"),
            DroppedTornDatLine(x) => write!(
                f,
                "{x}: dropped an incomplete last line left by an interrupted backup"
            ),
            SidecarUnusable { path, why } => write!(
                f,
                "{path} cannot be used ({why}); checking with md5 instead"
            ),
            CheckingWith { blake3: true } => {
                f.write_str("checking every file with the BLAKE3 of its sidecar")
            }
            CheckingWith { blake3: false } => f.write_str("checking every file with md5"),
            SidecarWrong { file } => write!(
                f,
                "{file} matches its .dat md5, so its BLAKE3 sidecar is wrong and was not \
                 used; the next full backup writes a good one"
            ),
            IgnoredTornDatLine(x) => write!(
                f,
                "{x}: ignored an incomplete last line left by an interrupted backup \
                 (the next backup removes it)"
            ),
            RecordedUnlistedFile { file, dat } => write!(
                f,
                "{file} was not recorded in {dat} (a backup was interrupted); recorded it now"
            ),
            StartingNewChain(problem) => {
                match problem {
                    ChainProblem::DatUnreadable(why) => f.write_str(why)?,
                    ChainProblem::SizeDisagrees {
                        dat,
                        file,
                        recorded,
                        actual,
                    } => write!(
                        f,
                        "{dat} records {file} as {recorded} bytes, but it has {actual}"
                    )?,
                    ChainProblem::PackDeltaBaseMissing { base, delta } => write!(
                        f,
                        "{base} is missing, but the pack delta {delta} is based on it"
                    )?,
                    ChainProblem::DatDisagrees { dat, listed, chain } => write!(
                        f,
                        "{dat} lists {listed:?} but the repository's chain is {chain:?}"
                    )?,
                }
                f.write_str("; making a full backup to start a consistent chain")
            }
            IgnoringIndex(x) => write!(f, "Ignoring index for {x}"),
            UnreadableIndex { why, .. } => f.write_str(why),
            TimeStampReduction { file, pos } => write!(f, "{file} time-stamp reduction at {pos}"),
            InvalidStatus { file, status, pos } => write!(
                f,
                "{file} has invalid status, {}, at {pos}",
                char::from(*status)
            ),
            InvalidTxnHeader { file, pos } => {
                write!(f, "{file} has invalid transaction header at {pos}")
            }
        }
    }
}
