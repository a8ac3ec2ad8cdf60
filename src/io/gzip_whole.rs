//! A small gzip file without our size field (one that ZODB's repozo
//! wrote: a `-BQz` every hour leaves thousands of them) inflated in one
//! call by libdeflate, instead of streaming it through the stream thread.
//!
//! Why: on a chain of 2,000 such files the cost of `-R`/`-V` is per file,
//! not per byte. Streaming a file hands it to the stream thread and back
//! (two channels, a zlib-rs state, a first chunk of 16 KiB); here it is
//! read whole (it is small), inflated where the reader runs, and handed
//! over as one piece. libdeflate decoding a whole member is also as fast
//! as any inflater the build holds (table in [`super::isal_inflate`]:
//! cms 1.33–1.38 s against ISA-L's 1.66–1.68 and zlib-rs's 1.77–1.81),
//! but it needs the whole input and output in memory, so it is only used
//! up to [`MAX_INPUT`] compressed and [`MAX_OUTPUT`] uncompressed bytes;
//! larger files are streamed as before (ISA-L in the default build,
//! zlib-rs without it), inflating on their own thread while md5 runs on
//! another.
//!
//! Measured with `valgrind --tool=callgrind` (instruction counts, so the
//! machine's load does not matter) on `-V` of the 2,000-file chain of
//! `bash scripts/bench-long-chain.sh` (gzip, written by ZODB's repozo):
//! 400 M instructions before, 48% of them `memset` of per-file buffers,
//! against 162 M now, where libdeflate's decoding (44%) and md5 (13%)
//! lead: the per-file set-up is now below the cost of the data.
//!
//! It is only a fast path, never a second opinion: a file is taken here
//! only if libdeflate reads it whole, to its last byte, as exactly one
//! member whose CRC-32 and ISIZE match, with a header that flate2 reads
//! the same way (no header CRC, no reserved flag bits, short name and
//! comment). Anything else (damage, a second member, trailing bytes, a
//! header CRC) goes to the stream decoder with every byte read so far,
//! which gives exactly the bytes and error it gave before. The one
//! difference left: a deflate stream that zlib refuses but libdeflate
//! decodes to bytes that match the trailer's CRC-32 and size (libdeflate
//! accepts some incomplete Huffman codes, as ISA-L does) is read here;
//! its bytes are still checked against the `.dat`'s md5 like every other.

/// Largest compressed file inflated whole.
pub(super) const MAX_INPUT: usize = super::CHUNK;
/// Largest uncompressed size (the trailer's ISIZE) inflated whole: the
/// bound of the members we decompress in one piece
/// ([`super::gzip`]'s `MAX_MEMBER_ISIZE`).
pub(super) const MAX_OUTPUT: usize = super::CHUNK;

const FTEXT: u8 = 1;
const FHCRC: u8 = 1 << 1;
const FEXTRA: u8 = 1 << 2;
const FNAME: u8 = 1 << 3;
const FCOMMENT: u8 = 1 << 4;
/// Longest name or comment taken here (flate2 refuses those over 65,535
/// bytes; anything near that is left to it).
const MAX_FIELD: usize = 4096;

/// A libdeflate decompressor of its own (libdeflater's does not give the
/// number of input bytes a member used, which is what tells a member that
/// ends before the file does).
pub(super) struct Whole(std::ptr::NonNull<libdeflate_sys::libdeflate_decompressor>);

// SAFETY: a libdeflate decompressor is plain memory owned by this value,
// used by one thread at a time (`&mut self`), tied to no thread.
unsafe impl Send for Whole {}

impl Whole {
    /// A decompressor, or `None` if libdeflate could not allocate one.
    pub(super) fn new() -> Option<Self> {
        // SAFETY: no arguments; returns NULL or a decompressor we own.
        let p = unsafe { libdeflate_sys::libdeflate_alloc_decompressor() };
        std::ptr::NonNull::new(p).map(Whole)
    }

    /// The contents of `file` (a whole gzip file) if it is a single member
    /// that libdeflate reads to its last byte with a header flate2 reads
    /// alike, of at most [`MAX_OUTPUT`] bytes; `None` otherwise, and then
    /// the caller streams `file` as before.
    pub(super) fn inflate(&mut self, file: &[u8]) -> Option<Vec<u8>> {
        if file.len() > MAX_INPUT || !plain_header(file) {
            return None;
        }
        let isize = file.len().checked_sub(4).map(|at| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&file[at..]);
            u32::from_le_bytes(w) as usize
        })?;
        if isize > MAX_OUTPUT {
            return None;
        }
        let mut out = vec![0u8; isize];
        let (mut used_in, mut used_out) = (0usize, 0usize);
        // SAFETY: the decompressor is ours and used by this call alone;
        // `file` and `out` are live for the call, and libdeflate reads at
        // most `file.len()` bytes from the first and writes at most
        // `out.len()` to the second; both counts are written through
        // pointers to locals.
        let ret = unsafe {
            libdeflate_sys::libdeflate_gzip_decompress_ex(
                self.0.as_ptr(),
                file.as_ptr().cast(),
                file.len(),
                out.as_mut_ptr().cast(),
                out.len(),
                &mut used_in,
                &mut used_out,
            )
        };
        (ret == libdeflate_sys::libdeflate_result_LIBDEFLATE_SUCCESS
            && used_in == file.len()
            && used_out == isize)
            .then_some(out)
    }
}

impl Drop for Whole {
    fn drop(&mut self) {
        // SAFETY: allocated by libdeflate_alloc_decompressor, freed once.
        unsafe { libdeflate_sys::libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}

/// Whether `file` starts with a gzip header that libdeflate and flate2
/// read alike: deflate, no header CRC (libdeflate skips it unchecked), no
/// reserved flag bits, a name and comment of at most [`MAX_FIELD`] bytes.
fn plain_header(file: &[u8]) -> bool {
    header_len(file).is_some_and(|n| n <= file.len())
}

/// Length of the header [`plain_header`] accepts, if it is one.
fn header_len(file: &[u8]) -> Option<usize> {
    let [0x1f, 0x8b, 8, flags, ..] = *file else {
        return None;
    };
    // A header CRC is skipped by libdeflate, checked by flate2; the three
    // high bits are reserved.
    if flags & FHCRC != 0 || flags & !(FTEXT | FHCRC | FEXTRA | FNAME | FCOMMENT) != 0 {
        return None;
    }
    let mut at = 10usize;
    if flags & FEXTRA != 0 {
        let xlen = file.get(at..at.checked_add(2)?)?;
        at = at.checked_add(2 + usize::from(u16::from_le_bytes([xlen[0], xlen[1]])))?;
    }
    for field in [FNAME, FCOMMENT] {
        if flags & field != 0 {
            let rest = file.get(at..)?;
            let n = rest.iter().take(MAX_FIELD + 1).position(|&b| b == 0)?;
            at += n + 1;
        }
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(9));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn text(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| b"abcdefgh repozo "[(i * 7 + i / 13) % 16])
            .collect()
    }

    #[test]
    fn a_small_one_member_file_is_inflated_whole() {
        let data = text(100_000);
        assert_eq!(Whole::new().unwrap().inflate(&gzip(&data)), Some(data));
    }

    #[test]
    fn a_file_named_as_python_gzip_names_it_is_inflated_whole() {
        let data = text(5000);
        let mut gz = flate2::GzBuilder::new()
            .filename("2021-03-01-09-00-00.deltafs")
            .comment("c")
            .extra(vec![1, 2, 3])
            .write(Vec::new(), flate2::Compression::new(9));
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(Whole::new().unwrap().inflate(&gz), Some(data));
    }

    #[test]
    fn two_members_trailing_bytes_and_damage_are_left_to_the_stream_decoder() {
        let mut w = Whole::new().unwrap();
        let one = gzip(&text(3000));
        let mut two = one.clone();
        two.extend_from_slice(&gzip(b"more"));
        assert_eq!(w.inflate(&two), None);
        let mut trailing = one.clone();
        trailing.push(0);
        assert_eq!(w.inflate(&trailing), None);
        for at in 0..one.len() {
            let mut bad = one.clone();
            bad[at] ^= 0x20;
            if let Some(out) = w.inflate(&bad) {
                // Only a flipped bit that changes nothing read (MTIME, XFL,
                // OS) may still give the contents.
                assert!((4..10).contains(&at), "byte {at}");
                assert_eq!(out, text(3000));
            }
        }
        assert_eq!(w.inflate(&one[..one.len() - 1]), None);
        assert_eq!(w.inflate(&[]), None);
    }

    #[test]
    fn a_header_crc_and_sizes_beyond_the_bounds_are_left_to_the_stream_decoder() {
        let mut w = Whole::new().unwrap();
        let mut gz = gzip(b"x");
        gz[3] |= FHCRC;
        assert_eq!(w.inflate(&gz), None);
        let big = vec![0u8; MAX_OUTPUT + 1];
        assert_eq!(w.inflate(&gzip(&big)), None);
        assert_eq!(
            w.inflate(&gzip(&big[..MAX_OUTPUT])),
            Some(big[..MAX_OUTPUT].to_vec())
        );
        let mut claims = gzip(b"x");
        let n = claims.len();
        claims[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(w.inflate(&claims), None);
    }

    proptest::proptest! {
        /// A file's bytes come from storage: any bytes, and any damage to
        /// a good file, give contents or `None`, never a panic; contents
        /// given for a damaged file are the file's.
        #[test]
        fn any_bytes_and_any_damage_give_an_answer_never_a_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000),
            at in 0usize..2000,
            flip in 1u8..=255,
        ) {
            let mut w = Whole::new().unwrap();
            let _ = w.inflate(&bytes);
            let data = text(1500);
            let mut bad = gzip(&data);
            let at = at % bad.len();
            bad[at] ^= flip;
            if let Some(out) = w.inflate(&bad) {
                proptest::prop_assert_eq!(out, data);
            }
        }
    }
}
