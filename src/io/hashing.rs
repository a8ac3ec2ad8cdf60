//! The one copy loop: read chunks, hand each to a sink, md5 them on a
//! second thread.
//!
//! md5 is inherently sequential and is the most expensive thing repozo does
//! per byte, so it runs on its own thread while the calling thread reads and
//! writes. Each chunk is hashed while it is being written, so a write that
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

/// Streams bytes from `fill` to `sink`, hashing them on a helper thread.
///
/// `fill(buf)` writes up to `buf.len()` bytes into `buf` and returns how
/// many; 0 means the end. `sink` receives every chunk in order. `marks` are
/// ascending byte offsets at which the md5 so far is also recorded (a chunk
/// never spans a mark). Returns as soon as `fill` or `sink` fails.
///
/// A stream shorter than one buffer (without marks) is hashed on the
/// calling thread: starting a thread costs more than hashing it, and a
/// chain of thousands of small increments is made of such streams.
pub fn stream(
    fill: &mut dyn FnMut(&mut [u8]) -> Result<usize>,
    sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    marks: &[u64],
) -> Result<Hashed> {
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
            let mut h = Md5Hasher::new();
            h.update(data);
            let md5 = h.finish_hex();
            SPARE.with(|spare| spare.set(Some(buf)));
            return Ok(Hashed {
                len: got as u64,
                md5,
                at_marks: Vec::new(),
            });
        }
        first = Some(buf);
    }
    let (free_tx, free_rx) = sync_channel::<AlignedBuf>(POOL);
    let (work_tx, work_rx) = sync_channel::<Msg>(POOL + marks.len() + 1);
    let back_to_pool = free_tx.clone();
    std::thread::scope(|scope| {
        let hasher = std::thread::Builder::new()
            .spawn_scoped(scope, move || hash_worker(work_rx, free_tx))
            .map_err(crate::error::Error::Thread)?;
        let result = feed(fill, sink, marks, first, &free_rx, &work_tx, &back_to_pool);
        drop(work_tx);
        let (md5, at_marks) = hasher.join().expect("the md5 thread does not panic");
        result.map(|len| Hashed { len, md5, at_marks })
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
    work_tx: &SyncSender<Msg>,
    back_to_pool: &SyncSender<AlignedBuf>,
) -> Result<u64> {
    let mut done = 0u64;
    let mut allocated = 0;
    if let Some(buf) = first {
        allocated = 1;
        let buf = Arc::new(buf);
        if work_tx.send(Msg::Data(Arc::clone(&buf), BUF)).is_err() {
            unreachable!("the md5 thread lives until the sender is dropped");
        }
        sink(buf.bytes())?;
        done = BUF as u64;
        if let Some(buf) = Arc::into_inner(buf) {
            let _ = back_to_pool.send(buf);
        }
    }
    let mut marks = marks.iter().copied().peekable();
    loop {
        while marks.next_if(|&m| m <= done).is_some() {
            let _ = work_tx.send(Msg::Mark);
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
        if work_tx.send(Msg::Data(Arc::clone(&buf), n)).is_err() {
            unreachable!("the md5 thread lives until the sender is dropped");
        }
        sink(&buf.bytes()[..n])?;
        done += n as u64;
        if let Some(buf) = Arc::into_inner(buf) {
            let _ = back_to_pool.send(buf);
        }
    }
}

fn hash_worker(work_rx: Receiver<Msg>, free_tx: SyncSender<AlignedBuf>) -> (String, Vec<String>) {
    let mut hasher = Md5Hasher::new();
    let mut marks = Vec::new();
    for msg in work_rx {
        match msg {
            Msg::Data(buf, n) => {
                hasher.update(&buf.bytes()[..n]);
                if let Some(buf) = Arc::into_inner(buf) {
                    let _ = free_tx.send(buf);
                }
            }
            Msg::Mark => marks.push(hasher.clone().finish_hex()),
        }
    }
    (hasher.finish_hex(), marks)
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

    fn md5_of(b: &[u8]) -> String {
        let mut h = Md5Hasher::new();
        h.update(b);
        h.finish_hex()
    }

    #[test]
    fn streams_of_every_size_around_one_buffer_give_the_right_md5_and_bytes() {
        for len in [0, 1, BUF - 1, BUF, BUF + 1, 2 * BUF, 3 * BUF + 7] {
            let data: Vec<u8> = (0..len).map(|i| (i * 13 % 251) as u8).collect();
            let mut at = 0;
            let mut out = Vec::new();
            let h = stream(
                &mut |buf| {
                    // Short reads, as a chain of small files gives them.
                    let n = buf.len().min(data.len() - at).min(1000);
                    buf[..n].copy_from_slice(&data[at..at + n]);
                    at += n;
                    Ok(n)
                },
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
        let mut at = 0;
        let mut out = Vec::new();
        let h = stream(
            &mut |buf| {
                let n = buf.len().min(data.len() - at);
                buf[..n].copy_from_slice(&data[at..at + n]);
                at += n;
                Ok(n)
            },
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
}
