//! Measures `-z`'s choices on a real file: for every member of a given
//! size, the raw deflate size and single-core time of Huffman coding alone
//! ([`repozo::io::huffman`]) and of libdeflate at each level asked for,
//! plus what the sample test ([`huffman::lz_pays`]) would decide.
//!
//! ```text
//! cargo bench --bench gzlevels -- FILE [MEMBER_MIB] [LEVELS] > members.csv
//! ```
//!
//! LEVELS is a comma-separated list (default 1,4,5,6,7,9). One CSV line per
//! member goes to stdout; totals (MB, MB/s a core) go to stderr. Used to
//! choose `gzip::LEVEL`, the member size and `huffman::LZ_MIN_GAIN`.

use std::time::Instant;

use libdeflater::{CompressionLvl, Compressor};
use repozo::io::huffman;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let Some(path) = args.first() else {
        eprintln!("usage: gzlevels FILE [MEMBER_MIB] [LEVELS]");
        std::process::exit(2);
    };
    let member: usize = args.get(1).map_or(1.0, |s| s.parse::<f64>().expect("MEMBER_MIB")) as usize;
    let member = member.max(1) << 20;
    let levels: Vec<i32> = args
        .get(2)
        .map_or("1,4,5,6,7,9", String::as_str)
        .split(',')
        .map(|s| s.parse().expect("LEVELS"))
        .collect();
    let data = std::fs::read(path).expect("read FILE");
    let mut probe = Compressor::new(CompressionLvl::new(1).expect("level 1"));
    let mut comps: Vec<Compressor> = levels
        .iter()
        .map(|&l| Compressor::new(CompressionLvl::new(l).expect("level 1-12")))
        .collect();
    let mut total = vec![(0u64, 0f64); levels.len() + 1];
    let mut buf = Vec::new();
    print!("member,bytes,lz_pays_at_first");
    print!(",huff,huff_s");
    for l in &levels {
        print!(",l{l},l{l}_s");
    }
    println!();
    for (i, chunk) in data.chunks(member).enumerate() {
        let pays = huffman::lz_pays(&mut probe, chunk);
        print!("{i},{},{}", chunk.len(), pays as u8);
        buf.clear();
        let t = Instant::now();
        huffman::encode_into(chunk, &mut buf);
        let s = t.elapsed().as_secs_f64();
        print!(",{},{s:.6}", buf.len());
        total[0].0 += buf.len() as u64;
        total[0].1 += s;
        for (k, c) in comps.iter_mut().enumerate() {
            buf.resize(c.deflate_compress_bound(chunk.len()), 0);
            let t = Instant::now();
            let n = c.deflate_compress(chunk, &mut buf).expect("bound");
            let s = t.elapsed().as_secs_f64();
            print!(",{n},{s:.6}");
            total[k + 1].0 += n as u64;
            total[k + 1].1 += s;
        }
        println!();
    }
    let mb = data.len() as f64 / 1e6;
    let names = std::iter::once("huffman".to_string()).chain(levels.iter().map(|l| format!("level {l}")));
    for (name, (size, secs)) in names.zip(&total) {
        eprintln!(
            "{name:>9}: {:8.1} MB ({:.4} of input), {:6.1} MB/s a core",
            *size as f64 / 1e6,
            *size as f64 / 1e6 / mb,
            mb / secs
        );
    }
}
