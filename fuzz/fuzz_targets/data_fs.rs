//! Arbitrary bytes as a Data.fs: `committed` must answer a position within
//! the file or a clean format error, never panic.
#![no_main]

use std::fs::File;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use repozo::{Error, Silent};

/// One scratch Data.fs per fuzzing process, rewritten for every input; no
/// `.index` is ever created next to it.
fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("repozo-fuzz-data_fs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir.join("Data.fs")
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    std::fs::write(path, data).expect("write scratch Data.fs");
    let file = File::open(path).expect("open scratch Data.fs");
    let size = data.len() as u64;
    match repozo::fs::committed(path, &file, size, &Silent) {
        Ok(c) => assert!(
            c.pos >= 4 && c.pos <= size.max(4),
            "pos {} of {size}",
            c.pos
        ),
        Err(Error::Format(f)) => assert!(f.pos <= size, "error at {} of {size}", f.pos),
        Err(e) => panic!("not a format error: {e:?}"),
    }
});
