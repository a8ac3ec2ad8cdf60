//! gzip as repozo's files need it: written as independent members
//! compressed in parallel, read back as one stream.
//!
//! A `.fsz`/`.deltafsz` is a standard gzip file; Python's `gzip` module (and
//! so ZODB's repozo), `gunzip` and zlib all read a file of several members
//! as the concatenation of their contents. Cutting the input into
//! [`CHUNK`]-sized members costs a few bytes per MiB and lets every core
//! compress. Compression uses libdeflate, which at its low levels is both
//! faster and tighter than zlib at level 9 on Data.fs pickles.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use libdeflater::{CompressionLvl, Compressor};

/// libdeflate level used for `-z` (1–12). See the README's benchmark for
/// speed and size against repozo's zlib level 9.
pub const LEVEL: i32 = 3;

type Job = (u64, Vec<u8>);

/// A writer of gzip members, compressed on worker threads and written to
/// `out` in order.
///
/// Invariant: members `written..next` are in flight or in `ready`; at most
/// `max_in_flight` of them, which bounds memory to about twice that many
/// chunks.
pub struct ParallelGzip<'w> {
    out: &'w mut dyn Write,
    jobs: Option<Sender<Job>>,
    results: Receiver<(u64, Vec<u8>)>,
    workers: Vec<JoinHandle<()>>,
    ready: BTreeMap<u64, Vec<u8>>,
    next: u64,
    written: u64,
    max_in_flight: u64,
}

impl<'w> ParallelGzip<'w> {
    /// Starts a gzip stream into `out` with one worker per available core.
    pub fn new(out: &'w mut dyn Write) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (job_tx, job_rx) = channel::<Job>();
        let (res_tx, res_rx) = channel();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let workers = (0..threads)
            .map(|_| {
                let rx = Arc::clone(&job_rx);
                let tx = res_tx.clone();
                std::thread::spawn(move || compress_worker(&rx, &tx))
            })
            .collect();
        ParallelGzip {
            out,
            jobs: Some(job_tx),
            results: res_rx,
            workers,
            ready: BTreeMap::new(),
            next: 0,
            written: 0,
            max_in_flight: threads as u64 + 2,
        }
    }

    /// Queues `chunk` as the next member; writes finished members.
    pub fn write_chunk(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        while self.next - self.written >= self.max_in_flight {
            self.wait_one()?;
        }
        let jobs = self.jobs.as_ref().expect("not finished");
        jobs.send((self.next, chunk.to_vec()))
            .map_err(|_| std::io::Error::other("gzip worker stopped"))?;
        self.next += 1;
        Ok(())
    }

    /// Writes every remaining member; an empty stream becomes one empty
    /// member, so the file is still valid gzip.
    pub fn finish(mut self) -> std::io::Result<()> {
        if self.next == 0 {
            let empty = compress(&mut Compressor::new(level()), &[]);
            self.out.write_all(&empty)?;
        }
        while self.written < self.next {
            self.wait_one()?;
        }
        self.shutdown();
        Ok(())
    }

    /// Receives one finished member and writes all that are now in order.
    fn wait_one(&mut self) -> std::io::Result<()> {
        let (seq, data) = self
            .results
            .recv()
            .map_err(|_| std::io::Error::other("gzip worker stopped"))?;
        self.ready.insert(seq, data);
        while let Some(data) = self.ready.remove(&self.written) {
            self.out.write_all(&data)?;
            self.written += 1;
        }
        Ok(())
    }

    fn shutdown(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for ParallelGzip<'_> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn level() -> CompressionLvl {
    CompressionLvl::new(LEVEL).expect("LEVEL is within libdeflate's range")
}

fn compress(c: &mut Compressor, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; c.gzip_compress_bound(data.len())];
    let n = c
        .gzip_compress(data, &mut out)
        .expect("the output buffer has the bound's size");
    out.truncate(n);
    out
}

fn compress_worker(jobs: &Mutex<Receiver<Job>>, results: &Sender<(u64, Vec<u8>)>) {
    let mut c = Compressor::new(level());
    loop {
        let job = jobs.lock().map(|rx| rx.recv());
        let Ok(Ok((seq, data))) = job else {
            return;
        };
        if results.send((seq, compress(&mut c, &data))).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn members_decompress_to_the_input_in_order() {
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 97) as u8).collect();
        let mut out = Vec::new();
        let mut gz = ParallelGzip::new(&mut out);
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
    fn an_empty_stream_is_still_a_gzip_file() {
        let mut out = Vec::new();
        ParallelGzip::new(&mut out).finish().unwrap();
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&out[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }
}
