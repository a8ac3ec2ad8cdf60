//! Deflate without LZ77: one dynamic-Huffman block coding every byte as a
//! literal (RFC 1951 §3.2.7), and the test that decides when that is enough.
//!
//! Why: `-z` must compress at several hundred MB/s per core to keep up with
//! the disk, and on bytes where LZ77 finds little to match (already
//! compressed blobs, random identifiers, hex or base64 text) libdeflate's
//! fastest level spends its time probing for matches it does not find:
//! about 130 MB/s on the benchmark's data, against several times that for
//! Huffman coding alone, at a size within a few percent. Neither libdeflate
//! nor zlib-rs offers a fast Huffman-only mode (zlib-rs'
//! `Z_HUFFMAN_ONLY` runs at about 190 MB/s), so it is written here; it is
//! small, and every member is read back by libdeflate, zlib and Python's
//! gzip in the tests.
//!
//! [`lz_pays`] decides per member: libdeflate's fastest level compresses
//! slices taken from several places in the member, and if that saves less
//! than [`LZ_MIN_GAIN`] over Huffman coding alone, the member is
//! Huffman-coded. Data.fs pickles, which repeat class names and keys, and
//! text keep LZ77; a member that merely starts with an image does too.

use libdeflater::Compressor;

/// Longest code allowed for literals/lengths and distances (RFC 1951).
const MAX_LEN: u8 = 15;
/// Longest code allowed for the code-length alphabet.
const MAX_CL_LEN: u8 = 7;
/// End-of-block symbol.
const EOB: usize = 256;
/// Order in which code-length code lengths are sent (RFC 1951 §3.2.7).
const CL_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Bytes of one slice sampled by [`lz_pays`].
pub const SAMPLE: usize = 16 * 1024;
/// Most slices sampled by [`lz_pays`], spread evenly over the member: one
/// slice (the member's start, as before) misjudged members that begin
/// with an image and go on with text, on the cms benchmark profile.
pub const SAMPLES: usize = 4;
/// One slice is sampled per this many bytes of the member (at least one,
/// at most [`SAMPLES`]): 2 slices for a 512 KiB member, so that sampling
/// stays at 1/16 of the bytes whatever the member size (libdeflate level
/// 1 on 1/8 of a cms member costs 6% of coding it at level 5).
pub const SAMPLE_EVERY: usize = 256 * 1024;
/// LZ77 (the level-1 probe) must make the samples this much smaller than
/// Huffman coding alone (as a fraction of the Huffman size) to be used for
/// the member. Measured with `benches/gzlevels.rs` on the benchmark's
/// profiles: cms and bulk samples gain 25% and more, and keep LZ77; hex
/// text gains 2-12%: at 0.05, 295 of its 513 members are Huffman-coded
/// (output 0.956 of ZODB's repozo's, 97 MB/s a core), at 0.08, 379 (0.971,
/// 136 MB/s), at 0.10, 440 (0.983, 200 MB/s) (1 MiB members, 4 slices).
/// 0.10 since 512 KiB members: full `-z` of the hex base.fs used 6.27 s of
/// CPU at 0.08 and 5.09 s at 0.10, for 0.7% more output (274.2 → 276.0
/// MiB; ZODB's repozo: 283.0 MiB), which issue 9's 10× asks for; bulk's
/// output is unchanged, cms's 0.1% larger. (tests/interop.rs wants
/// members of both kinds in its fixture.)
pub const LZ_MIN_GAIN: f64 = 0.10;

/// What the sample of a member taught: its size, and its size coded by
/// the level-1 probe and by Huffman coding alone (estimated).
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Bytes sampled.
    pub bytes: u64,
    /// Their raw deflate size at the probe's level.
    pub lz: u64,
    /// Their estimated size coded by Huffman coding alone.
    pub huffman: u64,
}

impl Sample {
    /// Whether LZ77 saves at least [`LZ_MIN_GAIN`] over Huffman coding
    /// alone on the sample.
    pub fn lz_pays(&self) -> bool {
        (self.lz as f64) < self.huffman as f64 * (1.0 - LZ_MIN_GAIN)
    }

    /// Size of the sample after the level-1 probe, as a fraction of its
    /// size (0 for an empty sample).
    pub fn lz_ratio(&self) -> f64 {
        self.lz as f64 / self.bytes.max(1) as f64
    }
}

/// Codes one slice of [`SAMPLE`] bytes per [`SAMPLE_EVERY`] (1 to
/// [`SAMPLES`] slices) spread over `data` with
/// `probe`, which should be libdeflate's level 1: judging a member then
/// costs a few percent of Huffman coding it, whatever level the member is
/// compressed at.
pub fn sample(probe: &mut Compressor, data: &[u8]) -> Sample {
    let mut out = vec![0u8; probe.deflate_compress_bound(SAMPLE)];
    let mut s = Sample {
        bytes: 0,
        lz: 0,
        huffman: 0,
    };
    let slices = data.len().div_ceil(SAMPLE_EVERY).clamp(1, SAMPLES);
    let step = (data.len() / slices).max(SAMPLE);
    for start in (0..data.len()).step_by(step).take(slices) {
        let slice = &data[start..(start + SAMPLE).min(data.len())];
        s.bytes += slice.len() as u64;
        s.lz += probe
            .deflate_compress(slice, &mut out)
            .expect("the output buffer has the bound's size") as u64;
        s.huffman += encoded_size_estimate(&histogram(slice));
    }
    s
}

/// Whether LZ77 is worth its time on `data`: [`Sample::lz_pays`] of
/// [`sample`].
pub fn lz_pays(probe: &mut Compressor, data: &[u8]) -> bool {
    sample(probe, data).lz_pays()
}

/// Byte counts of `data`, plus one end-of-block symbol (index 256).
fn histogram(data: &[u8]) -> [u32; 257] {
    // Four tables so that runs of one byte value do not serialise on one
    // counter.
    let mut t = [[0u32; 256]; 4];
    let mut quads = data.chunks_exact(4);
    for q in &mut quads {
        t[0][q[0] as usize] += 1;
        t[1][q[1] as usize] += 1;
        t[2][q[2] as usize] += 1;
        t[3][q[3] as usize] += 1;
    }
    for &b in quads.remainder() {
        t[0][b as usize] += 1;
    }
    let mut h = [0u32; 257];
    for (i, slot) in h.iter_mut().take(256).enumerate() {
        *slot = t[0][i] + t[1][i] + t[2][i] + t[3][i];
    }
    h[EOB] = 1;
    h
}

/// Bytes [`encode`] would produce for data with this histogram, give or
/// take the block header (counted as 64 bytes).
fn encoded_size_estimate(freqs: &[u32; 257]) -> u64 {
    let lens = code_lengths(freqs, MAX_LEN);
    let bits: u64 = freqs
        .iter()
        .zip(&lens)
        .map(|(&f, &l)| f as u64 * l as u64)
        .sum();
    bits / 8 + 64
}

/// Code lengths of a Huffman code for `freqs` (0 for symbols that do not
/// occur), none longer than `max_len`. The code is complete: if fewer than
/// two symbols occur, a second one gets a code too (RFC 1951 decoders, zlib
/// among them, want complete codes). There must be room for every symbol:
/// `freqs.len() <= 2^max_len` guarantees that the flattening below
/// ends (286 literal/length symbols in 15 bits, 19 code-length symbols in 7).
fn code_lengths(freqs: &[u32], max_len: u8) -> Vec<u8> {
    debug_assert!(freqs.len() <= 1 << max_len);
    let mut f: Vec<u32> = freqs.to_vec();
    let used = f.iter().filter(|&&x| x > 0).count();
    if used < 2 {
        // One symbol (or none): give it and a neighbour one bit each.
        let first = f.iter().position(|&x| x > 0).unwrap_or(0);
        let other = if first == 0 { 1 } else { 0 };
        let mut lens = vec![0u8; f.len()];
        lens[first] = 1;
        lens[other] = 1;
        return lens;
    }
    loop {
        let lens = huffman_lengths(&f);
        if lens.iter().all(|&l| l <= max_len) {
            return lens;
        }
        // Too deep: flatten the distribution and build again. Halving
        // (keeping every used symbol at least 1) ends with equal weights,
        // whose depth is ceil(log2(symbols)) <= max_len, so this stops.
        for x in f.iter_mut().filter(|x| **x > 0) {
            *x = (*x >> 1).max(1);
        }
    }
}

/// Unlimited Huffman code lengths for the symbols with nonzero `freqs`
/// (at least two of them).
///
/// The two-queue construction: leaves sorted by weight, internal nodes
/// made in order of increasing weight, so the two lightest nodes are always
/// at the head of one queue or the other. No heap, one sort.
fn huffman_lengths(freqs: &[u32]) -> Vec<u8> {
    let mut leaves: Vec<(u64, usize)> = freqs
        .iter()
        .enumerate()
        .filter(|(_, f)| **f > 0)
        .map(|(i, &f)| (f as u64, i))
        .collect();
    leaves.sort_unstable();
    let n = leaves.len();
    // Internal node k has weight weight[k] and parent parent[k]; a leaf's
    // parent is leaf_parent[i] (index into the internal nodes).
    let mut weight = Vec::with_capacity(n - 1);
    let mut parent = vec![usize::MAX; n - 1];
    let mut leaf_parent = vec![usize::MAX; n];
    let (mut next_leaf, mut next_node) = (0, 0);
    for k in 0..n - 1 {
        let mut w = 0;
        for _ in 0..2 {
            let take_leaf =
                next_leaf < n && (next_node >= k || leaves[next_leaf].0 <= weight[next_node]);
            if take_leaf {
                w += leaves[next_leaf].0;
                leaf_parent[next_leaf] = k;
                next_leaf += 1;
            } else {
                w += weight[next_node];
                parent[next_node] = k;
                next_node += 1;
            }
        }
        weight.push(w);
    }
    // Depths: the root (last node) is 0; every other node is one deeper
    // than its parent, which was made after it.
    let mut depth = vec![0u32; n - 1];
    for k in (0..n.saturating_sub(2)).rev() {
        depth[k] = depth[parent[k]] + 1;
    }
    let mut lens = vec![0u8; freqs.len()];
    for (i, &(_, sym)) in leaves.iter().enumerate() {
        lens[sym] = (depth[leaf_parent[i]] + 1).min(255) as u8;
    }
    lens
}

/// Canonical codes for `lens` (RFC 1951 §3.2.2), bit-reversed so that they
/// can be sent least significant bit first.
fn canonical_codes(lens: &[u8]) -> Vec<u16> {
    let mut count = [0u16; 16];
    for &l in lens {
        count[l as usize] += 1;
    }
    count[0] = 0;
    let mut next = [0u16; 16];
    let mut code = 0u16;
    for bits in 1..16 {
        code = (code + count[bits - 1]) << 1;
        next[bits] = code;
    }
    lens.iter()
        .map(|&l| {
            if l == 0 {
                return 0;
            }
            let c = next[l as usize];
            next[l as usize] += 1;
            c.reverse_bits() >> (16 - l)
        })
        .collect()
}

/// A little-endian bit writer (deflate packs bits from the low end).
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u32, len: u32) {
        debug_assert!(len <= 32 && (len == 32 || value >> len == 0));
        self.acc |= (value as u64) << self.n;
        self.n += len;
        if self.n >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.n -= 32;
        }
    }

    fn finish(mut self) -> Vec<u8> {
        while self.n > 0 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n = self.n.saturating_sub(8);
        }
        self.out
    }
}

/// The code-length sequence of RFC 1951 §3.2.7 for `lens`, as (symbol,
/// extra bits value, extra bits count).
fn run_length(lens: &[u8]) -> Vec<(u8, u8, u8)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lens.len() {
        let l = lens[i];
        let run = lens[i..].iter().take_while(|&&x| x == l).count();
        let mut left = run;
        if l == 0 {
            while left >= 11 {
                let k = left.min(138);
                out.push((18, (k - 11) as u8, 7));
                left -= k;
            }
            if left >= 3 {
                out.push((17, (left - 3) as u8, 3));
                left = 0;
            }
        } else {
            out.push((l, 0, 0));
            left -= 1;
            while left >= 3 {
                let k = left.min(6);
                out.push((16, (k - 3) as u8, 2));
                left -= k;
            }
        }
        out.extend(std::iter::repeat_n((l, 0, 0), left));
        i += run;
    }
    out
}

/// Raw deflate of `data` as one final dynamic-Huffman block of literals.
#[cfg(test)]
fn encode(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(data, &mut out);
    out
}

/// Uncompressed bytes per deflate block: each block has its own code, fitted
/// to its bytes (a Data.fs mixes record headers, pickle opcodes and values,
/// so smaller blocks code tighter; each costs a header of about 60 bytes).
pub const BLOCK: usize = 32 * 1024;

/// Appends to `out` the raw deflate of `data` as dynamic-Huffman blocks of
/// literals, [`BLOCK`] bytes each (one block if `data` is empty).
pub fn encode_into(data: &[u8], out: &mut Vec<u8>) {
    let mut w = Bits {
        out: std::mem::take(out),
        acc: 0,
        n: 0,
    };
    w.out.reserve(data.len() + data.len() / 8 + 512);
    let blocks = data.len().div_ceil(BLOCK).max(1);
    for i in 0..blocks {
        let block = &data[(i * BLOCK).min(data.len())..((i + 1) * BLOCK).min(data.len())];
        encode_block(&mut w, block, i + 1 == blocks);
    }
    *out = w.finish();
}

/// One dynamic-Huffman block of literals for `data`.
fn encode_block(w: &mut Bits, data: &[u8], last: bool) {
    let freqs = histogram(data);
    let lit_lens = code_lengths(&freqs, MAX_LEN);
    let lit_codes = canonical_codes(&lit_lens);
    // Two distance codes of one bit: a complete code that is never used.
    let dist_lens = [1u8, 1];

    let mut all_lens = lit_lens.clone();
    all_lens.extend_from_slice(&dist_lens);
    let rle = run_length(&all_lens);
    let mut cl_freqs = [0u32; 19];
    for &(sym, _, _) in &rle {
        cl_freqs[sym as usize] += 1;
    }
    let cl_lens = code_lengths(&cl_freqs, MAX_CL_LEN);
    let cl_codes = canonical_codes(&cl_lens);
    let hclen = CL_ORDER
        .iter()
        .rposition(|&s| cl_lens[s] != 0)
        .map_or(4, |p| (p + 1).max(4));

    w.put(last as u32, 1); // BFINAL
    w.put(2, 2); // BTYPE = dynamic Huffman
    w.put((lit_lens.len() - 257) as u32, 5); // HLIT
    w.put((dist_lens.len() - 1) as u32, 5); // HDIST
    w.put((hclen - 4) as u32, 4); // HCLEN
    for &s in &CL_ORDER[..hclen] {
        w.put(cl_lens[s] as u32, 3);
    }
    for &(sym, extra, extra_bits) in &rle {
        let s = sym as usize;
        w.put(cl_codes[s] as u32, cl_lens[s] as u32);
        if extra_bits > 0 {
            w.put(extra as u32, extra_bits as u32);
        }
    }

    // The literals: codes packed two at a time (at most 30 bits), flushed
    // 32 bits at a time.
    let mut table = [0u32; 256];
    for (s, t) in table.iter_mut().enumerate() {
        *t = lit_codes[s] as u32 | (lit_lens[s] as u32) << 16;
    }
    let (mut acc, mut n) = (w.acc, w.n);
    let mut pairs = data.chunks_exact(2);
    for p in &mut pairs {
        let a = table[p[0] as usize];
        let b = table[p[1] as usize];
        acc |= ((a & 0xffff) as u64) << n;
        n += a >> 16;
        acc |= ((b & 0xffff) as u64) << n;
        n += b >> 16;
        if n >= 32 {
            w.out.extend_from_slice(&(acc as u32).to_le_bytes());
            acc >>= 32;
            n -= 32;
        }
    }
    (w.acc, w.n) = (acc, n);
    for &b in pairs.remainder() {
        w.put(lit_codes[b as usize] as u32, lit_lens[b as usize] as u32);
    }
    w.put(lit_codes[EOB] as u32, lit_lens[EOB] as u32);
}

#[cfg(test)]
mod tests {
    use super::*;
    use libdeflater::Decompressor;
    use std::io::Read;

    fn inflate_libdeflate(raw: &[u8], len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        let n = Decompressor::new()
            .deflate_decompress(raw, &mut out)
            .expect("libdeflate reads it");
        out.truncate(n);
        out
    }

    fn inflate_zlib(raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(raw)
            .read_to_end(&mut out)
            .expect("zlib reads it");
        out
    }

    fn round_trips(data: &[u8]) {
        let raw = encode(data);
        assert_eq!(inflate_libdeflate(&raw, data.len()), data);
        assert_eq!(inflate_zlib(&raw), data);
    }

    #[test]
    fn empty_input_one_byte_and_one_repeated_byte_round_trip() {
        round_trips(b"");
        round_trips(b"x");
        round_trips(&[0u8; 1000]);
        round_trips(&[255u8; 3]);
    }

    #[test]
    fn all_byte_values_round_trip_through_libdeflate_and_zlib() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7919 % 256) as u8).collect();
        round_trips(&data);
    }

    #[test]
    fn fibonacci_weights_get_a_complete_code_no_longer_than_15_bits() {
        // Fibonacci weights make the unlimited Huffman tree as deep as
        // there are symbols.
        let mut freqs = vec![1u32, 1];
        while freqs.len() < 30 {
            freqs.push(freqs[freqs.len() - 1] + freqs[freqs.len() - 2]);
        }
        assert!(huffman_lengths(&freqs).iter().any(|&l| l > MAX_LEN));
        let lens = code_lengths(&freqs, MAX_LEN);
        assert!(lens.iter().all(|&l| (1..=MAX_LEN).contains(&l)));
        let kraft: f64 = lens.iter().map(|&l| 0.5f64.powi(l as i32)).sum();
        assert_eq!(kraft, 1.0);
    }

    #[test]
    fn a_skewed_input_whose_code_had_to_be_limited_round_trips() {
        // With the end-of-block symbol's 1, counts 1, 2, 3, 5, 8, ... make
        // a chain-shaped tree (no ties to break it).
        let mut data = vec![0u8];
        let (mut a, mut b) = (2usize, 3usize);
        for sym in 1..27u8 {
            data.extend(std::iter::repeat_n(sym, a));
            (a, b) = (b, a + b);
        }
        let h = histogram(&data);
        let unlimited = huffman_lengths(&h);
        assert!(
            unlimited.iter().any(|&l| l > MAX_LEN),
            "{h:?} {unlimited:?}"
        );
        round_trips(&data);
    }

    #[test]
    fn hex_text_is_coded_in_about_four_bits_a_byte() {
        let data: Vec<u8> = (0..1u32 << 20)
            .map(|i| b"0123456789abcdef"[(i.wrapping_mul(2654435761) >> 28) as usize])
            .collect();
        let raw = encode(&data);
        assert!(raw.len() < data.len() * 52 / 100, "{} bytes", raw.len());
        round_trips(&data);
    }

    #[test]
    fn lz77_is_kept_for_repetitive_data_and_dropped_for_hex_text() {
        let mut c = Compressor::new(libdeflater::CompressionLvl::new(1).unwrap());
        let pickles: Vec<u8> =
            b"cpersistent.mapping\nPersistentMapping\nq\x01.}q\x02U\x04dataq\x03"
                .iter()
                .copied()
                .cycle()
                .take(SAMPLE * SAMPLES * 2)
                .collect();
        assert!(lz_pays(&mut c, &pickles));
        let mut x = 0x1234_5678u32;
        let hex: Vec<u8> = (0..SAMPLE * SAMPLES * 2)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                b"0123456789abcdef"[(x & 15) as usize]
            })
            .collect();
        assert!(!lz_pays(&mut c, &hex));
    }

    #[test]
    fn a_member_that_starts_with_an_image_and_goes_on_with_text_keeps_lz77() {
        let mut c = Compressor::new(libdeflater::CompressionLvl::new(1).unwrap());
        let mut x = 0x9e37_79b9u32;
        let mut member: Vec<u8> = (0..64 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        member.extend(
            b"The catalog is updated on every edit of a document. "
                .iter()
                .copied()
                .cycle()
                .take(1 << 20),
        );
        assert!(lz_pays(&mut c, &member));
    }

    proptest::proptest! {
        #[test]
        fn codes_for_random_weights_are_complete_and_within_the_length_limit(
            freqs in proptest::collection::vec(0u32..100_000, 2..290),
            limit in 9u8..=15,
            cl_freqs in proptest::collection::vec(0u32..100_000, 19),
        ) {
            let cl_lens = code_lengths(&cl_freqs, MAX_CL_LEN);
            proptest::prop_assert!(cl_lens.iter().all(|&l| l <= MAX_CL_LEN));
            let lens = code_lengths(&freqs, limit);
            for (f, l) in freqs.iter().zip(&lens) {
                proptest::prop_assert!(*l <= limit);
                proptest::prop_assert!(*f == 0 || *l > 0, "a used symbol has no code");
            }
            let kraft: f64 = lens.iter().filter(|&&l| l > 0).map(|&l| 0.5f64.powi(l as i32)).sum();
            proptest::prop_assert_eq!(kraft, 1.0);
        }

        #[test]
        fn random_bytes_with_random_skew_round_trip(
            data in proptest::collection::vec(0u8..=255, 0..5000),
            mask in 0u8..=255,
        ) {
            let data: Vec<u8> = data.into_iter().map(|b| b & mask).collect();
            let raw = encode(&data);
            proptest::prop_assert_eq!(inflate_libdeflate(&raw, data.len()), data.clone());
            proptest::prop_assert_eq!(inflate_zlib(&raw), data);
        }
    }
}
