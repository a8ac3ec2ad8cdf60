//! MD5 (RFC 1321), written here because it is the bottleneck of every
//! repozo operation.
//!
//! repozo's `.dat` records the md5 of every backup file, so a full backup,
//! a default incremental and `-V` cannot go faster than md5 of the bytes
//! involved, and md5 cannot be parallelised within one stream. The `md-5`
//! crate reaches about 640 MB/s on the development machine (2 vCPU AMD EPYC)
//! and OpenSSL's assembly about 760 MB/s; this block function reaches about
//! 800 MB/s (scratch benchmark over 512 MiB of a benchmark Data.fs, the
//! same buffer for all three), with no C or assembly. What makes the difference is keeping the
//! critical path of each step short, since every step depends on the one
//! before:
//!
//! * the message word, the round constant and the old `a` are summed off
//!   the critical path, so only the boolean function of the newest word
//!   (`b`) and one add precede the rotate;
//! * round 1 uses `d ^ (b & (c ^ d))` (two operations after `b`, instead of
//!   three for `(b & c) | (!b & d)` without BMI1's `andn`);
//! * round 2 adds its two disjoint terms separately, so `c & !d` (which
//!   does not need `b`) is summed early;
//! * the constant table is read through `black_box` so that the compiler
//!   keeps it in memory: with immediates LLVM reassociates the additions
//!   and puts them back on the critical path (measured 660 MB/s).
//!
//! Correctness is checked against the RFC 1321 test vectors and against
//! the `md-5` crate on random inputs split at random points (unit tests and
//! a property test); every interop test compares `.dat` files with
//! ZODB's repozo, whose md5 is Python's hashlib.

/// `floor(abs(sin(i + 1)) * 2^32)` for i in 0..64 (RFC 1321, section 3.4).
static K: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
];

/// Left-rotation amounts per step.
const S: [u32; 64] = [
    7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, //
    5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, //
    4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, //
    6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
];

/// The initial state (RFC 1321, section 3.3).
const INIT: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];

/// One step of round `R` (0–3); `mk` is the message word plus the constant.
#[inline(always)]
fn step<const R: u8>(a: u32, b: u32, c: u32, d: u32, mk: u32, s: u32) -> u32 {
    let early = a.wrapping_add(mk);
    let t = match R {
        0 => early.wrapping_add(d ^ (b & (c ^ d))),
        1 => early.wrapping_add(c & !d).wrapping_add(b & d),
        2 => early.wrapping_add(c ^ d ^ b),
        _ => early.wrapping_add(c ^ (b | !d)),
    };
    t.rotate_left(s).wrapping_add(b)
}

/// Runs the block function over `blocks` (a multiple of 64 bytes long).
fn compress(state: &mut [u32; 4], blocks: &[u8]) {
    debug_assert_eq!(blocks.len() % 64, 0);
    let k: &[u32; 64] = std::hint::black_box(&K);
    for block in blocks.chunks_exact(64) {
        let mut m = [0u32; 16];
        for (w, bytes) in m.iter_mut().zip(block.chunks_exact(4)) {
            *w = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        let [mut a, mut b, mut c, mut d] = *state;
        macro_rules! steps {
            ($round:literal, $first:expr, $word:expr) => {
                for j in 0..16 {
                    let i = $first + j;
                    let new_b = step::<$round>(a, b, c, d, m[$word(j)].wrapping_add(k[i]), S[i]);
                    (a, b, c, d) = (d, new_b, b, c);
                }
            };
        }
        steps!(0, 0, |j: usize| j);
        steps!(1, 16, |j: usize| (5 * j + 1) % 16);
        steps!(2, 32, |j: usize| (3 * j + 5) % 16);
        steps!(3, 48, |j: usize| (7 * j) % 16);
        state[0] = state[0].wrapping_add(a);
        state[1] = state[1].wrapping_add(b);
        state[2] = state[2].wrapping_add(c);
        state[3] = state[3].wrapping_add(d);
    }
}

/// A streaming md5: `update` any number of times, then `digest`.
#[derive(Clone)]
pub struct Md5 {
    state: [u32; 4],
    /// Bytes not yet run through the block function (`pending` of them).
    buf: [u8; 64],
    pending: usize,
    /// Bytes fed so far.
    len: u64,
}

impl Md5 {
    /// The md5 of no bytes yet.
    pub fn new() -> Self {
        Md5 {
            state: INIT,
            buf: [0; 64],
            pending: 0,
            len: 0,
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len = self.len.wrapping_add(data.len() as u64);
        if self.pending > 0 {
            let take = (64 - self.pending).min(data.len());
            self.buf[self.pending..self.pending + take].copy_from_slice(&data[..take]);
            self.pending += take;
            data = &data[take..];
            if self.pending < 64 {
                return;
            }
            compress(&mut self.state, &self.buf);
            self.pending = 0;
        }
        let whole = data.len() / 64 * 64;
        compress(&mut self.state, &data[..whole]);
        let rest = &data[whole..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.pending = rest.len();
    }

    /// The 16-byte digest of everything fed.
    pub fn digest(mut self) -> [u8; 16] {
        let bits = self.len.wrapping_mul(8);
        let mut tail = [0u8; 128];
        tail[..self.pending].copy_from_slice(&self.buf[..self.pending]);
        tail[self.pending] = 0x80;
        let total = if self.pending < 56 { 64 } else { 128 };
        tail[total - 8..total].copy_from_slice(&bits.to_le_bytes());
        compress(&mut self.state, &tail[..total]);
        let mut out = [0u8; 16];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_le_bytes());
        }
        out
    }
}

impl Default for Md5 {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::hex;

    fn md5_hex(data: &[u8]) -> String {
        let mut h = Md5::new();
        h.update(data);
        hex(&h.digest())
    }

    #[test]
    fn the_rfc_1321_test_suite_gives_the_published_digests() {
        let cases = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                "abcdefghijklmnopqrstuvwxyz",
                "c3fcd3d76192e4007dfb496cca67e13b",
            ),
            (
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                "d174ab98d277d9f5a5611c2c9f419d9f",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(md5_hex(input.as_bytes()), want, "md5({input:?})");
        }
    }

    #[test]
    fn the_round_constants_are_the_sines_of_rfc_1321() {
        for (i, &k) in K.iter().enumerate() {
            let want = (((i + 1) as f64).sin().abs() * 4294967296.0) as u32;
            assert_eq!(k, want, "K[{i}]");
        }
    }

    #[test]
    fn every_length_around_the_padding_boundaries_matches_the_md5_crate() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 131 % 251) as u8).collect();
        for n in 0..data.len() {
            let want =
                md5::Digest::finalize(<md5::Md5 as md5::Digest>::new_with_prefix(&data[..n]));
            assert_eq!(md5_hex(&data[..n]), hex(&want), "length {n}");
        }
    }

    #[test]
    fn feeding_in_pieces_gives_the_same_digest_as_feeding_at_once() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let whole = md5_hex(&data);
        for step in [1, 3, 63, 64, 65, 127, 1000] {
            let mut h = Md5::new();
            for piece in data.chunks(step) {
                h.update(piece);
            }
            assert_eq!(hex(&h.digest()), whole, "pieces of {step}");
        }
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_fed_in_random_pieces_match_the_md5_crate(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..2000),
            cuts in proptest::collection::vec(0usize..2000, 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort();
            let mut h = Md5::new();
            let mut at = 0;
            for c in cuts.into_iter().chain([data.len()]) {
                h.update(&data[at..c]);
                at = c;
            }
            let want = md5::Digest::finalize(<md5::Md5 as md5::Digest>::new_with_prefix(&data));
            proptest::prop_assert_eq!(hex(&h.digest()), hex(&want));
        }
    }
}
