//! What real ZODB 6.4 does to a Data.fs (through `tests/py/zodbtool.py`):
//! the histories the tests back up.

use std::path::Path;

use super::py::zodbtool;

fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// Commits `txns` random transactions (small values; `seed` picks them),
/// creating `data_fs` if it does not exist.
pub fn grow(data_fs: &Path, txns: u64, seed: u64) {
    grow_with(data_fs, txns, seed, &[]);
}

/// [`grow`] with mostly 16-64 KB values (`--blobby`, about 0.6 MB a
/// transaction).
pub fn grow_big(data_fs: &Path, txns: u64, seed: u64) {
    grow_with(data_fs, txns, seed, &["--blobby"]);
}

/// [`grow`] with more options of zodbtool's `grow` (`extra`).
pub fn grow_with(data_fs: &Path, txns: u64, seed: u64, extra: &[&str]) {
    let (t, sd) = (txns.to_string(), seed.to_string());
    let mut args = vec!["grow", s(data_fs), "--txns", &t, "--seed", &sd];
    args.extend_from_slice(extra);
    zodbtool(&args);
}

/// Commits one more small transaction (`seed`), through zodbtool's
/// `chain` (which backs up nothing with `--count 1` and no repository).
pub fn commit(data_fs: &Path, seed: u64) {
    zodbtool(&[
        "chain",
        s(data_fs),
        "--count",
        "1",
        "--seed",
        &seed.to_string(),
    ]);
}

/// Commits a transaction and undoes it (undo records are backpointers).
pub fn undo(data_fs: &Path) {
    zodbtool(&["undo", s(data_fs), "--count", "1"]);
}

/// Packs the storage to now.
pub fn pack(data_fs: &Path) {
    zodbtool(&["pack", s(data_fs)]);
}

/// Packs the storage through `DB.pack(t)` with more options of
/// zodbtool's `pack` (`extra`): `--at FRACTION` (as of the transaction
/// that far through the file, so later history survives), `--no-gc`
/// (`pack_gc=False`), `--no-keep-old` (`pack_keep_old=False`).
pub fn pack_with(data_fs: &Path, extra: &[&str]) {
    let mut args = vec!["pack", s(data_fs)];
    args.extend_from_slice(extra);
    zodbtool(&args);
}

/// Asserts that ZODB opens each FileStorage in `paths` read-only, loads
/// its root through a `DB`, reads every value of the tree zodbtool grows
/// (sub-objects included) and iterates every record of every
/// transaction.
pub fn assert_opens(paths: &[std::path::PathBuf]) {
    const CODE: &str = r#"
import sys
import ZODB
from ZODB.FileStorage import FileStorage
for path in sys.argv[1:]:
    storage = FileStorage(path, read_only=True)
    db = ZODB.DB(storage)
    try:
        conn = db.open()
        root = conn.root()
        values = 0
        tree = root.get('tree')
        if tree is not None:
            for key, value in tree.items():
                if hasattr(value, 'get'):
                    value.get('v')
                values += 1
        records = sum(1 for t in storage.iterator() for r in t)
        print(path, len(root), values, records)
        conn.close()
    finally:
        db.close()
"#;
    let mut c = super::py::python_code(CODE);
    c.args(paths);
    let o = super::run(c);
    assert!(
        o.status.success(),
        "ZODB could not open {paths:?}:\n{}{}",
        super::stdout(&o),
        super::stderr(&o)
    );
}
