//! md5 over one file, in memory, by our implementation (`src/io/md5.rs`)
//! and the `md-5` crate: best of a few passes, in MB/s (10^6 bytes) of
//! wall-clock time. `bench/md5bench.sh` runs it beside OpenSSL and
//! `md5sum` on the same file.
//!
//! ```text
//! cargo bench --bench md5bench -- FILE [PASSES]
//! ```

mod common;

use std::time::Instant;

use md5::Digest;

fn main() {
    let args = common::args("md5bench FILE [PASSES]");
    let path = &args[0];
    let passes: usize = args.get(1).map_or(3, |s| s.parse().expect("PASSES"));
    let data = std::fs::read(path).expect("read FILE");
    let mb = data.len() as f64 / 1e6;
    // Fed in 1 MiB pieces, as repozo reads the Data.fs.
    const PIECE: usize = 1 << 20;
    let ours = best(passes, || {
        let mut h = repozo::io::md5::Md5::new();
        for p in data.chunks(PIECE) {
            h.update(p);
        }
        hex(&h.digest())
    });
    let crate_md5 = best(passes, || {
        let mut h = md5::Md5::new();
        for p in data.chunks(PIECE) {
            h.update(p);
        }
        hex(&h.finalize())
    });
    assert_eq!(ours.1, crate_md5.1, "the two md5s differ");
    println!(
        "{:<28} {:8.1} MB/s  {}",
        "ours (src/io/md5.rs)",
        mb / ours.0,
        ours.1
    );
    println!(
        "{:<28} {:8.1} MB/s  {}",
        "md-5 crate",
        mb / crate_md5.0,
        crate_md5.1
    );
}

/// Shortest time of `passes` runs of `f`, and its result.
fn best(passes: usize, mut f: impl FnMut() -> String) -> (f64, String) {
    let mut best = f64::INFINITY;
    let mut out = String::new();
    for _ in 0..passes.max(1) {
        let t = Instant::now();
        out = f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    (best, out)
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}
