//! A repository under a prefix of an S3 bucket (`s3://BUCKET/PREFIX`),
//! through `object_store`'s S3 client on a small tokio runtime owned by
//! the backend; every call blocks until its requests are done.
//!
//! * Endpoint, region and credentials come from the `AWS_*` environment
//!   variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`), over
//!   the profile `AWS_PROFILE` of `~/.aws/credentials` and `~/.aws/config`
//!   ([`profile`]); without static keys, from the container or instance
//!   credential providers ([`S3::from_url`]).
//! * TLS is rustls with the `ring` provider, installed process-wide on
//!   first use (no OpenSSL, no aws-lc).
//! * Small objects are created with `If-None-Match: *`; data files go up
//!   as multipart uploads of [`PART`] bytes, at most [`PARTS_IN_FLIGHT`]
//!   at once (a file smaller than one part as a single create-only PUT);
//!   the `.dat` is rewritten with `If-Match: <ETag>`.
//! * The lock is the object `<prefix>/lock`, a JSON lease (see
//!   [`S3::lock`](super::Backend::lock)).
//! * Before the first write or lock, a probe checks that the server
//!   honours those conditions ([`super::Backend::probe`]).
//!
//! The lock lease (owner, renewal, takeover) is [`lock`]; the streaming
//! reader and the multipart upload are [`stream`]; the shared AWS files
//! are [`profile`].

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

mod lock;
pub mod profile;
mod stream;

use super::{Backend, Entry, Held, Put, Upload, Version};
use crate::clock::Stamp;
use crate::error::{Error, Result};
use lock::{Found, Lease, Owner, lock_body};
pub use lock::{S3Held, hostname};
use stream::{S3Reader, S3Upload};

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
    /// The repository `s3://bucket/prefix`, configured as the AWS CLI
    /// would be: the profile of the shared files ([`profile`]), under the
    /// `AWS_*` environment variables, under `config`: pairs of
    /// `object_store` S3 configuration keys (`aws_endpoint_url`,
    /// `aws_access_key_id`, `aws_allow_http`, …) and values. An explicit
    /// `http://` endpoint (from the profile or `AWS_ENDPOINT_URL[_S3]`)
    /// allows plain HTTP unless `AWS_ALLOW_HTTP` says otherwise. Without
    /// static keys, `object_store` asks the web-identity, container
    /// (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, or `…_FULL_URI` with
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`) or instance (IMDS)
    /// provider, in that order. Nothing is contacted yet.
    pub fn from_url(url: &str, config: &[(&str, &str)]) -> Result<S3> {
        let (bucket, prefix) = super::parse_s3_url(url)?;
        let remote = |message: String| Error::Remote {
            url: url.to_string(),
            message,
        };
        // reqwest's rustls has no crypto provider of its own in our build
        // (Cargo.toml, feature `s3`): the process-wide one must be in
        // place before the first client is built. Err: one already is.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut pairs: Vec<(String, String)> = profile::settings(&env)
            .map_err(remote)?
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let endpoint = env("AWS_ENDPOINT_URL_S3")
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .or_else(|| {
                pairs
                    .iter()
                    .find(|(k, _)| k == "aws_endpoint")
                    .map(|(_, v)| v.clone())
            });
        if endpoint.is_some_and(|e| e.to_ascii_lowercase().starts_with("http://")) {
            pairs.push(("aws_allow_http".into(), "true".into()));
        }
        // What AmazonS3Builder::from_env reads, after the profile.
        for (k, v) in std::env::vars_os() {
            if let (Some(k), Some(v)) = (k.to_str(), v.to_str())
                && k.starts_with("AWS_")
                && !v.is_empty()
            {
                pairs.push((k.to_ascii_lowercase(), v.to_string()));
            }
        }
        let mut builder = AmazonS3Builder::new().with_bucket_name(&bucket);
        for (k, v) in &pairs {
            if let Ok(key) = k.parse::<AmazonS3ConfigKey>() {
                builder = builder.with_config(key, v);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_for_an_https_endpoint_builds_with_the_ring_tls_provider() {
        let s3 = S3::from_url(
            "s3://bucket/prefix",
            &[
                ("aws_endpoint", "https://s3.example.invalid"),
                ("aws_region", "eu-west-1"),
                ("aws_access_key_id", "AKID"),
                ("aws_secret_access_key", "secret"),
            ],
        )
        .unwrap();
        assert_eq!(s3.describe(), "s3://bucket/prefix");
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
