//! A repository under a prefix of an S3 bucket (`s3://BUCKET/PREFIX`),
//! through `object_store`'s S3 client on a small tokio runtime owned by
//! the backend; every call blocks until its requests are done.
//!
//! * Endpoint, region and credentials come from the `AWS_*` environment
//!   variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`).
//! * Small objects are created with `If-None-Match: *`; data files go up
//!   as multipart uploads of [`PART`] bytes, at most [`PARTS_IN_FLIGHT`]
//!   at once (a file smaller than one part as a single create-only PUT);
//!   the `.dat` is rewritten with `If-Match: <ETag>`.
//! * The lock is the object `<prefix>/lock`, a JSON lease (see
//!   [`S3::lock`](super::Backend::lock)).
//! * Before the first write or lock, a probe checks that the server
//!   honours those conditions ([`super::Backend::probe`]).
//!
//! Still one file of about 980 lines: the lock lease (owner, renewal,
//! takeover) and the reader and multipart upload are natural seams to
//! split along, not yet done.

use std::io::{self, Read, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    UpdateVersion, WriteMultipart,
};
use tokio::runtime::Runtime;

use super::{Backend, Entry, Held, Put, Upload, Version};
use crate::clock::Stamp;
use crate::error::{Error, Result};

/// Size of one part of a multipart upload (S3 wants at least 5 MiB).
pub const PART: usize = 8 << 20;

/// How many parts of one upload are sent at once; with [`PART`] this
/// bounds an upload's memory to about 40 MiB.
pub const PARTS_IN_FLIGHT: usize = 4;

/// How long a lock lease lasts unless renewed (every third of it).
pub const LEASE: Duration = Duration::from_secs(600);

/// How far apart two machines' clocks may be: a lock is taken over only
/// this long after its lease ran out.
pub const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// The name of the lock object under the prefix.
pub const LOCK_NAME: &str = "lock";

/// An S3 repository.
pub struct S3 {
    store: Arc<dyn ObjectStore>,
    rt: Arc<Runtime>,
    bucket: String,
    prefix: String,
    lease: Duration,
    probed: Mutex<bool>,
    /// The lease of the lock this backend took, while it is held.
    held: Mutex<Weak<Lease>>,
}

impl std::fmt::Debug for S3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl S3 {
    /// The repository `s3://bucket/prefix`, configured from the `AWS_*`
    /// environment variables and then from `config`: pairs of
    /// `object_store` S3 configuration keys (`aws_endpoint_url`,
    /// `aws_access_key_id`, `aws_allow_http`, …) and values. Nothing is
    /// contacted yet.
    pub fn from_url(url: &str, config: &[(&str, &str)]) -> Result<S3> {
        let (bucket, prefix) = super::parse_s3_url(url)?;
        let remote = |message: String| Error::Remote {
            url: url.to_string(),
            message,
        };
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&bucket);
        for (k, v) in config {
            let key: AmazonS3ConfigKey = k
                .parse()
                .map_err(|e| remote(format!("bad S3 setting {k}: {e}")))?;
            builder = builder.with_config(key, *v);
        }
        let store = builder
            .build()
            .map_err(|e| remote(format!("cannot set up the S3 client: {e}")))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("repozo-s3")
            .enable_all()
            .build()
            .map_err(Error::Thread)?;
        Ok(S3 {
            store: Arc::new(store),
            rt: Arc::new(rt),
            bucket,
            prefix,
            lease: LEASE,
            probed: Mutex::new(false),
            held: Mutex::new(Weak::new()),
        })
    }

    /// Uses `lease` instead of [`LEASE`] for the locks this backend takes
    /// (renewed every third of it); for tests and very slow links.
    pub fn with_lease(mut self, lease: Duration) -> S3 {
        self.lease = lease;
        self
    }

    /// The object key of `name`.
    fn key(&self, name: &str) -> Result<Path> {
        let full = if self.prefix.is_empty() {
            name.to_string()
        } else if name.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}/{name}", self.prefix)
        };
        Path::parse(&full).map_err(|e| Error::Remote {
            url: self.url(name),
            message: format!("not a usable object name: {e}"),
        })
    }

    /// `name` relative to the prefix, from an object's key.
    fn name_of(&self, key: &Path) -> String {
        let k = key.as_ref();
        if self.prefix.is_empty() {
            k.to_string()
        } else {
            k.strip_prefix(&self.prefix)
                .and_then(|r| r.strip_prefix('/'))
                .unwrap_or(k)
                .to_string()
        }
    }

    /// An error of request `what` on `name`, with the server's message.
    fn fail(&self, name: &str, what: &str, e: object_store::Error) -> Error {
        Error::Remote {
            url: self.url(name),
            message: format!("{what} failed: {}", condense(&e)),
        }
    }

    fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Fails if a lock this backend took has been lost.
    fn check_lease(&self) -> Result<()> {
        match self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .upgrade()
        {
            Some(lease) => lease.check(),
            None => Ok(()),
        }
    }

    fn ensure_probed(&self) -> Result<()> {
        let mut probed = self.probed.lock().unwrap_or_else(|e| e.into_inner());
        if !*probed {
            self.run_probe()?;
            *probed = true;
        }
        Ok(())
    }

    /// A create-only PUT, without the probe: the new object's version, or
    /// `None` if an object of that name exists.
    fn create_only(&self, name: &str, data: Bytes) -> Result<Option<Version>> {
        let path = self.key(name)?;
        let opts = PutOptions::from(PutMode::Create);
        match self.block(self.store.put_opts(&path, PutPayload::from(data), opts)) {
            Ok(r) => Ok(Some(Version {
                tag: r.e_tag.unwrap_or_default(),
                extra: r.version,
            })),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(None),
            Err(e) => Err(self.fail(name, "create-only PUT (If-None-Match: *)", e)),
        }
    }

    /// A compare-and-swap PUT, without the probe or the lease check.
    fn swap(&self, name: &str, data: Bytes, expected: &Version) -> Result<Version> {
        let path = self.key(name)?;
        let mode = PutMode::Update(UpdateVersion {
            e_tag: Some(expected.tag.clone()),
            version: expected.extra.clone(),
        });
        match self.block(
            self.store
                .put_opts(&path, PutPayload::from(data), mode.into()),
        ) {
            Ok(r) => Ok(Version {
                tag: r.e_tag.unwrap_or_default(),
                extra: r.version,
            }),
            Err(object_store::Error::Precondition { .. })
            | Err(object_store::Error::NotFound { .. })
            | Err(object_store::Error::AlreadyExists { .. }) => Err(Error::Changed(self.url(name))),
            Err(e) => Err(self.fail(name, "compare-and-swap PUT (If-Match)", e)),
        }
    }

    /// GET of a whole small object with its version; `None` if absent.
    fn get_versioned(&self, name: &str) -> Result<Option<(Bytes, Version, u64)>> {
        let path = self.key(name)?;
        let got = match self.block(self.store.get(&path)) {
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            r => r.map_err(|e| self.fail(name, "GET", e))?,
        };
        let meta = got.meta.clone();
        let data = self
            .block(got.bytes())
            .map_err(|e| self.fail(name, "GET", e))?;
        let Some(tag) = meta.e_tag else {
            return Err(Error::Remote {
                url: self.url(name),
                message: "GET answered without an ETag, which compare-and-swap needs".into(),
            });
        };
        let modified = meta.last_modified.timestamp().max(0) as u64;
        Ok(Some((
            data,
            Version {
                tag,
                extra: meta.version,
            },
            modified,
        )))
    }

    fn run_probe(&self) -> Result<()> {
        let name = format!(".probe-{}", super::uuid());
        let refuse = |why: String| {
            let _ = self.block(self.store.delete(&self.key(&name)?));
            Err(Error::NoConditionalWrites {
                url: self.describe(),
                why,
            })
        };
        let data = Bytes::from_static(b"repozo probe of conditional writes\n");
        match self.create_only(&name, data.clone())? {
            Some(_) => {}
            None => {
                return refuse(format!(
                    "a create-only PUT of the new key {} failed as if it existed",
                    self.url(&name)
                ));
            }
        }
        match self.create_only(&name, data.clone()) {
            Ok(None) => {}
            Ok(Some(_)) => {
                return refuse(format!(
                    "a second PUT of {} with If-None-Match: * replaced the object instead of \
                     failing with 412 Precondition Failed",
                    self.url(&name)
                ));
            }
            Err(e) => return refuse(format!("a PUT with If-None-Match: * was refused: {e}")),
        }
        let stale = Version {
            tag: "\"00000000000000000000000000000000\"".into(),
            extra: None,
        };
        match self.swap(&name, data, &stale) {
            Err(Error::Changed(_)) => {}
            Ok(_) => {
                return refuse(format!(
                    "a PUT of {} with a stale If-Match ETag replaced the object instead of \
                     failing with 412 Precondition Failed",
                    self.url(&name)
                ));
            }
            Err(e) => return refuse(format!("a PUT with If-Match was refused: {e}")),
        }
        self.delete(&name).map(drop)
    }
}

/// The lock object as `me` writes it.
fn lock_body(me: &Owner, created: u64, expires: u64) -> Bytes {
    let v = serde_json::json!({
        "owner": me.id,
        "host": me.host,
        "pid": me.pid,
        "user": me.user,
        "created": created,
        "expires": expires,
        "tool": concat!("repozo ", env!("CARGO_PKG_VERSION")),
    });
    Bytes::from(format!("{v}\n"))
}

/// The client's message for `e`, with an S3 XML error body reduced to its
/// code and message (`NoSuchBucket: The specified bucket does not exist`).
fn condense(e: &object_store::Error) -> String {
    let text = e.to_string();
    let Some(at) = text.find("<?xml").or_else(|| text.find("<Error>")) else {
        return text;
    };
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let from = text[at..].find(&open)? + at + open.len();
        let to = text[from..].find("</")? + from;
        Some(text[from..to].to_string())
    };
    let head = text[..at].trim_end().trim_end_matches(':');
    match (tag("Code"), tag("Message")) {
        (Some(code), Some(msg)) => format!("{head}: {code}: {msg}"),
        (Some(code), None) => format!("{head}: {code}"),
        _ => text,
    }
}

/// Seconds since the Unix epoch, now.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Who takes a lock: this process.
#[derive(Debug, Clone)]
struct Owner {
    id: String,
    host: String,
    pid: u32,
    user: String,
}

impl Owner {
    fn me() -> Owner {
        Owner {
            id: super::uuid(),
            host: hostname(),
            pid: std::process::id(),
            user: std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                // SAFETY: getuid has no preconditions.
                .unwrap_or_else(|_| format!("uid {}", unsafe { libc::getuid() })),
        }
    }
}

/// This machine's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; the name is NUL-terminated
    // when it fits, and the last byte stays 0 in any case.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if r != 0 {
        return "unknown-host".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Whether process `pid` exists on this host.
fn pid_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A lock object as read back.
#[derive(Debug)]
struct Found {
    version: Version,
    /// The parsed JSON; `None` if it is not ours or damaged.
    info: Option<serde_json::Value>,
    modified: u64,
}

impl Found {
    fn expires(&self, lease: Duration) -> u64 {
        self.info
            .as_ref()
            .and_then(|v| v["expires"].as_u64())
            .unwrap_or(self.modified + lease.as_secs())
    }

    /// Whether its owner is a process of this host that no longer exists.
    fn owner_dead_here(&self, host: &str) -> bool {
        let Some(v) = &self.info else { return false };
        let (Some(h), Some(pid)) = (v["host"].as_str(), v["pid"].as_u64()) else {
            return false;
        };
        h == host && pid != u64::from(std::process::id()) && !pid_alive(pid as u32)
    }

    fn describe(&self, lease: Duration) -> String {
        let Some(v) = &self.info else {
            return format!(
                "an unreadable lock object written at {} UTC",
                Stamp::from_unix(self.modified)
            );
        };
        let s = |k: &str| v[k].as_str().unwrap_or("?").to_string();
        let t = |k: &str| {
            v[k].as_u64()
                .map(|t| format!("{} UTC", Stamp::from_unix(t)))
                .unwrap_or_else(|| "?".into())
        };
        format!(
            "{}@{} (pid {}, lock {}) since {}, lease until {} UTC",
            s("user"),
            s("host"),
            v["pid"].as_u64().map_or("?".into(), |p| p.to_string()),
            s("owner"),
            t("created"),
            Stamp::from_unix(self.expires(lease)),
        )
    }
}

/// The state of a lock held by this process, shared with the thread that
/// renews it.
#[derive(Debug)]
struct Lease {
    repo: String,
    state: Mutex<LeaseState>,
}

#[derive(Debug)]
struct LeaseState {
    version: Version,
    expires: u64,
    lost: Option<String>,
}

impl Lease {
    fn check(&self) -> Result<()> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let why = match &st.lost {
            Some(why) => why.clone(),
            None if now() >= st.expires => {
                "its lease ran out before it could be renewed".to_string()
            }
            None => return Ok(()),
        };
        Err(Error::LockLost {
            repo: self.repo.clone(),
            why,
        })
    }

    fn lose(&self, why: String) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.lost.get_or_insert(why);
    }
}

/// A lock held on an S3 repository: renewed by a thread until dropped,
/// then deleted if it is still ours.
pub struct S3Held {
    lease: Arc<Lease>,
    stop: Option<mpsc::Sender<()>>,
    renewer: Option<std::thread::JoinHandle<()>>,
    store: Arc<dyn ObjectStore>,
    rt: Arc<Runtime>,
    path: Path,
    owner: String,
}

impl std::fmt::Debug for S3Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Held({}, {})", self.lease.repo, self.owner)
    }
}

impl Held for S3Held {
    fn check(&self) -> Result<()> {
        self.lease.check()
    }
}

impl Drop for S3Held {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.renewer.take() {
            let _ = t.join();
        }
        // No conditional DELETE in S3: read, check the owner, delete (a lock
        // taken over is another owner's, and stays). A takeover between the
        // read and the delete is possible only after our lease ran out.
        let rt = &self.rt;
        let Ok(got) = rt.block_on(self.store.get(&self.path)) else {
            return;
        };
        let Ok(data) = rt.block_on(got.bytes()) else {
            return;
        };
        let ours = serde_json::from_slice::<serde_json::Value>(&data)
            .is_ok_and(|v| v["owner"].as_str() == Some(&self.owner));
        if ours {
            let _ = rt.block_on(self.store.delete(&self.path));
        }
    }
}

impl Backend for S3 {
    fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.describe())
    }

    fn list(&self, prefix: &str, recursive: bool) -> Result<Vec<Entry>> {
        let dir = prefix.trim_end_matches('/');
        let at = if dir.is_empty() && self.prefix.is_empty() {
            None
        } else {
            Some(self.key(dir)?)
        };
        let metas = if recursive {
            self.block(self.store.list(at.as_ref()).try_collect::<Vec<_>>())
        } else {
            self.block(self.store.list_with_delimiter(at.as_ref()))
                .map(|r| r.objects)
        }
        .map_err(|e| self.fail(prefix, "LIST", e))?;
        let mut out: Vec<Entry> = metas
            .into_iter()
            .map(|m| Entry {
                name: self.name_of(&m.location),
                size: m.size,
            })
            .collect();
        out.sort();
        Ok(out)
    }

    fn size(&self, name: &str) -> Result<Option<u64>> {
        let path = self.key(name)?;
        match self.block(self.store.head(&path)) {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.fail(name, "HEAD", e)),
        }
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>> {
        let path = self.key(name)?;
        let got = self
            .block(self.store.get(&path))
            .map_err(|e| self.fail(name, "GET", e))?;
        Ok(Box::new(S3Reader {
            rt: self.rt.clone(),
            stream: got.into_stream(),
            current: Bytes::new(),
            url: self.url(name),
        }))
    }

    fn open_optional(&self, name: &str) -> Result<Option<Box<dyn Read + Send>>> {
        let path = self.key(name)?;
        let got = match self.block(self.store.get(&path)) {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.fail(name, "GET", e)),
        };
        Ok(Some(Box::new(S3Reader {
            rt: self.rt.clone(),
            stream: got.into_stream(),
            current: Bytes::new(),
            url: self.url(name),
        })))
    }

    fn read_range(&self, name: &str, start: u64, len: u64) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let path = self.key(name)?;
        let opts = GetOptions {
            range: Some(GetRange::Bounded(start..start.saturating_add(len))),
            ..Default::default()
        };
        let got = match self.block(self.store.get_opts(&path, opts)) {
            Ok(g) => g,
            // 416: the range starts at or past the end.
            Err(e) if e.to_string().contains("416 Range Not Satisfiable") => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(self.fail(name, "ranged GET", e)),
        };
        let data = self
            .block(got.bytes())
            .map_err(|e| self.fail(name, "ranged GET", e))?;
        Ok(data.to_vec())
    }

    fn put_if_absent(&self, name: &str, data: &[u8]) -> Result<Put> {
        self.ensure_probed()?;
        Ok(
            match self.create_only(name, Bytes::copy_from_slice(data))? {
                Some(_) => Put::Created,
                None => Put::AlreadyExists,
            },
        )
    }

    fn create(&self, name: &str) -> Result<Box<dyn Upload>> {
        self.ensure_probed()?;
        self.check_lease()?;
        if self.size(name)?.is_some() {
            return Err(Error::WouldOverwrite(self.url(name)));
        }
        Ok(Box::new(S3Upload {
            rt: self.rt.clone(),
            store: self.store.clone(),
            path: self.key(name)?,
            url: self.url(name),
            lease: self.held.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            buffer: Vec::new(),
            multipart: None,
            written: 0,
            failed: None,
        }))
    }

    fn read_versioned(&self, name: &str) -> Result<Option<(Vec<u8>, Version)>> {
        Ok(self
            .get_versioned(name)?
            .map(|(data, version, _)| (data.to_vec(), version)))
    }

    fn replace(&self, name: &str, data: &[u8], expected: &Version) -> Result<Version> {
        self.ensure_probed()?;
        self.check_lease()?;
        self.swap(name, Bytes::copy_from_slice(data), expected)
    }

    /// S3's DELETE does not say whether the object was there: `true`.
    fn delete(&self, name: &str) -> Result<bool> {
        let path = self.key(name)?;
        match self.block(self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
            Err(e) => Err(self.fail(name, "DELETE", e)),
        }
    }

    /// Takes the lock object `<prefix>/lock`: a JSON lease (owner uuid,
    /// host, pid, user, created, expires) created with `If-None-Match: *`
    /// and renewed every third of the lease with `If-Match`. A lock
    /// found is taken over (by `If-Match` on what was read, so one
    /// contender wins) when its lease ran out more than [`CLOCK_SKEW`] ago,
    /// or at once when its owner is a process of this host that is gone.
    fn lock(&self, wait: Duration) -> Result<Box<dyn Held>> {
        self.ensure_probed()?;
        let me = Owner::me();
        let start = Instant::now();
        let lease_s = self.lease.as_secs().max(1);
        loop {
            crate::interrupt::check()?;
            let created = now();
            let body = lock_body(&me, created, created + lease_s);
            let taken = match self.create_only(LOCK_NAME, body.clone())? {
                Some(version) => Some(version),
                None => match self.get_versioned(LOCK_NAME)? {
                    None => continue, // released meanwhile
                    Some((data, version, modified)) => {
                        let found = Found {
                            version,
                            info: serde_json::from_slice(&data).ok(),
                            modified,
                        };
                        let expired = now()
                            > found
                                .expires(self.lease)
                                .saturating_add(CLOCK_SKEW.as_secs());
                        if expired || found.owner_dead_here(&me.host) {
                            match self.swap(LOCK_NAME, body.clone(), &found.version) {
                                Ok(v) => Some(v),
                                Err(Error::Changed(_)) => None, // another contender won
                                Err(e) => return Err(e),
                            }
                        } else {
                            if start.elapsed() >= wait {
                                return Err(Error::LockedBy {
                                    repo: self.describe(),
                                    owner: found.describe(self.lease),
                                    waited: wait.as_secs(),
                                });
                            }
                            let left = wait.saturating_sub(start.elapsed());
                            std::thread::sleep(left.min(Duration::from_millis(250)));
                            None
                        }
                    }
                },
            };
            if let Some(version) = taken {
                return Ok(Box::new(self.hold(me, created, version)));
            }
        }
    }

    fn probe(&self) -> Result<()> {
        self.ensure_probed()
    }
}

impl S3 {
    /// Starts renewing the lock just taken.
    fn hold(&self, me: Owner, created: u64, version: Version) -> S3Held {
        let lease_s = self.lease.as_secs().max(1);
        let lease = Arc::new(Lease {
            repo: self.describe(),
            state: Mutex::new(LeaseState {
                version,
                expires: created + lease_s,
                lost: None,
            }),
        });
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(&lease);
        let (stop, stopped) = mpsc::channel::<()>();
        let renewer = {
            let lease = lease.clone();
            let store = self.store.clone();
            let rt = self.rt.clone();
            let path = self.key(LOCK_NAME).expect("the lock's key is valid");
            let body_of = {
                let me = me.clone();
                move |expires: u64| lock_body(&me, created, expires)
            };
            let every = self.lease / 3;
            std::thread::Builder::new()
                .name("repozo-lease".into())
                .spawn(move || {
                    renew(
                        &lease, &*store, &rt, &path, every, lease_s, &stopped, body_of,
                    )
                })
                .map_err(Error::Thread)
        };
        let renewer = match renewer {
            Ok(t) => Some(t),
            Err(e) => {
                lease.lose(format!("the thread renewing it could not start: {e}"));
                None
            }
        };
        S3Held {
            lease,
            stop: Some(stop),
            renewer,
            store: self.store.clone(),
            rt: self.rt.clone(),
            path: self.key(LOCK_NAME).expect("the lock's key is valid"),
            owner: me.id,
        }
    }
}

/// The renewing thread: every `every`, rewrites the lock with a later
/// `expires`, by compare-and-swap on its last version. A failed swap means
/// another process took the lock: it is lost for good. Other errors are
/// retried until the lease runs out.
#[allow(clippy::too_many_arguments)]
fn renew(
    lease: &Lease,
    store: &dyn ObjectStore,
    rt: &Runtime,
    path: &Path,
    every: Duration,
    lease_s: u64,
    stopped: &mpsc::Receiver<()>,
    body_of: impl Fn(u64) -> Bytes,
) {
    loop {
        match stopped.recv_timeout(every) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let (version, expires) = {
            let st = lease.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.lost.is_some() {
                return;
            }
            (st.version.clone(), st.expires)
        };
        let new_expires = now() + lease_s;
        let mode = PutMode::Update(UpdateVersion {
            e_tag: Some(version.tag),
            version: version.extra,
        });
        let put = rt.block_on(store.put_opts(path, body_of(new_expires).into(), mode.into()));
        match put {
            Ok(r) => {
                let mut st = lease.state.lock().unwrap_or_else(|e| e.into_inner());
                st.version = Version {
                    tag: r.e_tag.unwrap_or_default(),
                    extra: r.version,
                };
                st.expires = new_expires;
            }
            Err(object_store::Error::Precondition { .. })
            | Err(object_store::Error::NotFound { .. }) => {
                lease.lose("another process took it over or removed it".into());
                return;
            }
            Err(e) if now() >= expires => {
                lease.lose(format!(
                    "it could not be renewed before its lease ran out: {}",
                    condense(&e)
                ));
                return;
            }
            Err(_) => {} // try again at the next tick
        }
    }
}

/// [`Backend::open`] on S3: the body of one GET, read as it arrives.
struct S3Reader {
    rt: Arc<Runtime>,
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    current: Bytes,
    url: String,
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
struct S3Upload {
    rt: Arc<Runtime>,
    store: Arc<dyn ObjectStore>,
    path: Path,
    url: String,
    lease: Weak<Lease>,
    buffer: Vec<u8>,
    multipart: Option<WriteMultipart>,
    written: u64,
    failed: Option<String>,
}

impl S3Upload {
    fn remote(&self, message: String) -> Error {
        Error::Remote {
            url: self.url.clone(),
            message,
        }
    }

    fn push(&mut self, buf: &[u8]) -> std::result::Result<(), String> {
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
