//! The help text, printed by `-h` and before every usage error.
//!
//! The wording is repozo's own (ZODB 6.4, `src/ZODB/scripts/repozo.py`, the
//! module docstring, Zope Public License 2.1), kept verbatim because it is
//! part of the command-line contract: wrappers and operators compare it, and
//! our CLI parity test checks it byte for byte against the reference.

/// Returns the help text with `program` (repozo prints `sys.argv[0]`) in the
/// usage line. It ends with one newline, as Python's `print(__doc__)` writes
/// it: the docstring's own final newline plus `print`'s.
pub fn help_text(program: &str) -> String {
    HELP.replace("{program}", program)
}

/// What `--version` prints: the name, the version, and what it is a
/// replacement for.
pub fn version_line() -> String {
    format!(
        "repozo {} (repozo in Rust; reads and writes the repositories of ZODB 6.4's repozo)",
        env!("CARGO_PKG_VERSION")
    )
}

const HELP: &str = r#"repozo.py -- incremental and full backups of a Data.fs file and index.

Usage: {program} [options]
Where:

    Exactly one of -B, -R, or -V must be specified:

    -B / --backup
        Backup current ZODB file.

    -R / --recover
        Restore a ZODB file from a backup.

    -V / --verify
        Verify backup integrity.

    -v / --verbose
        Verbose mode.

    -h / --help
        Print this text and exit.

    -r dir
    --repository=dir
        Repository directory containing the backup files.  This argument
        is required.  The directory must already exist.  You should not
        edit the files in this directory, or add your own files to it.

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
        Compress with gzip the backup files.  Uses the default zlib
        compression level.  By default, gzip compression is not used.

    -k / --kill-old-on-full
        If a full backup is created, remove any prior full or incremental
        backup files (and associated metadata files) from the repository
        directory.

Options for -R/--recover:
    -D str
    --date=str
        Recover state as of this date.  Specify UTC (not local) time.
            yyyy-mm-dd[-hh[-mm[-ss]]]
        By default, current time is used.

    -o filename
    --output=filename
        Write recovered ZODB to given file.  By default, the file is
        written to stdout.

        Note:  for the stdout case, the index file will **not** be restored
        automatically.

    -w
    --with-verify
        Verify on the fly the backup files on recovering. This option runs
        the same checks as when repozo is run in -V/--verify mode, and
        allows to verify and recover a backup in one single step. If a sanity
        check fails, the partially recovered ZODB will be left in place.

Options for -V/--verify:
    -Q / --quick
        Verify file sizes only (skip md5 checksums).

"#;
