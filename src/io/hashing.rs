//! The one copy loop: read chunks, hand each to a sink, hash them on
//! helper threads (md5, BLAKE3 or both, one thread each).
//!
//! md5 is inherently sequential and is the most expensive thing repozo does
//! per byte, so it runs on its own thread while the calling thread reads and
//! writes. BLAKE3 (the fast-hash sidecar, [`crate::repo::sidecar`]) runs on
//! a thread of its own beside it: a backup computes both and takes the time
//! of md5 alone; a verify that can use the sidecars computes BLAKE3 only. Each chunk is hashed while it is being written, so a write that
//! waits for the disk does not stall the hashing until the pool of buffers
//! (`POOL` × `BUF`, 2 MiB) runs dry.
//!
//! Buffers start on a [`DIRECT_ALIGN`] boundary and a full chunk is a
//! multiple of it, so a sink may write full chunks with `O_DIRECT`
//! ([`super::AtomicFile::try_direct`]).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use super::hex;
use crate::error::Result;

/// Buffers in flight between the reading and the hashing thread.
///
/// 8 × [`BUF`] = 2 MiB. Where md5 is the slower side (`-V`, reading our
/// gzip members on both cores) every buffer fills, so this is RSS: 16
/// buffers put `-V` of a gzip chain at 18.5–18.9 MB and 8 at 16.7–17.5 MB
/// on the cms profile; a write stall longer than what 2 MiB covers stalls
/// the reader with either.
const POOL: usize = 8;
/// Size of each buffer (a multiple of [`DIRECT_ALIGN`]).
const BUF: usize = 256 * 1024;

/// Alignment of the buffers' start, enough for `O_DIRECT` on any Linux
/// block device (logical blocks of 512 or 4096 bytes).
pub const DIRECT_ALIGN: usize = 4096;

/// A zeroed buffer starting on a [`DIRECT_ALIGN`] boundary, carved out of
/// a slightly larger vector (no unsafe code needed).
pub(crate) struct AlignedBuf {
    mem: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    pub(crate) fn new(len: usize) -> Self {
        let mem = vec![0u8; len + DIRECT_ALIGN];
        let start = mem.as_ptr().align_offset(DIRECT_ALIGN);
        AlignedBuf { mem, start, len }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.mem[self.start..self.start + self.len]
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.mem[self.start..self.start + self.len]
    }
}

thread_local! {
    /// The buffer of the last short stream on this thread, for the next:
    /// a chain of thousands of small increments would otherwise allocate
    /// and zero [`BUF`] bytes per file (measured: 63% of the instructions
    /// of `-R` over a 2,000-file gzip chain).
    static SPARE: std::cell::Cell<Option<AlignedBuf>> = const { std::cell::Cell::new(None) };
}

/// Which digests a streaming pass computes ([`stream_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digests {
    /// md5 only (what the `.dat` records; repozo's check).
    Md5,
    /// BLAKE3 only (a sidecar's check).
    Blake3,
    /// Both (a backup, which records both).
    Both,
}

impl Digests {
    fn md5(self) -> bool {
        matches!(self, Digests::Md5 | Digests::Both)
    }

    fn blake3(self) -> bool {
        matches!(self, Digests::Blake3 | Digests::Both)
    }
}

/// What one streaming pass of [`stream_with`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digested {
    /// Bytes streamed.
    pub len: u64,
    /// md5 hex of all of them, if asked for.
    pub md5: Option<String>,
    /// BLAKE3 hex of all of them, if asked for.
    pub blake3: Option<String>,
    /// md5 hex of the first `m` bytes for each requested mark `m` that was
    /// reached, in order (only with md5).
    pub at_marks: Vec<String>,
}

/// What one streaming pass produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    /// Bytes streamed.
    pub len: u64,
    /// md5 hex of all of them.
    pub md5: String,
    /// md5 hex of the first `m` bytes for each requested mark `m` that was
    /// reached, in order.
    pub at_marks: Vec<String>,
}

enum Msg {
    Data(Arc<AlignedBuf>, usize),
    Mark,
}

/// One digest being computed: md5 records marks, BLAKE3 ignores them.
///
/// BLAKE3 runs on one thread: with `update_rayon` on both cores, `-V` of
/// the 512 MB cms chain took 0.18–0.19 s against 0.16–0.20 s (AMD EPYC, 2
/// vCPUs): reading the file is as slow as hashing it on one core.
enum Running {
    Md5(Md5Hasher, Vec<String>),
    Blake3(Box<blake3::Hasher>),
}

impl Running {
    fn new(md5: bool) -> Self {
        if md5 {
            Running::Md5(Md5Hasher::new(), Vec::new())
        } else {
            Running::Blake3(Box::default())
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Running::Md5(h, _) => h.update(data),
            Running::Blake3(h) => {
                h.update(data);
            }
        }
    }

    fn mark(&mut self) {
        if let Running::Md5(h, marks) = self {
            marks.push(h.clone().finish_hex());
        }
    }

    /// The hex digest, and the marks (md5 only).
    fn finish(self) -> (String, Vec<String>) {
        match self {
            Running::Md5(h, marks) => (h.finish_hex(), marks),
            Running::Blake3(h) => (h.finalize().to_hex().to_string(), Vec::new()),
        }
    }
}

/// Streams bytes from `fill` to `sink`, hashing them (md5) on a helper
/// thread: [`stream_with`] for md5 alone.
pub fn stream(
    fill: &mut dyn FnMut(&mut [u8]) -> Result<usize>,
    sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    marks: &[u64],
) -> Result<Hashed> {
    let d = stream_with(fill, sink, marks, Digests::Md5)?;
    Ok(Hashed {
        len: d.len,
        md5: d.md5.unwrap_or_default(),
        at_marks: d.at_marks,
    })
}

/// Streams bytes from `fill` to `sink`, computing `digests` on helper
/// threads (one per digest).
///
/// `fill(buf)` writes up to `buf.len()` bytes into `buf` and returns how
/// many; 0 means the end. `sink` receives every chunk in order. `marks` are
/// ascending byte offsets at which the md5 so far is also recorded (a chunk
/// never spans a mark; ignored without md5). Returns as soon as `fill` or
/// `sink` fails.
///
/// A stream shorter than one buffer (without marks) is hashed on the
/// calling thread: starting a thread costs more than hashing it, and a
/// chain of thousands of small increments is made of such streams.
pub fn stream_with(
    fill: &mut dyn FnMut(&mut [u8]) -> Result<usize>,
    sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    marks: &[u64],
    digests: Digests,
) -> Result<Digested> {
    let marks = if digests.md5() { marks } else { &[] };
    let mut first = None;
    if marks.is_empty() {
        let mut buf = SPARE
            .with(|spare| spare.take())
            .unwrap_or_else(|| AlignedBuf::new(BUF));
        let mut got = 0;
        while got < BUF {
            crate::interrupt::check()?;
            match fill(&mut buf.bytes_mut()[got..])? {
                0 => break,
                n => got += n,
            }
        }
        if got < BUF {
            let data = &buf.bytes()[..got];
            if got > 0 {
                sink(data)?;
            }
            let digest = |md5: bool| {
                let mut h = Running::new(md5);
                h.update(data);
                h.finish().0
            };
            let out = Digested {
                len: got as u64,
                md5: digests.md5().then(|| digest(true)),
                blake3: digests.blake3().then(|| digest(false)),
                at_marks: Vec::new(),
            };
            SPARE.with(|spare| spare.set(Some(buf)));
            return Ok(out);
        }
        first = Some(buf);
    }
    let (free_tx, free_rx) = sync_channel::<AlignedBuf>(POOL);
    // One thread per digest: `true` is md5, `false` BLAKE3.
    let kinds: Vec<bool> = [(true, digests.md5()), (false, digests.blake3())]
        .into_iter()
        .filter_map(|(md5, wanted)| wanted.then_some(md5))
        .collect();
    let back_to_pool = free_tx.clone();
    std::thread::scope(|scope| {
        let mut senders = Vec::new();
        let mut workers = Vec::new();
        for &md5 in &kinds {
            let (work_tx, work_rx) = sync_channel::<Msg>(POOL + marks.len() + 1);
            let free_tx = free_tx.clone();
            let worker = std::thread::Builder::new()
                .spawn_scoped(scope, move || {
                    hash_worker(work_rx, free_tx, Running::new(md5))
                })
                .map_err(crate::error::Error::Thread)?;
            senders.push(work_tx);
            workers.push((md5, worker));
        }
        drop(free_tx);
        let result = feed(fill, sink, marks, first, &free_rx, &senders, &back_to_pool);
        drop(senders);
        let mut out = Digested {
            len: 0,
            md5: None,
            blake3: None,
            at_marks: Vec::new(),
        };
        for (md5, worker) in workers {
            let (hex, at_marks) = worker.join().expect("a hashing thread does not panic");
            if md5 {
                out.md5 = Some(hex);
                out.at_marks = at_marks;
            } else {
                out.blake3 = Some(hex);
            }
        }
        result.map(|len| Digested { len, ..out })
    })
}

/// The threaded part of [`stream`]; `first`, if given, is a full buffer
/// already filled (the first [`BUF`] bytes).
fn feed(
    fill: &mut dyn FnMut(&mut [u8]) -> Result<usize>,
    sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    marks: &[u64],
    first: Option<AlignedBuf>,
    free_rx: &Receiver<AlignedBuf>,
    workers: &[SyncSender<Msg>],
    back_to_pool: &SyncSender<AlignedBuf>,
) -> Result<u64> {
    let send = |msg: &dyn Fn() -> Msg| {
        for w in workers {
            if w.send(msg()).is_err() {
                unreachable!("a hashing thread lives until its sender is dropped");
            }
        }
    };
    let mut done = 0u64;
    let mut allocated = 0;
    if let Some(buf) = first {
        allocated = 1;
        let buf = Arc::new(buf);
        send(&|| Msg::Data(Arc::clone(&buf), BUF));
        sink(buf.bytes())?;
        done = BUF as u64;
        if let Some(buf) = Arc::into_inner(buf) {
            let _ = back_to_pool.send(buf);
        }
    }
    let mut marks = marks.iter().copied().peekable();
    loop {
        while marks.next_if(|&m| m <= done).is_some() {
            send(&|| Msg::Mark);
        }
        let want = match marks.peek() {
            Some(&m) => (m - done).min(BUF as u64) as usize,
            None => BUF,
        };
        // Buffers are made as needed, up to POOL; a short stream needs few.
        let mut buf = match free_rx.try_recv() {
            Ok(b) => b,
            Err(_) if allocated < POOL => {
                allocated += 1;
                AlignedBuf::new(BUF)
            }
            Err(_) => free_rx.recv().expect("buffers come back to the pool"),
        };
        crate::interrupt::check()?;
        let n = fill(&mut buf.bytes_mut()[..want])?;
        if n == 0 {
            return Ok(done);
        }
        // Hash and write the chunk at the same time; whichever side is done
        // last returns the buffer to the pool.
        let buf = Arc::new(buf);
        send(&|| Msg::Data(Arc::clone(&buf), n));
        sink(&buf.bytes()[..n])?;
        done += n as u64;
        if let Some(buf) = Arc::into_inner(buf) {
            let _ = back_to_pool.send(buf);
        }
    }
}

/// Hashes every buffer it receives; whoever holds a buffer last (the sink
/// or a hashing thread) returns it to the pool.
fn hash_worker(
    work_rx: Receiver<Msg>,
    free_tx: SyncSender<AlignedBuf>,
    mut hasher: Running,
) -> (String, Vec<String>) {
    for msg in work_rx {
        match msg {
            Msg::Data(buf, n) => {
                hasher.update(&buf.bytes()[..n]);
                if let Some(buf) = Arc::into_inner(buf) {
                    let _ = free_tx.send(buf);
                }
            }
            Msg::Mark => hasher.mark(),
        }
    }
    hasher.finish()
}

/// md5 ([`super::md5::Md5`]) with a hex result, as `.dat` records it.
#[derive(Clone, Default)]
pub struct Md5Hasher(super::md5::Md5);

impl Md5Hasher {
    /// A hasher of no bytes yet.
    pub fn new() -> Self {
        Md5Hasher(super::md5::Md5::new())
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The lowercase hex digest.
    pub fn finish_hex(self) -> String {
        hex(&self.0.digest())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `fill` for [`stream`] that hands out `data` in reads of at most
    /// `max` bytes.
    fn reads_of(data: &[u8], max: usize) -> impl FnMut(&mut [u8]) -> Result<usize> + '_ {
        let mut at = 0;
        move |buf: &mut [u8]| {
            let n = buf.len().min(data.len() - at).min(max);
            buf[..n].copy_from_slice(&data[at..at + n]);
            at += n;
            Ok(n)
        }
    }

    fn md5_of(b: &[u8]) -> String {
        let mut h = Md5Hasher::new();
        h.update(b);
        h.finish_hex()
    }

    #[test]
    fn streams_of_every_size_around_one_buffer_give_the_right_md5_and_bytes() {
        for len in [0, 1, BUF - 1, BUF, BUF + 1, 2 * BUF, 3 * BUF + 7] {
            let data: Vec<u8> = (0..len).map(|i| (i * 13 % 251) as u8).collect();
            let mut out = Vec::new();
            let h = stream(
                // Short reads, as a chain of small files gives them.
                &mut reads_of(&data, 1000),
                &mut |c| {
                    out.extend_from_slice(c);
                    Ok(())
                },
                &[],
            )
            .unwrap();
            assert_eq!(h.len, len as u64);
            assert_eq!(h.md5, md5_of(&data), "length {len}");
            assert!(out == data, "length {len}");
        }
    }

    #[test]
    fn streaming_gives_the_md5_of_everything_and_at_each_mark() {
        const CHUNK: usize = BUF;
        let data: Vec<u8> = (0..3 * CHUNK + 123).map(|i| (i * 7 % 251) as u8).collect();
        let mut out = Vec::new();
        let h = stream(
            &mut reads_of(&data, usize::MAX),
            &mut |c| {
                out.extend_from_slice(c);
                Ok(())
            },
            &[0, 1000, CHUNK as u64 + 5, 10 * CHUNK as u64],
        )
        .unwrap();
        assert_eq!(out, data);
        assert_eq!(h.len, data.len() as u64);
        assert_eq!(h.md5, md5_of(&data));
        assert_eq!(
            h.at_marks,
            vec![
                md5_of(b""),
                md5_of(&data[..1000]),
                md5_of(&data[..CHUNK + 5])
            ]
        );
    }

    #[test]
    fn both_digests_are_those_of_the_bytes_at_every_size_around_one_buffer() {
        for len in [0, 1, BUF - 1, BUF, BUF + 1, 9 * BUF + 3] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 253) as u8).collect();
            for digests in [Digests::Md5, Digests::Blake3, Digests::Both] {
                let mut out = Vec::new();
                let d = stream_with(
                    &mut reads_of(&data, usize::MAX),
                    &mut |c| {
                        out.extend_from_slice(c);
                        Ok(())
                    },
                    &[],
                    digests,
                )
                .unwrap();
                assert!(out == data, "length {len}");
                assert_eq!(d.len, len as u64);
                let md5 = (digests != Digests::Blake3).then(|| md5_of(&data));
                let b3 =
                    (digests != Digests::Md5).then(|| blake3::hash(&data).to_hex().to_string());
                assert_eq!(d.md5, md5, "length {len}");
                assert_eq!(d.blake3, b3, "length {len}");
            }
        }
    }
}
