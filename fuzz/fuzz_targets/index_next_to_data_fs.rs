//! Arbitrary bytes as the `.index` of a healthy, ZODB-written Data.fs:
//! whatever the index says, `committed` must find the same end as a full
//! scan (the file's size), never panic nor fail.
#![no_main]

use std::fs::File;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use repozo::Silent;

const SMALL_FS: &[u8] = include_bytes!("../../tests/data/small.fs");

/// One scratch copy of `small.fs` per fuzzing process; only its `.index`
/// is rewritten for every input.
fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("repozo-fuzz-index-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        let path = dir.join("Data.fs");
        std::fs::write(&path, SMALL_FS).expect("write scratch Data.fs");
        path
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    std::fs::write(format!("{}.index", path.display()), data).expect("write scratch index");
    let file = File::open(path).expect("open scratch Data.fs");
    let size = SMALL_FS.len() as u64;
    let c = repozo::fs::committed(path, &file, size, &Silent).expect("a healthy Data.fs opens");
    assert_eq!(c.pos, size);
});
