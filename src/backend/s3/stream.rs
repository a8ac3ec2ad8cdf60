//! Streaming an S3 object down (one GET read as it arrives) and up (a
//! create-only PUT, or a multipart upload with bounded parts in flight).

use super::*;

/// [`Backend::open`] on S3: the body of one GET, read as it arrives.
pub(super) struct S3Reader {
    pub(super) rt: Arc<Runtime>,
    pub(super) stream: BoxStream<'static, object_store::Result<Bytes>>,
    pub(super) current: Bytes,
    pub(super) url: String,
}

impl Read for S3Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rt.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => {
                    return Err(io::Error::other(format!(
                        "{}: GET failed: {}",
                        self.url,
                        condense(&e)
                    )));
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// [`Backend::create`] on S3: the first [`PART`] bytes are buffered; a
/// file that fits is one create-only PUT at commit, a larger one becomes a
/// multipart upload with at most [`PARTS_IN_FLIGHT`] parts in flight,
/// completed at commit and aborted if dropped uncommitted.
pub(super) struct S3Upload {
    pub(super) rt: Arc<Runtime>,
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) path: Path,
    pub(super) url: String,
    pub(super) lease: Weak<Lease>,
    pub(super) buffer: Vec<u8>,
    pub(super) multipart: Option<WriteMultipart>,
    pub(super) written: u64,
    pub(super) failed: Option<String>,
}

impl S3Upload {
    pub(super) fn remote(&self, message: String) -> Error {
        Error::Remote {
            url: self.url.clone(),
            message,
        }
    }

    pub(super) fn push(&mut self, buf: &[u8]) -> std::result::Result<(), String> {
        if let Some(m) = &mut self.multipart {
            self.rt
                .block_on(m.wait_for_capacity(PARTS_IN_FLIGHT - 1))
                .map_err(|e| format!("uploading a part failed: {}", condense(&e)))?;
            let _in_runtime = self.rt.enter();
            m.write(buf);
            return Ok(());
        }
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= PART {
            let upload = self
                .rt
                .block_on(self.store.put_multipart(&self.path))
                .map_err(|e| format!("starting the multipart upload failed: {}", condense(&e)))?;
            let mut m = WriteMultipart::new_with_chunk_size(upload, PART);
            let _in_runtime = self.rt.enter();
            m.put(Bytes::from(std::mem::take(&mut self.buffer)));
            self.multipart = Some(m);
        }
        Ok(())
    }
}

impl Write for S3Upload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(why) = &self.failed {
            return Err(io::Error::other(format!("{}: {why}", self.url)));
        }
        // At most one part at a time, so the parts in flight stay bounded.
        let n = buf.len().min(PART);
        if let Err(why) = self.push(&buf[..n]) {
            self.failed = Some(why.clone());
            return Err(io::Error::other(format!("{}: {why}", self.url)));
        }
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Upload for S3Upload {
    fn commit(mut self: Box<Self>) -> Result<u64> {
        if let Some(why) = self.failed.take() {
            return Err(self.remote(why));
        }
        crate::interrupt::check()?;
        if let Some(lease) = self.lease.upgrade() {
            lease.check()?;
        }
        match self.multipart.take() {
            Some(m) => {
                self.rt.block_on(m.finish()).map_err(|e| {
                    self.remote(format!(
                        "completing the multipart upload failed: {}",
                        condense(&e)
                    ))
                })?;
            }
            None => {
                let data = Bytes::from(std::mem::take(&mut self.buffer));
                let opts = PutOptions::from(PutMode::Create);
                match self
                    .rt
                    .block_on(self.store.put_opts(&self.path, data.into(), opts))
                {
                    Ok(_) => {}
                    Err(object_store::Error::AlreadyExists { .. })
                    | Err(object_store::Error::Precondition { .. }) => {
                        return Err(Error::WouldOverwrite(self.url.clone()));
                    }
                    Err(e) => {
                        return Err(
                            self.remote(format!("create-only PUT failed: {}", condense(&e)))
                        );
                    }
                }
            }
        }
        Ok(self.written)
    }
}

impl Drop for S3Upload {
    fn drop(&mut self) {
        if let Some(m) = self.multipart.take() {
            let _ = self.rt.block_on(m.abort());
        }
    }
}
