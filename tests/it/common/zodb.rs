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
