//! The help text, printed by `-h` and before every usage error.
//!
//! Its layout and most of its wording are repozo's own (ZODB 6.4,
//! `src/ZODB/scripts/repozo.py`, the module docstring, Zope Public License
//! 2.1), so that operators find what they know where they know it. Where
//! this tool differs (what `-z` writes, that recover always verifies, what a
//! failed recover leaves, the options of our own, the exit codes) the text
//! says what this tool does. The CLI parity test compares everything else
//! repozo prints byte for byte, with this text in place of repozo's.

/// Returns the help text with `program` (repozo prints `sys.argv[0]`) in the
/// usage line. It ends with one newline, as Python's `print(__doc__)` writes
/// it: the docstring's own final newline plus `print`'s.
pub fn help_text(program: &str) -> String {
    HELP.replace("{program}", program)
}

/// What `--version` prints: the command's name (`repozo`, or `repozo-rs`
/// for the binary the wheel installs), the version, and what it is a
/// replacement for.
pub fn version_line(command: &str) -> String {
    format!(
        "{command} {} (repozo in Rust; reads and writes the repositories of ZODB 6.4's repozo)",
        env!("CARGO_PKG_VERSION")
    )
}

const HELP: &str = r#"repozo (in Rust) -- incremental and full backups of a Data.fs file and index.
A drop-in replacement for ZODB 6.4's repozo: same options, same repository files.

Usage: {program} [options]
Where:

    Exactly one of -B, -R, -V or --list must be specified (or a retention
    option alone, with -r):

    -B / --backup
        Backup current ZODB file.

    -R / --recover
        Restore a ZODB file from a backup.

    -V / --verify
        Verify backup integrity.

    --list
        List every restore point (backup file) of the repository, grouped
        by chain, oldest first: stamp, kind, gzip, stored size, Data.fs end
        position, whether its .index is present; problems are flagged.

    -v / --verbose
        Verbose mode.

    -h / --help
        Print this text and exit.

    --version
        Print the name and version and exit.

    --man
        Print this tool's man page (roff) and exit.

    --completions=shell
        Print the completion script for bash, zsh or fish and exit.

    --json
        Write JSON lines on standard output: "status" about once a second
        during long work, then a "summary"; a failure also writes an
        "exit_error" object on standard error.  With --list: one object
        per restore point, then a summary.  Not with -R without -o, nor
        with the retention options.

    --no-progress
        No progress bar.  (A bar is only drawn on a terminal, for work
        that runs longer than a second, and never with --json.)

    --metrics-file=file
        With -B, -R, -V or the retention options: when the run ends, also
        when it fails, replace file atomically with Prometheus metrics of
        the run (text format, for node_exporter's textfile collector):
        last run and last success times, exit code, duration, bytes read
        and written, newest chain length, repository size, blob counts.

    -r dir
    --repository=dir
        Repository directory containing the backup files.  This argument
        is required.  The directory must already exist.  You should not
        edit the files in this directory, or add your own files to it.
        Or s3://BUCKET/PREFIX: a repository in an object store (a build
        with the cargo feature s3; endpoint, region and credentials from
        the AWS_* environment variables).

Options for -B/--backup:
    -f file
    --file=file
        Source Data.fs file.  This argument is required.

    -F / --full
        Force a full backup.  By default, an incremental backup is made
        if possible (e.g., if a pack has occurred since the last
        incremental backup, a full backup is necessary).

    -Q / --quick
        Verify via md5 checksum only the last incremental written.  This
        significantly reduces the disk i/o at the (theoretical) cost of
        inconsistency.  This is a probabilistic way of determining whether
        a full backup is necessary.

    -z / --gzip
        Compress with gzip the backup files: independent gzip members of
        512 KiB, compressed in parallel (LZ77, or Huffman coding alone where
        LZ77 gains little), which ZODB's repozo, Python's gzip and gunzip
        read.  By default, gzip compression is not used.

    -k / --kill-old-on-full
        If a full backup is created, remove any prior full or incremental
        backup files (and associated metadata files) from the repository
        directory.  With --blob-dir, also the manifests of the removed
        files and the stored blob contents no other manifest names.

    --pack-delta
        When the Data.fs was packed since the last backup, store it as a
        pack delta against the last backed-up state instead of in full:
        <stamp>.fsz starts a new chain but holds only what the pack
        rewrote, and refers to the previous chain for the rest, which -k
        and retention then keep.  ZODB's repozo cannot read such a chain
        (it fails on it); -B -F starts a chain it can read again.

    --blob-dir=dir
        Also back up the blob directory of the Data.fs: exactly the blob
        files that the backed-up transactions name (taken from dir, or
        from dir.old after a concurrent pack), each content stored once in
        <repository>/blobs and listed in <stamp>.blobs.  Exit code 3 when
        some were found nowhere: they are recorded as missing and the
        next backup is a full one.

    A second backup into the same repository waits for the first (up to
    60 seconds, REPOZO_LOCK_WAIT), then exits with code 11.

Retention, after a successful -B or alone with -r (not with -k):
    --keep=N
        Keep the N newest chains (a full backup and its incrementals).

    --keep-daily=N, --keep-weekly=N, --keep-monthly=N
        Keep the newest restore point of each of the last N days, ISO weeks
        or months that have backups, by the UTC stamps in the file names.

    A chain is kept whole when any rule keeps one of its restore points,
    and the newest chain always; every other chain is removed (data files,
    .dat, .index, .blobs), then the stored blob contents no remaining
    manifest names.  Nothing else is touched.

    --dry-run
        Print what would be removed and why; remove nothing.

Options for -R/--recover:
    -D str
    --date=str
        Recover state as of this date.  Specify UTC (not local) time.
            yyyy-mm-dd[-hh[-mm[-ss]]]
        By default, current time is used.

    -o filename
    --output=filename
        Write recovered ZODB to given file.  By default, the file is
        written to stdout.  The file is written as <filename>.part and
        renamed over <filename> only when complete: if the recover fails,
        an existing <filename> and its index are left as they were.

        Note:  for the stdout case, the index file will **not** be restored
        automatically.

    Every backup file is checked against the size and md5 its .dat
    records while it is recovered; a mismatch fails the recover.  Where
    every file recovered has a fast-hash sidecar (<stamp>.blake3, written
    by this tool's backups), its BLAKE3 is checked instead, on every core;
    a file that does not match it is checked with md5, which decides.

    --md5
        Check with md5 only, as ZODB's repozo does, ignoring the sidecars.

    -w
    --with-verify
        Also log each backup file's check (repozo's -w log lines).

    --no-verify
        Do not check the backup files (what ZODB's repozo does without -w).

    --incremental
        With -o: bring an existing output up to the state of -D by proving
        its prefix (md5 of each backup file's range, or with -Q a state
        file beside it) and appending only what is missing; a rewind to an
        earlier date of the same chain is a truncation.  Refuses (exit 11)
        while a ZODB has the output open.  Bytes that are in no backup mean
        a full recover.  Prints one line saying what it did.

    --no-fallback
        With --incremental: exit 1 instead of recovering in full.

    --blob-dir=dir
        With -o: also restore the blobs of that state into dir.  The new
        tree is built beside dir and every blob checked against its hash;
        then the new tree and the new Data.fs replace the old ones, which
        stay untouched if anything fails.  Stop ZODB/ZEO first.  Needs a
        .blobs manifest for every backup file recovered.  With
        --incremental, dir is updated in place: missing or differing blob
        files (by hash, by size with -Q) are written first, the ones the
        state does not name removed after the Data.fs.

Options for -V/--verify:
    -Q / --quick
        Verify file sizes only (skip md5 checksums).

    -D str
    --date=str
        Verify the backup files recover would use for this date (UTC,
        yyyy-mm-dd[-hh[-mm[-ss]]]).  By default, current time is used.

    --md5
        Check the md5 checksums even where every file has a BLAKE3 sidecar
        (by default the sidecars are used, as for -R).

    --deep
        Also read those files as one Data.fs and check it as ZODB's
        fstest.py does, and every backpointer; that the files follow each
        other with no gap, each starting at a transaction boundary; and
        that the last .index equals the index rebuilt from the data.
        Uses 16 bytes of memory per data record.

    --max-age=duration
        After a successful check, exit with code 13 when the newest backup
        file of the repository (whatever -D chose) is older than duration,
        or there is none: seconds, or with the unit m, h, d or w (26h,
        90m, 2d).  For Nagios/Icinga checks.

    When the chain has .blobs manifests (backups made with --blob-dir),
    -V also checks the stored blobs they name: present with their sizes
    with -Q, matching their hashes otherwise; --deep also checks that the
    manifests list exactly the blob records of the chain's data.

Exit codes: 0 success (also "nothing to do"), 1 error, 3 written but some
blob files were found nowhere (--blob-dir), 10 the repository
does not exist, 11 the repository (or, with --incremental, the output) is
locked by another process, 13 the newest backup is older than --max-age,
130 interrupted (SIGINT or SIGTERM; temporary files are removed and
nothing half-done is recorded).
"#;
