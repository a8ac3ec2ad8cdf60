//! gzip as repozo's files need it: written as independent members
//! compressed in parallel, read back as one stream.
//!
//! A `.fsz`/`.deltafsz` is a standard gzip file; Python's `gzip` module (and
//! so ZODB's repozo), `gunzip` and zlib all read a file of several members
//! as the concatenation of their contents. Cutting the input into
//! [`MEMBER`]-sized members costs a few bytes per member and lets every
//! core compress. Each member is coded by libdeflate at [`LEVEL`], or
//! [`DENSE_LEVEL`] where a sample shows it compressing very well, or, where
//! the sample shows LZ77 gaining little, by Huffman coding alone
//! ([`super::huffman`]), several times faster. Feature `isal` writes the
//! same: ISA-L's deflate is fast but coarse. Its level 1 (used here before)
//! made the cms and bulk profiles' full `-z` 1.18× and 1.15× the size of
//! ZODB's repozo's, and `igzip -3` still gives 1.10× on cms, against a
//! bound of 1.03×.
//!
//! Each member we write carries its own compressed size in a gzip extra
//! field (subfield `RZ`, 4 bytes little-endian; RFC 1952 §2.3.1.1, the idea
//! of BGZF's `BC`), which every gzip reader skips. [`GzipReader`] uses it to
//! hand whole members to several threads; a file without it (written by
//! ZODB's repozo or gzip) is read as one stream, inflated by zlib-rs on a
//! thread of its own (`StreamThread`) a few chunks ahead of the reader,
//! so that on two cores inflating overlaps with the md5 and with writing
//! the bytes out. Inflating is the one part that cannot be split: perf on
//! `-R` of a 553 MB chain written by ZODB's repozo (cms profile) put
//! 2.3 s on the reading thread (inflate, then write) and 1.1 s on md5;
//! with the stream thread, 2.1 s inflating, 0.8 s writing, 1.1 s md5.
//!
//! One file though over 600 lines: the writer and the reader are two
//! halves of one format (members that carry their own compressed size),
//! share the worker pool (`Pool`) and the member constants, and each
//! reads best beside the other.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use libdeflater::{CompressionLvl, Compressor, Decompressor, crc32};

use super::gzip_whole;

/// libdeflate levels used for `-z`, per member, by what the level-1 probe
/// of [`super::huffman::sample`] found: [`DENSE_LEVEL`] where it shrank the
/// sample below [`DENSE_RATIO`] of its size, [`LEVEL`] elsewhere (unless
/// LZ77 does not pay at all, see [`super::huffman::LZ_MIN_GAIN`]).
///
/// Chosen with `benches/gzlevels.rs` on the benchmark's 512 MB profiles:
/// raw deflate of 1 MiB members against ZODB's repozo (zlib level 9, one
/// stream), and MB/s of CPU time on one core of the Xeon measured:
///
/// | level | cms | bulk | hex (LZ77 where it pays 5%) |
/// |---|---:|---:|---:|
/// | 1 | 1.083, 107 MB/s | 1.072, 327 MB/s | 0.978 |
/// | 4 | 1.032, 66 MB/s | 1.038, 194 MB/s | 0.975 |
/// | 5 | 1.018, 56 MB/s | 1.028, 171 MB/s | 0.956 |
/// | 6 | 1.011, 46 MB/s | 0.996, 118 MB/s | 0.956 |
///
/// Text (cms: sample ratio 0.38 to 0.56) gains little from level 6 and
/// pays 20% of speed for it; a million small pickles (bulk: 0.16 to 0.19)
/// need level 6's deeper lazy matching to stay within 1.03 and still get
/// it at 118 MB/s.
pub const LEVEL: i32 = 5;
/// libdeflate level for members that compress very well; see [`LEVEL`].
pub const DENSE_LEVEL: i32 = 6;
/// Sample ratio (probe output / input) below which [`DENSE_LEVEL`] is used.
pub const DENSE_RATIO: f64 = 0.3;

/// Uncompressed bytes per member we write (the last one may hold fewer).
///
/// Half a [`CHUNK`](super::CHUNK) for memory: the members in flight hold
/// their input and output, so this size decides most of `-z`'s peak RSS
/// and of reading our files back. Measured on the benchmark's cms profile
/// (537 MB, 53,294 objects; peak RSS of `-B -F -z` / `-V` of a gzip chain)
/// with the hashing pool at 2 MiB: 1 MiB members 19.8 / 16.5 MB, 512 KiB
/// members 13.3 / 12.3 MB, for output 0.3% larger (234.39 → 235.14 MB),
/// the deflate window (32 KiB) starting empty twice as often. Files written
/// with 1 MiB members (by earlier builds) still decode in parallel: see
/// [`MAX_MEMBER_ISIZE`].
pub const MEMBER: usize = super::CHUNK / 2;

/// Fixed part of a member header we write: magic, method, FLG=FEXTRA,
/// MTIME=0, XFL=0, OS=255 (unknown), XLEN=8, then subfield `RZ` of length 4.
const HEADER: [u8; 16] = [0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 255, 8, 0, b'R', b'Z', 4, 0];
/// Header plus the 4-byte member size.
const HEADER_LEN: usize = HEADER.len() + 4;
/// CRC-32 and ISIZE.
const TRAILER_LEN: usize = 8;

/// Worker threads (one per core) applying one function to numbered jobs;
/// results come back tagged with their number, in any order.
struct Pool<J, R> {
    jobs: Option<Sender<(u64, J)>>,
    results: Receiver<(u64, R)>,
    workers: Vec<JoinHandle<()>>,
}

impl<J: Send + 'static, R: Send + 'static> Pool<J, R> {
    /// Starts the workers; each keeps its own state made by `init`. Fails
    /// if the system cannot start a thread (out of memory or processes).
    fn new<S: 'static>(init: fn() -> S, work: fn(&mut S, J) -> R) -> std::io::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (job_tx, job_rx) = channel::<(u64, J)>();
        let (res_tx, res_rx) = channel();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let workers = (0..threads)
            .map(|_| {
                let rx = Arc::clone(&job_rx);
                let tx = res_tx.clone();
                std::thread::Builder::new().spawn(move || {
                    let mut state = init();
                    loop {
                        let job = rx.lock().map(|rx| rx.recv());
                        let Ok(Ok((seq, job))) = job else {
                            return;
                        };
                        if tx.send((seq, work(&mut state, job))).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Pool {
            jobs: Some(job_tx),
            results: res_rx,
            workers,
        })
    }

    /// How many jobs may usefully be in flight.
    fn max_in_flight(&self) -> u64 {
        self.workers.len() as u64 + 2
    }

    fn submit(&self, seq: u64, job: J) -> std::io::Result<()> {
        self.jobs
            .as_ref()
            .expect("running")
            .send((seq, job))
            .map_err(|_| std::io::Error::other("gzip worker stopped"))
    }

    fn recv(&self) -> std::io::Result<(u64, R)> {
        self.results
            .recv()
            .map_err(|_| std::io::Error::other("gzip worker stopped"))
    }
}

impl<J, R> Drop for Pool<J, R> {
    fn drop(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// A writer of gzip members, compressed on worker threads and written to
/// `out` in order.
///
/// Invariant: members `written..next` are in flight or in `ready`; at most
/// `max_in_flight` of them, which bounds memory to about twice that many
/// chunks.
pub struct ParallelGzip<'w> {
    out: &'w mut dyn Write,
    pool: Pool<Vec<u8>, Vec<u8>>,
    ready: BTreeMap<u64, Vec<u8>>,
    next: u64,
    written: u64,
    /// Input gathered for the next member (less than a member's size).
    pending: Vec<u8>,
}

impl<'w> ParallelGzip<'w> {
    /// Starts a gzip stream into `out` with one worker per available core.
    /// Fails if the system cannot start a thread.
    pub fn new(out: &'w mut dyn Write) -> std::io::Result<Self> {
        Ok(ParallelGzip {
            out,
            pool: Pool::new(Compressors::new, |c, data: Vec<u8>| compress(c, &data))?,
            ready: BTreeMap::new(),
            next: 0,
            written: 0,
            pending: Vec::with_capacity(MEMBER),
        })
    }

    /// Queues `chunk` as the next member; writes finished members.
    pub fn write_chunk(&mut self, mut chunk: &[u8]) -> std::io::Result<()> {
        while !chunk.is_empty() {
            let take = (MEMBER - self.pending.len()).min(chunk.len());
            self.pending.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.pending.len() == MEMBER {
                self.submit_pending()?;
            }
        }
        Ok(())
    }

    /// Sends the gathered input off as the next member.
    fn submit_pending(&mut self) -> std::io::Result<()> {
        while self.next - self.written >= self.pool.max_in_flight() {
            self.wait_one()?;
        }
        let data = std::mem::replace(&mut self.pending, Vec::with_capacity(MEMBER));
        self.pool.submit(self.next, data)?;
        self.next += 1;
        Ok(())
    }

    /// Writes every remaining member; an empty stream becomes one empty
    /// member, so the file is still valid gzip.
    pub fn finish(mut self) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            self.submit_pending()?;
        }
        if self.next == 0 {
            let empty = compress(&mut Compressors::new(), &[]);
            self.out.write_all(&empty)?;
        }
        while self.written < self.next {
            self.wait_one()?;
        }
        Ok(())
    }

    /// Receives one finished member and writes all that are now in order.
    fn wait_one(&mut self) -> std::io::Result<()> {
        let (seq, data) = self.pool.recv()?;
        self.ready.insert(seq, data);
        while let Some(data) = self.ready.remove(&self.written) {
            self.out.write_all(&data)?;
            self.written += 1;
        }
        Ok(())
    }
}

/// A worker's compressors: at [`LEVEL`] and [`DENSE_LEVEL`] for the
/// members, at level 1 to judge them cheaply ([`super::huffman::sample`]).
struct Compressors {
    member: Compressor,
    dense: Compressor,
    probe: Compressor,
}

impl Compressors {
    fn new() -> Self {
        let level = |l| CompressionLvl::new(l).expect("within libdeflate's range");
        Compressors {
            member: Compressor::new(level(LEVEL)),
            dense: Compressor::new(level(DENSE_LEVEL)),
            probe: Compressor::new(level(1)),
        }
    }
}

/// One complete gzip member holding `data`, with its size in the header.
fn compress(c: &mut Compressors, data: &[u8]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(HEADER_LEN + c.member.deflate_compress_bound(data.len()) + TRAILER_LEN);
    out.extend_from_slice(&HEADER);
    out.extend_from_slice(&[0; 4]); // the member's size, known at the end
    deflate_into(c, data, &mut out);
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    let total = out.len() as u32;
    out[HEADER.len()..HEADER_LEN].copy_from_slice(&total.to_le_bytes());
    out
}

/// The raw deflate of a `-z` member exactly as [`ParallelGzip`]'s workers
/// code it (public for `benches/gzlevels.rs`, which sets it against every
/// single level).
#[derive(Default)]
pub struct MemberCoder(Option<Compressors>);

impl MemberCoder {
    /// Appends the raw deflate of `data` (one member's input) to `out`.
    pub fn deflate_into(&mut self, data: &[u8], out: &mut Vec<u8>) {
        deflate_into(self.0.get_or_insert_with(Compressors::new), data, out);
    }
}

/// Appends the raw deflate of `data` to `out`: Huffman coding alone where
/// LZ77 gains little, else libdeflate at the level its sample asks for
/// (see [`LEVEL`]).
fn deflate_into(c: &mut Compressors, data: &[u8], out: &mut Vec<u8>) {
    let sample = super::huffman::sample(&mut c.probe, data);
    if !sample.lz_pays() {
        super::huffman::encode_into(data, out);
        return;
    }
    let compressor = if sample.lz_ratio() < DENSE_RATIO {
        &mut c.dense
    } else {
        &mut c.member
    };
    let at = out.len();
    out.resize(at + compressor.deflate_compress_bound(data.len()), 0);
    let n = compressor
        .deflate_compress(data, &mut out[at..])
        .expect("the output buffer has the bound's size");
    out.truncate(at + n);
}

/// Largest compressed member (header and trailer included) handed to the
/// worker threads. Members we write hold at most [`MEMBER`] bytes and
/// compress to barely more than that; anything claiming more did not come
/// from us and is streamed instead, so no size read from a file decides
/// an allocation beyond this bound.
const MAX_MEMBER_TOTAL: usize = 2 * super::CHUNK;

/// Largest uncompressed member size (ISIZE) decompressed in one piece;
/// larger claims are streamed, as above. A whole [`CHUNK`](super::CHUNK),
/// not [`MEMBER`]: earlier versions wrote members of that size.
const MAX_MEMBER_ISIZE: usize = super::CHUNK;

/// What a worker makes of one member.
type Decoded = std::io::Result<Vec<u8>>;

/// The worker threads that decompress members with our size field, shared
/// by every [`GzipReader`] of one operation: a chain of thousands of
/// `.deltafsz` files uses one pool, not one per file.
///
/// Invariant: at most one reader uses the pool at a time (readers of a
/// chain are opened one after the other). Every member gets a number from
/// [`DecodePool::take_seq`], unique for the pool's life; a reader drops
/// results numbered before its first member, which a reader dropped early
/// (an error, a fallback to streaming) left in flight.
pub struct DecodePool {
    pool: Pool<(u64, Vec<u8>), Decoded>,
    seq: std::cell::Cell<u64>,
    /// The thread that inflates streamed files, started at the first.
    stream: std::cell::OnceCell<StreamThread>,
    /// The decompressor of small files without our size field, made at
    /// the first ([`super::gzip_whole`]).
    whole: std::cell::RefCell<Option<super::gzip_whole::Whole>>,
}

impl DecodePool {
    /// Starts one decompression worker per available core. Fails if the
    /// system cannot start a thread.
    pub fn new() -> std::io::Result<Self> {
        Ok(DecodePool {
            pool: Pool::new(Decompressor::new, |d, (offset, body): (u64, Vec<u8>)| {
                decompress_member(d, offset, &body)
            })?,
            seq: std::cell::Cell::new(0),
            stream: std::cell::OnceCell::new(),
            whole: std::cell::RefCell::new(None),
        })
    }

    /// The contents of `file` (all of a small gzip file, or all that
    /// follows our members in it) if libdeflate reads it whole as one
    /// member ([`super::gzip_whole`]); `None` means: stream it.
    fn inflate_whole(&self, file: &[u8]) -> Option<Vec<u8>> {
        let mut whole = self.whole.try_borrow_mut().ok()?;
        if whole.is_none() {
            *whole = super::gzip_whole::Whole::new();
        }
        whole.as_mut()?.inflate(file)
    }

    /// Inflates `decoder` on the pool's stream thread (started on first
    /// use; fails if it cannot be), ahead of the returned reader.
    fn stream(&self, decoder: Box<dyn std::io::Read + Send>) -> std::io::Result<Streamed> {
        let thread = match self.stream.get() {
            Some(t) => t,
            None => {
                let t = StreamThread::new()?;
                self.stream.get_or_init(|| t)
            }
        };
        thread.start(decoder)
    }

    fn take_seq(&self) -> u64 {
        let s = self.seq.get();
        self.seq.set(s + 1);
        s
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.pool.workers.len()
    }
}

/// Uncompressed bytes per chunk that the stream thread hands over.
const STREAM_CHUNK: usize = 256 * 1024;
/// The first chunk of a stream; each next one is twice as large, up to
/// [`STREAM_CHUNK`].
const STREAM_FIRST_CHUNK: usize = 16 * 1024;
/// Chunks inflated ahead of the reader (besides the one it holds and the
/// one being inflated): with [`STREAM_CHUNK`], 1.5 MiB per stream at most.
const STREAM_AHEAD: usize = 4;

/// What the stream thread sends: a chunk of at most [`STREAM_CHUNK`]
/// bytes, an empty one at the end, or the error that ended the stream.
type StreamMsg = std::io::Result<Vec<u8>>;

/// One stream for the stream thread: what to read and where to send it.
struct StreamJob {
    decoder: Box<dyn std::io::Read + Send>,
    chunks: SyncSender<StreamMsg>,
    /// Buffers the reader is done with, to be filled again.
    free: Receiver<Vec<u8>>,
}

/// A thread that inflates one stream at a time (a gzip file, or its rest,
/// without our size field: every file ZODB's repozo writes) ahead of its
/// reader, so that inflating overlaps with what the reader's thread does
/// with the bytes (write them for `-R`, hand them to the md5 thread).
///
/// One per [`DecodePool`], so a chain of thousands of small files starts
/// it once. Invariant: a job ends when its stream does (the end or an
/// error is sent) or when its reader is gone (a send fails), so the next
/// job waits at most one chunk's inflating; memory per job is bounded by
/// `STREAM_AHEAD + 2` chunks of [`STREAM_CHUNK`] bytes.
struct StreamThread {
    jobs: Option<Sender<StreamJob>>,
    worker: Option<JoinHandle<()>>,
}

impl StreamThread {
    fn new() -> std::io::Result<Self> {
        let (tx, rx) = channel::<StreamJob>();
        let worker = std::thread::Builder::new().spawn(move || {
            for job in rx {
                inflate_job(job);
            }
        })?;
        Ok(StreamThread {
            jobs: Some(tx),
            worker: Some(worker),
        })
    }

    fn start(&self, decoder: Box<dyn std::io::Read + Send>) -> std::io::Result<Streamed> {
        let (chunks_tx, chunks) = std::sync::mpsc::sync_channel(STREAM_AHEAD);
        let (free, free_rx) = std::sync::mpsc::sync_channel(STREAM_AHEAD + 2);
        self.jobs
            .as_ref()
            .expect("running")
            .send(StreamJob {
                decoder,
                chunks: chunks_tx,
                free: free_rx,
            })
            .map_err(|_| std::io::Error::other("gzip worker stopped"))?;
        Ok(Streamed {
            chunks,
            free,
            ended: None,
        })
    }
}

impl Drop for StreamThread {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// Runs one [`StreamJob`] on the stream thread: bytes come out in the
/// order and amounts the decoder gives them, the bytes read before an
/// error first, then the error.
fn inflate_job(job: StreamJob) {
    let StreamJob {
        mut decoder,
        chunks,
        free,
    } = job;
    // Chunks start small and double: a chain of thousands of small files
    // would otherwise zero a whole STREAM_CHUNK per file (measured: 85% of
    // the instructions of `-R` over a 2,000-file gzip chain).
    let mut want = STREAM_FIRST_CHUNK;
    loop {
        let mut buf = free.try_recv().unwrap_or_default();
        buf.resize(want, 0);
        let mut got = 0;
        let mut failed = None;
        while got < want {
            match decoder.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        buf.truncate(got);
        want = (want * 2).min(STREAM_CHUNK);
        let end = got == 0;
        if (got > 0 || failed.is_none()) && (chunks.send(Ok(buf)).is_err() || end) {
            return;
        }
        if let Some(e) = failed {
            let _ = chunks.send(Err(e));
            return;
        }
    }
}

/// The reader's end of a stream inflated by the [`StreamThread`].
struct Streamed {
    chunks: Receiver<StreamMsg>,
    free: SyncSender<Vec<u8>>,
    /// `Some(true)` once the end was received, `Some(false)` once an
    /// error was: nothing more will come.
    ended: Option<bool>,
}

impl Streamed {
    /// The next chunk (empty at the end), after giving `done` back for
    /// reuse. After an error, every call fails.
    fn next(&mut self, done: Vec<u8>) -> std::io::Result<Vec<u8>> {
        match self.ended {
            Some(true) => return Ok(Vec::new()),
            Some(false) => {
                return Err(std::io::Error::other("gzip stream already failed"));
            }
            None => {}
        }
        let _ = self.free.try_send(done);
        let msg = self
            .chunks
            .recv()
            .unwrap_or_else(|_| Err(std::io::Error::other("gzip worker stopped")));
        match &msg {
            Ok(c) if c.is_empty() => self.ended = Some(true),
            Ok(_) => {}
            Err(_) => self.ended = Some(false),
        }
        msg
    }
}

/// Reads the uncompressed contents of a gzip file (all members).
///
/// Members with our size field are decompressed by libdeflate on the
/// threads of a [`DecodePool`], in order; from the first member without it
/// (or one claiming more than this tool ever writes), the rest of the file
/// is streamed through zlib (flate2), or ISA-L with feature `isal`, on the
/// pool's stream thread with bounded memory; its bytes and errors reach
/// the reader in the order the decoder gives them. CRC-32 and ISIZE
/// of every member are checked; damage is an `InvalidData` error naming the
/// member's offset.
pub struct GzipReader {
    file: std::io::BufReader<Box<dyn std::io::Read + Send>>,
    /// Offset in the file of the next member to dispatch.
    offset: u64,
    pool: std::rc::Rc<DecodePool>,
    /// Results received but not yet served, by member number.
    ready: BTreeMap<u64, Decoded>,
    /// Number of this reader's first member: results below it are stale.
    first: u64,
    /// Members dispatched and not yet served, oldest first.
    in_flight: std::collections::VecDeque<u64>,
    current: Vec<u8>,
    current_pos: usize,
    /// Set once a member without our size field is met: its offset.
    fallback_at: Option<u64>,
    /// The bytes of the file from `fallback_at` that were read already
    /// (the member's header, perhaps its body): the stream starts with
    /// them, then continues with `file`.
    fallback_head: Vec<u8>,
    /// The stream from `fallback_at` on, once started: inflated by the
    /// pool's stream thread into chunks served through `current`.
    fallback: Option<Streamed>,
    at_eof: bool,
}

impl GzipReader {
    /// Opens `file` (positioned at its start) for decompression with a pool
    /// of its own.
    pub fn new(file: std::fs::File) -> std::io::Result<Self> {
        Ok(Self::with_pool(file, std::rc::Rc::new(DecodePool::new()?)))
    }

    /// Opens `file` (positioned at its start) for decompression on `pool`.
    pub fn with_pool(file: std::fs::File, pool: std::rc::Rc<DecodePool>) -> Self {
        Self::from_reader(Box::new(file), pool)
    }

    /// Decompresses the stream `input` (a file or an object store's
    /// response body, read from its start) on `pool`; it is read once,
    /// front to back, never sought.
    pub fn from_reader(
        input: Box<dyn std::io::Read + Send>,
        pool: std::rc::Rc<DecodePool>,
    ) -> Self {
        let first = pool.seq.get();
        GzipReader {
            file: std::io::BufReader::with_capacity(1 << 16, input),
            offset: 0,
            pool,
            ready: BTreeMap::new(),
            first,
            in_flight: std::collections::VecDeque::new(),
            current: Vec::new(),
            current_pos: 0,
            fallback_at: None,
            fallback_head: Vec::new(),
            fallback: None,
            at_eof: false,
        }
    }

    /// Reads the next member with our size field and queues it; returns
    /// false at end of file or at a member to be streamed instead.
    fn dispatch_one(&mut self) -> std::io::Result<bool> {
        use std::io::Read;
        if self.at_eof || self.fallback_at.is_some() {
            return Ok(false);
        }
        let mut head = [0u8; HEADER_LEN];
        let got = super::read_full(&mut self.file, &mut head)?;
        if got == 0 {
            self.at_eof = true;
            return Ok(false);
        }
        let mut size = [0u8; 4];
        size.copy_from_slice(&head[HEADER.len()..]);
        let total = u32::from_le_bytes(size) as usize;
        if got < HEADER_LEN || head[..HEADER.len()] != HEADER || total > MAX_MEMBER_TOTAL {
            // Not one of ours (or truncated, or larger than ours): stream
            // from here on.
            self.fallback_at = Some(self.offset);
            self.fallback_head = head[..got].to_vec();
            return Ok(false);
        }
        let Some(body_len) = total.checked_sub(HEADER_LEN).filter(|&n| n >= TRAILER_LEN) else {
            return Err(invalid(self.offset, "member size field too small"));
        };
        let mut member = vec![0u8; body_len];
        self.file
            .read_exact(&mut member)
            .map_err(|_| invalid(self.offset, "file ends inside a gzip member"))?;
        let mut isize = [0u8; 4];
        isize.copy_from_slice(&member[body_len - 4..]);
        if u32::from_le_bytes(isize) as usize > MAX_MEMBER_ISIZE {
            self.fallback_at = Some(self.offset);
            let mut consumed = head.to_vec();
            consumed.extend_from_slice(&member);
            self.fallback_head = consumed;
            return Ok(false);
        }
        let seq = self.pool.take_seq();
        self.pool.pool.submit(seq, (self.offset, member))?;
        self.in_flight.push_back(seq);
        self.offset += total as u64;
        Ok(true)
    }

    /// Makes `current` the next member's contents; false at the end of the
    /// members that can be read in parallel.
    fn next_member(&mut self) -> std::io::Result<bool> {
        while (self.in_flight.len() as u64) < self.pool.pool.max_in_flight()
            && self.dispatch_one()?
        {}
        let Some(&want) = self.in_flight.front() else {
            return Ok(false);
        };
        while !self.ready.contains_key(&want) {
            let (seq, r) = self.pool.pool.recv()?;
            if seq >= self.first {
                self.ready.insert(seq, r);
            }
        }
        self.in_flight.pop_front();
        let data = self
            .ready
            .remove(&want)
            .unwrap_or_else(|| Err(std::io::Error::other("gzip worker result lost")))?;
        self.current = data;
        self.current_pos = 0;
        Ok(true)
    }
}

impl std::io::Read for GzipReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.current_pos < self.current.len() {
                let n = buf.len().min(self.current.len() - self.current_pos);
                buf[..n].copy_from_slice(&self.current[self.current_pos..self.current_pos + n]);
                self.current_pos += n;
                return Ok(n);
            }
            if let Some(f) = self.fallback.as_mut() {
                self.current = f.next(std::mem::take(&mut self.current))?;
                self.current_pos = 0;
                if self.current.is_empty() {
                    return Ok(0);
                }
                continue;
            }
            if self.next_member()? {
                continue;
            }
            if self.fallback_at.is_none() {
                return Ok(0);
            }
            // The rest of the input, from the member that is not ours: the
            // bytes of it already read, then what follows them.
            let mut rest = std::mem::replace(
                &mut self.file,
                std::io::BufReader::new(Box::new(std::io::empty()) as Box<dyn std::io::Read + Send>),
            );
            // A small rest (a whole small file written by ZODB's repozo)
            // is read whole and, if libdeflate reads it as one member,
            // served from memory; else streamed from the same bytes.
            let mut head = std::mem::take(&mut self.fallback_head);
            let room = gzip_whole::MAX_INPUT.saturating_sub(head.len()) as u64 + 1;
            std::io::Read::take(&mut rest, room).read_to_end(&mut head)?;
            if head.len() <= gzip_whole::MAX_INPUT
                && let Some(out) = self.pool.inflate_whole(&head)
            {
                self.fallback_at = None;
                self.at_eof = true;
                self.current = out;
                self.current_pos = 0;
                continue;
            }
            let head = std::io::Cursor::new(head);
            self.fallback = Some(
                self.pool
                    .stream(stream_decoder(std::io::Read::chain(head, rest)))?,
            );
        }
    }
}

/// The decoder the stream thread runs over `input`: flate2's (zlib-rs),
/// or with feature `isal` ISA-L's (`isal_inflate`), which reads
/// alike. Public for `benches/inflate.rs`, which times it on one core.
pub fn stream_decoder(input: impl std::io::Read + Send + 'static) -> Box<dyn std::io::Read + Send> {
    #[cfg(feature = "isal")]
    {
        Box::new(super::isal_inflate::MultiGzDecoder::new(input))
    }
    #[cfg(not(feature = "isal"))]
    {
        Box::new(flate2::read::MultiGzDecoder::new(
            std::io::BufReader::with_capacity(super::CHUNK, input),
        ))
    }
}

fn invalid(offset: u64, what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("gzip member at byte {offset}: {what}"),
    )
}

/// Decompresses one member body (after our header; at least
/// [`TRAILER_LEN`] bytes, ISIZE at most [`MAX_MEMBER_ISIZE`], both checked
/// by the reader) and checks its trailer.
fn decompress_member(d: &mut Decompressor, offset: u64, body: &[u8]) -> Decoded {
    let Some(split) = body.len().checked_sub(TRAILER_LEN) else {
        return Err(invalid(offset, "member size field too small"));
    };
    let (deflated, trailer) = body.split_at(split);
    let mut word = [0u8; 4];
    word.copy_from_slice(&trailer[..4]);
    let crc = u32::from_le_bytes(word);
    word.copy_from_slice(&trailer[4..]);
    let isize = (u32::from_le_bytes(word) as usize).min(MAX_MEMBER_ISIZE);
    let mut out = vec![0u8; isize];
    let n = d
        .deflate_decompress(deflated, &mut out)
        .map_err(|e| invalid(offset, &format!("cannot be decompressed ({e:?})")))?;
    if n != isize {
        return Err(invalid(offset, "length does not match its trailer"));
    }
    if crc32(&out) != crc {
        return Err(invalid(offset, "CRC check failed"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn members_decompress_to_the_input_in_order() {
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 97) as u8).collect();
        let mut out = Vec::new();
        let mut gz = ParallelGzip::new(&mut out).unwrap();
        for c in data.chunks(1 << 20) {
            gz.write_chunk(c).unwrap();
        }
        gz.finish().unwrap();
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&out[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == data);
    }

    #[test]
    fn members_of_a_whole_chunk_written_by_earlier_builds_still_decode_on_the_pool() {
        let data: Vec<u8> = (0..(3 * crate::io::CHUNK as u32 + 77))
            .map(|i| (i % 251) as u8 ^ (i >> 13) as u8)
            .collect();
        let mut file = Vec::new();
        let mut c = Compressors::new();
        for m in data.chunks(crate::io::CHUNK) {
            file.extend_from_slice(&compress(&mut c, m));
        }
        let mut r = GzipReader::from_reader(
            Box::new(std::io::Cursor::new(file)),
            std::rc::Rc::new(DecodePool::new().unwrap()),
        );
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert!(back == data, "the contents differ");
        assert_eq!(r.fallback_at, None, "a 1 MiB member was streamed instead");
    }

    #[test]
    fn our_reader_reads_our_members_and_plain_gzip_alike() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("a.fsz");
        let mut out = Vec::new();
        let mut gz = ParallelGzip::new(&mut out).unwrap();
        for c in data.chunks(1 << 20) {
            gz.write_chunk(c).unwrap();
        }
        gz.finish().unwrap();
        std::fs::write(&ours, &out).unwrap();
        let plain = dir.path().join("b.fsz");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(9));
        e.write_all(&data).unwrap();
        std::fs::write(&plain, e.finish().unwrap()).unwrap();
        for p in [&ours, &plain] {
            let mut back = Vec::new();
            GzipReader::new(std::fs::File::open(p).unwrap())
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == data, "{}", p.display());
        }
        // Damage is detected, not passed on.
        let mut bad = out.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x40;
        std::fs::write(&ours, &bad).unwrap();
        let mut back = Vec::new();
        assert!(
            GzipReader::new(std::fs::File::open(&ours).unwrap())
                .unwrap()
                .read_to_end(&mut back)
                .is_err()
        );
        std::fs::write(&ours, &out[..out.len() - 5]).unwrap();
        assert!(
            GzipReader::new(std::fs::File::open(&ours).unwrap())
                .unwrap()
                .read_to_end(&mut Vec::new())
                .is_err()
        );
    }

    /// A gzip file as ZODB's repozo writes it: one zlib stream, level 9.
    fn zlib_gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(9));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Reads `r` to its end or first error: the bytes before, the error.
    fn read_all(r: &mut impl Read) -> (Vec<u8>, Option<std::io::Error>) {
        let mut back = Vec::new();
        let mut buf = vec![0u8; 100_000];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return (back, None),
                Ok(n) => back.extend_from_slice(&buf[..n]),
                Err(e) => return (back, Some(e)),
            }
        }
    }

    #[test]
    fn a_damaged_single_stream_gives_every_byte_before_the_damage_then_errors_on_every_read() {
        let data: Vec<u8> = (0..4_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut gz = zlib_gzip(&data);
        let at = gz.len() * 3 / 4;
        gz[at] ^= 0x55;
        let expected_error = read_all(&mut flate2::read::MultiGzDecoder::new(&gz[..]));
        let pool = std::rc::Rc::new(DecodePool::new().unwrap());
        let mut r = GzipReader::from_reader(Box::new(std::io::Cursor::new(gz)), pool);
        let (back, err) = read_all(&mut r);
        let (want, want_err) = expected_error;
        assert!(
            back == want,
            "{} bytes, zlib alone gives {}",
            back.len(),
            want.len()
        );
        let (err, want_err) = (err.unwrap(), want_err.unwrap());
        assert_eq!(err.to_string(), want_err.to_string());
        assert_eq!(err.kind(), want_err.kind());
        assert!(err.raw_os_error().is_none());
        assert!(r.read(&mut [0u8; 10]).is_err());
    }

    #[test]
    fn single_stream_files_read_one_after_another_share_one_stream_thread() {
        let pool = std::rc::Rc::new(DecodePool::new().unwrap());
        for i in 0..20u32 {
            let len = gzip_whole::MAX_OUTPUT as u32 + i * 50_000;
            let data: Vec<u8> = (0..len).map(|j| (j * (i + 1) % 253) as u8).collect();
            let gz = zlib_gzip(&data);
            let mut r = GzipReader::from_reader(Box::new(std::io::Cursor::new(gz)), pool.clone());
            let (back, err) = read_all(&mut r);
            assert!(err.is_none() && back == data, "file {i}");
        }
        assert!(pool.stream.get().is_some());
    }

    #[test]
    fn small_single_stream_files_are_inflated_whole_without_the_stream_thread() {
        let pool = std::rc::Rc::new(DecodePool::new().unwrap());
        for i in 0..200u32 {
            let data: Vec<u8> = (0..i * 5_000).map(|j| (j * i % 253) as u8).collect();
            let gz = zlib_gzip(&data);
            let mut r = GzipReader::from_reader(Box::new(std::io::Cursor::new(gz)), pool.clone());
            let (back, err) = read_all(&mut r);
            assert!(err.is_none() && back == data, "file {i}");
        }
        assert!(pool.stream.get().is_none(), "a small file was streamed");
    }

    #[test]
    fn a_small_file_that_is_damaged_or_of_two_members_reads_as_zlib_alone_reads_it() {
        let data: Vec<u8> = (0..60_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let one = zlib_gzip(&data);
        let mut two = one.clone();
        two.extend_from_slice(&zlib_gzip(b"and a second member"));
        let mut cases = vec![two, one[..one.len() - 3].to_vec()];
        for at in [12, one.len() / 2, one.len() - 6, one.len() - 2] {
            let mut bad = one.clone();
            bad[at] ^= 0x55;
            cases.push(bad);
        }
        let pool = std::rc::Rc::new(DecodePool::new().unwrap());
        for (i, gz) in cases.into_iter().enumerate() {
            let (want, want_err) = read_all(&mut flate2::read::MultiGzDecoder::new(&gz[..]));
            let mut r = GzipReader::from_reader(Box::new(std::io::Cursor::new(gz)), pool.clone());
            let (back, err) = read_all(&mut r);
            assert!(
                back == want,
                "case {i}: {} bytes, zlib alone gives {}",
                back.len(),
                want.len()
            );
            assert_eq!(
                err.map(|e| (e.kind(), e.to_string())),
                want_err.map(|e| (e.kind(), e.to_string())),
                "case {i}"
            );
        }
    }

    #[test]
    fn a_reader_dropped_halfway_through_a_stream_leaves_the_next_file_intact() {
        let pool = std::rc::Rc::new(DecodePool::new().unwrap());
        let big: Vec<u8> = (0..8_000_000u32).map(|i| (i % 241) as u8).collect();
        let mut r = GzipReader::from_reader(
            Box::new(std::io::Cursor::new(zlib_gzip(&big))),
            pool.clone(),
        );
        let mut first = vec![0u8; 1000];
        r.read_exact(&mut first).unwrap();
        assert!(first[..] == big[..1000]);
        drop(r);
        let small = b"the next file".to_vec();
        let mut r =
            GzipReader::from_reader(Box::new(std::io::Cursor::new(zlib_gzip(&small))), pool);
        assert_eq!(read_all(&mut r).0, small);
    }

    #[test]
    fn an_empty_stream_is_still_a_gzip_file() {
        let mut out = Vec::new();
        ParallelGzip::new(&mut out).unwrap().finish().unwrap();
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&out[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }
}
