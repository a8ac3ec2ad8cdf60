//! Measures `-z`'s choices on a real file: for every member of a given
//! size, the raw deflate size and single-core time of Huffman coding alone
//! ([`repozo::io::huffman`]) and of libdeflate at each level asked for,
//! plus what the sample test ([`huffman::lz_pays`]) would decide.
//!
//! ```text
//! cargo bench --bench gzlevels -- FILE [MEMBER_MIB] [LEVELS] [ZODB_FSZ] > members.csv
//! ```
//!
//! MEMBER_MIB may be a fraction (`0.5`: the 512 KiB members `-z` writes).
//! With ZODB_FSZ (the `.fsz` ZODB's repozo wrote of FILE), it also says
//! which coders stay within 1.03× its size (counting each member's gzip
//! header and trailer as `-z` writes them), the fastest of those a core,
//! and where `-z`'s own choice per member ("ours": Huffman alone, level
//! `gzip::LEVEL` or `gzip::DENSE_LEVEL`) stands against it: issue 22's
//! measure of "`-z` at the limit" (ours within 10% of the best that
//! reaches the size).
//!
//! LEVELS is a comma-separated list (default 1,4,5,6,7,9) of libdeflate
//! levels, or zlib-rs levels (flate2's backend) written `z1` to `z9`, or
//! with `--features native` ISA-L's levels `i0`, `i1`, `i3`. One CSV line per
//! member goes to stdout; totals (MB, MB/s a core) go to stderr. Times
//! are the thread's CPU time, so that other jobs on the machine disturb
//! them less than they would wall-clock time. Used to
//! choose `gzip::LEVEL`, the member size and `huffman::LZ_MIN_GAIN`.

mod common;

use libdeflater::{CompressionLvl, Compressor};
use repozo::io::huffman;

fn main() {
    let args = common::args("gzlevels FILE [MEMBER_MIB] [LEVELS]");
    let path = &args[0];
    let member_mib = args
        .get(1)
        .map_or(1.0, |s| s.parse::<f64>().expect("MEMBER_MIB"));
    let member = ((member_mib * (1 << 20) as f64) as usize).max(4096);
    let zodb_size = args
        .get(3)
        .map(|p| std::fs::metadata(p).expect("ZODB_FSZ").len());
    let levels: Vec<String> = args
        .get(2)
        .map_or("1,4,5,6,7,9", String::as_str)
        .split(',')
        .map(str::to_string)
        .collect();
    let data = std::fs::read(path).expect("read FILE");
    let mut probe = Compressor::new(CompressionLvl::new(1).expect("level 1"));
    let mut comps: Vec<Coder> = levels
        .iter()
        .map(|l| match l.strip_prefix('z') {
            Some(z) => Coder::Zlib(z.parse().expect("zlib level 1-9")),
            #[cfg(feature = "isal")]
            None if l.starts_with('i') => Coder::Isal(match &l[1..] {
                "0" => isal::CompressionLevel::Zero,
                "1" => isal::CompressionLevel::One,
                "3" => isal::CompressionLevel::Three,
                _ => panic!("ISA-L levels are i0, i1 and i3"),
            }),
            None => Coder::Libdeflate(Compressor::new(
                CompressionLvl::new(l.parse().expect("LEVELS")).expect("level 1-12"),
            )),
        })
        .collect();
    let mut ours = repozo::io::gzip::MemberCoder::default();
    let mut total = vec![(0u64, 0f64); levels.len() + 2];
    let mut buf = Vec::new();
    print!("member,bytes,lz_pays,sample,sample_lz,sample_huff");
    print!(",huff,huff_s,ours,ours_s");
    for l in &levels {
        print!(",l{l},l{l}_s");
    }
    println!();
    for (i, chunk) in data.chunks(member).enumerate() {
        let s = huffman::sample(&mut probe, chunk);
        let pays = s.lz_pays();
        print!(
            "{i},{},{},{},{},{}",
            chunk.len(),
            pays as u8,
            s.bytes,
            s.lz,
            s.huffman
        );
        buf.clear();
        let t = cpu_seconds();
        huffman::encode_into(chunk, &mut buf);
        let s = cpu_seconds() - t;
        print!(",{},{s:.6}", buf.len());
        total[0].0 += buf.len() as u64;
        total[0].1 += s;
        buf.clear();
        let t = cpu_seconds();
        ours.deflate_into(chunk, &mut buf);
        let s = cpu_seconds() - t;
        print!(",{},{s:.6}", buf.len());
        total[1].0 += buf.len() as u64;
        total[1].1 += s;
        for (k, c) in comps.iter_mut().enumerate() {
            let t = cpu_seconds();
            let n = c.compress(chunk, &mut buf);
            let s = cpu_seconds() - t;
            print!(",{n},{s:.6}");
            total[k + 2].0 += n as u64;
            total[k + 2].1 += s;
        }
        println!();
    }
    let mb = data.len() as f64 / 1e6;
    let names: Vec<String> = ["huffman".to_string(), "ours".to_string()]
        .into_iter()
        .chain(levels.iter().map(|l| format!("level {l}")))
        .collect();
    // Each member as `-z` writes it: a 20-byte header, an 8-byte trailer.
    let members = data.len().div_ceil(member).max(1) as u64;
    let file_size = |deflated: u64| deflated + members * 28;
    for (name, (size, secs)) in names.iter().zip(&total) {
        let vs_zodb = zodb_size.map_or(String::new(), |z| {
            format!(", {:.4} of ZODB's", file_size(*size) as f64 / z as f64)
        });
        eprintln!(
            "{name:>9}: {:8.1} MB ({:.4} of input{vs_zodb}), {:6.1} MB/s a core",
            *size as f64 / 1e6,
            *size as f64 / 1e6 / mb,
            mb / secs
        );
    }
    let Some(zodb) = zodb_size else {
        return;
    };
    let within = |size: u64| file_size(size) as f64 <= 1.03 * zodb as f64;
    let best = names
        .iter()
        .zip(&total)
        .filter(|(n, (size, _))| *n != "ours" && within(*size))
        .max_by(|a, b| (mb / a.1.1).total_cmp(&(mb / b.1.1)));
    let (ours_size, ours_secs) = total[1];
    match best {
        Some((name, (_, secs))) => eprintln!(
            "within 1.03x of ZODB's {zodb} bytes: fastest single coder {name} at {:.1} MB/s a core; \
             ours {} at {:.1} MB/s a core = {:.3} of it",
            mb / secs,
            if within(ours_size) {
                "(within)"
            } else {
                "(NOT within)"
            },
            mb / ours_secs,
            secs / ours_secs
        ),
        None => eprintln!(
            "no single coder measured stays within 1.03x of ZODB's {zodb} bytes; ours {} at {:.1} MB/s a core",
            if within(ours_size) {
                "does"
            } else {
                "does not"
            },
            mb / ours_secs
        ),
    }
}

/// CPU time of the calling thread, in seconds.
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for clock_gettime to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// A compressor under test: libdeflate or zlib-rs at some level.
enum Coder {
    Libdeflate(Compressor),
    Zlib(u32),
    #[cfg(feature = "isal")]
    Isal(isal::CompressionLevel),
}

impl Coder {
    /// Raw deflate of `data` into `buf`; returns its length.
    fn compress(&mut self, data: &[u8], buf: &mut Vec<u8>) -> usize {
        match self {
            Coder::Libdeflate(c) => {
                buf.resize(c.deflate_compress_bound(data.len()), 0);
                c.deflate_compress(data, buf).expect("bound")
            }
            #[cfg(feature = "isal")]
            Coder::Isal(level) => {
                buf.resize(data.len() + data.len() / 8 + 4096, 0);
                isal::compress_into(data, buf, *level, isal::Codec::Deflate).expect("ISA-L")
            }
            Coder::Zlib(level) => {
                let mut z = flate2::Compress::new(flate2::Compression::new(*level), false);
                buf.clear();
                buf.reserve(data.len() + data.len() / 100 + 1024);
                loop {
                    let status = z
                        .compress_vec(
                            &data[z.total_in() as usize..],
                            buf,
                            flate2::FlushCompress::Finish,
                        )
                        .expect("zlib-rs");
                    if status == flate2::Status::StreamEnd {
                        return buf.len();
                    }
                    buf.reserve(buf.capacity());
                }
            }
        }
    }
}
