//! The one-core bound of reading a gzip file written by ZODB's repozo (one
//! deflate stream): how long this build's stream decoder
//! ([`repozo::io::gzip::stream_decoder`]: zlib-rs, or ISA-L with feature
//! `isal`) and our md5 each take over the file, in memory, best of a few
//! passes. `-R` and `-V` of such a file cannot finish before the slower
//! of the two (they run on separate threads), whatever else they do.
//! `bench/inflatebench.sh` has ZODB's repozo write the file, runs this for
//! both builds and times ZODB's `-V` beside it.
//!
//! ```text
//! cargo bench --bench inflate [--features isal] -- FILE.gz [PASSES]
//! ```
//!
//! Prints one line per measure (`inflate, …`, `md5 (ours)`, `bound …`);
//! `bench/inflatebench.sh` reads the seconds of the first two as awk's
//! `$(NF-5)` and `$(NF-3)`: keep the lines' ends as they are.

mod common;

use std::io::Read;
use std::time::Instant;

fn main() {
    let args = common::args("inflate FILE.gz [PASSES]");
    let path = &args[0];
    let passes: usize = args.get(1).map_or(3, |s| s.parse().expect("PASSES"));
    let compressed = std::fs::read(path).expect("read FILE.gz");
    let decoder = if cfg!(feature = "isal") {
        "ISA-L (feature isal)"
    } else {
        "zlib-rs (default build)"
    };

    // Read in 256 KiB pieces, as the stream thread hands chunks on; the
    // output is dropped, as the thread hands it on, so that neither
    // growing a buffer for it nor copying the input is timed.
    const PIECE: usize = 256 * 1024;
    let mut piece = vec![0u8; PIECE];
    let mut inflate = f64::INFINITY;
    let mut total = 0usize;
    for _ in 0..passes.max(1) {
        let input = std::io::Cursor::new(compressed.clone());
        let t = Instant::now();
        let mut d = repozo::io::gzip::stream_decoder(input);
        total = 0;
        loop {
            let n = d.read(&mut piece).expect("a valid gzip file");
            if n == 0 {
                break;
            }
            total += n;
        }
        inflate = inflate.min(t.elapsed().as_secs_f64());
    }
    // libdeflate, the whole member in one call into an output buffer of
    // the size it will have (the `.dat` line gives it to a reader; here
    // the trailer's ISIZE), as a whole-member decoder would run.
    let mut whole = vec![0u8; total];
    let mut libdeflate = f64::INFINITY;
    for _ in 0..passes.max(1) {
        let t = Instant::now();
        let mut d = libdeflater::Decompressor::new();
        let n = d
            .gzip_decompress(&compressed, &mut whole)
            .expect("a valid one-member gzip file");
        assert_eq!(n, total);
        libdeflate = libdeflate.min(t.elapsed().as_secs_f64());
    }
    drop(whole);

    let mut out = Vec::with_capacity(total);
    repozo::io::gzip::stream_decoder(std::io::Cursor::new(compressed.clone()))
        .read_to_end(&mut out)
        .expect("a valid gzip file");

    let mut md5 = f64::INFINITY;
    let mut digest = [0u8; 16];
    for _ in 0..passes.max(1) {
        let t = Instant::now();
        let mut h = repozo::io::md5::Md5::new();
        for p in out.chunks(1 << 20) {
            h.update(p);
        }
        digest = h.digest();
        md5 = md5.min(t.elapsed().as_secs_f64());
    }

    let mb = out.len() as f64 / 1e6;
    println!(
        "{path}: {} bytes compressed, {} bytes out, md5 {}",
        compressed.len(),
        out.len(),
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    println!(
        "{:<28} {:7.3} s  {:7.1} MB/s of output",
        format!("inflate, {decoder}"),
        inflate,
        mb / inflate
    );
    println!(
        "{:<28} {:7.3} s  {:7.1} MB/s of output",
        "whole member, libdeflate",
        libdeflate,
        mb / libdeflate
    );
    println!("{:<28} {:7.3} s  {:7.1} MB/s", "md5 (ours)", md5, mb / md5);
    println!(
        "{:<28} {:7.3} s  (the slower of the two)",
        "bound for -R / -V",
        inflate.max(md5)
    );
}
