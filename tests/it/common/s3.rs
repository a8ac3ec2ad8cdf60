//! A real S3 server for the tests: `moto_server` from the tests' venv
//! (`moto[server]` in tests/py/requirements.txt, installed by
//! scripts/setup-venv.sh on first use), on a free loopback port, with a
//! bucket [`BUCKET`] created.
//!
//! Nothing is ever skipped: if the venv, moto or the server cannot be
//! had, the test panics saying why.
//!
//! The server runs under a tiny bash watchdog that holds our end of a
//! pipe: when the test process ends, however it ends, the pipe closes and
//! the watchdog kills the server by its recorded pid. [`S3Server::start`]
//! gives a server of one's own, killed when dropped; [`S3Server::shared`]
//! one for the whole test process.
//!
//! Tests in this process configure the backend with [`S3Server::config`]
//! (so no process-wide variable is set under running threads); commands
//! they start get [`S3Server::env`], the `AWS_*` variables.
//!
//! [`S3Site`] is a [`Site`] whose backups also go to S3, to a prefix of
//! the shared server's bucket that no other test uses.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{Site, next_stamp, py, run, stderr};

/// The bucket every server is started with.
pub const BUCKET: &str = "repozo-test";

/// Credentials moto accepts (any are accepted; the client needs some, or
/// it looks for instance metadata).
pub const KEY_ID: &str = "testing";
/// See [`KEY_ID`].
pub const SECRET: &str = "testing";

/// A running moto server.
pub struct S3Server {
    watchdog: Child,
    /// Our end of the watchdog's stdin: closing it stops the server.
    _lifeline: Option<ChildStdin>,
    /// moto_server's pid.
    pub pid: u32,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The server's output.
    pub log: PathBuf,
}

impl S3Server {
    /// Starts a server of one's own (a few seconds: moto is Python);
    /// panics if it cannot.
    pub fn start() -> S3Server {
        let venv = py::venv_dir();
        // Provisions the venv (moto included) if needed; panics loudly if
        // that fails.
        let _ = py::venv_python();
        let moto = venv.join("bin").join("moto_server");
        assert!(
            moto.is_file(),
            "\n==== S3 TEST SERVER MISSING ====\n{} does not exist, although the venv is set up: \
             tests/py/requirements.txt must list moto[server]. These tests are NOT skipped.\n",
            moto.display()
        );
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(&moto) {
                Ok(s) => {
                    s.create_bucket(BUCKET);
                    return s;
                }
                Err(why) => last = why,
            }
        }
        panic!(
            "\n==== S3 TEST SERVER DID NOT START ====\n{} failed three times; last: {last}\n\
             These tests need a real S3 server and are NOT skipped.\n",
            moto.display()
        );
    }

    /// The server shared by all tests of this process, started on first
    /// use; it stops when the process ends.
    pub fn shared() -> &'static S3Server {
        static SHARED: OnceLock<S3Server> = OnceLock::new();
        SHARED.get_or_init(S3Server::start)
    }

    fn try_start(moto: &std::path::Path) -> Result<S3Server, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        let log =
            std::env::temp_dir().join(format!("repozo-moto-{}-{port}.log", std::process::id()));
        let mut watchdog = Command::new("bash")
            .arg("-c")
            .arg(
                r#""$0" -H 127.0.0.1 -p "$1" >"$2" 2>&1 </dev/null & m=$!
                echo "$m"
                read -r _ || true
                kill -9 "$m" 2>/dev/null; rm -f "$2""#,
            )
            .arg(moto)
            .arg(port.to_string())
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot run bash: {e}"))?;
        let lifeline = watchdog.stdin.take();
        let mut line = String::new();
        BufReader::new(watchdog.stdout.take().expect("piped"))
            .read_line(&mut line)
            .map_err(|e| format!("reading the server's pid: {e}"))?;
        let pid: u32 = line
            .trim()
            .parse()
            .map_err(|_| format!("the watchdog printed {line:?}, not a pid"))?;
        let server = S3Server {
            watchdog,
            _lifeline: lifeline,
            pid,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        let start = Instant::now();
        loop {
            if http(port, "GET / HTTP/1.1").is_ok_and(|r| r.starts_with("HTTP/1.")) {
                return Ok(server);
            }
            // SAFETY: signal 0 only checks that the process exists.
            if unsafe { libc::kill(pid as libc::pid_t, 0) } != 0 {
                return Err(format!(
                    "moto_server exited; its output:\n{}",
                    std::fs::read_to_string(&server.log).unwrap_or_default()
                ));
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "moto_server did not answer on port {port} within 60 s; its output:\n{}",
                    std::fs::read_to_string(&server.log).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("endpoint has a port")
    }

    /// Creates a bucket (moto takes unsigned requests); panics on failure.
    pub fn create_bucket(&self, name: &str) {
        let resp = http(self.port(), &format!("PUT /{name} HTTP/1.1"))
            .unwrap_or_else(|e| panic!("creating bucket {name} on {}: {e}", self.endpoint));
        assert!(
            resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200"),
            "creating bucket {name} on {}: {resp}",
            self.endpoint
        );
    }

    /// The multipart uploads begun and neither completed nor aborted under
    /// `prefix` of [`BUCKET`], as moto lists them (the XML, `<Upload>`
    /// elements; moto answers unsigned requests).
    pub fn pending_uploads(&self, prefix: &str) -> String {
        http(
            self.port(),
            &format!("GET /{BUCKET}?uploads&prefix={prefix} HTTP/1.1"),
        )
        .unwrap_or_else(|e| panic!("listing multipart uploads on {}: {e}", self.endpoint))
    }

    /// `s3://BUCKET/prefix`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// The `AWS_*` variables that point a child process at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The same settings as `object_store` configuration keys, for
    /// `repozo::backend::s3::S3::from_url`.
    pub fn config(&self) -> Vec<(String, String)> {
        self.env()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect()
    }

    /// Our own backend for `url` (`s3://BUCKET/PREFIX`) on this server.
    pub fn client(&self, url: &str) -> repozo::backend::s3::S3 {
        let config = self.config();
        let pairs: Vec<(&str, &str)> = config
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        repozo::backend::s3::S3::from_url(url, &pairs).unwrap()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // SAFETY: a signal to the pid we started.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGKILL);
        }
        drop(self._lifeline.take());
        let _ = self.watchdog.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Sends a request line with no body to 127.0.0.1:`port`; returns the
/// whole response.
fn http(port: u16, request_line: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{request_line}\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    Ok(resp)
}

/// A prefix of the bucket that no other test of this process (nor of
/// another process: the pid is in it) uses: `<what>-<pid>/<name>-<n>`.
pub fn unique_prefix(what: &str, name: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{what}-{}/{name}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    )
}

/// A [`Site`] whose backups also go to S3: a fresh prefix of the shared
/// server's bucket, `-r s3://BUCKET/PREFIX`, beside the local twin
/// repository `repo/` (backed up at the same stamps). The site is named
/// by its prefix in failure messages.
pub struct S3Site {
    site: Site,
    pub server: &'static S3Server,
    pub prefix: String,
}

impl Deref for S3Site {
    type Target = Site;

    fn deref(&self) -> &Site {
        &self.site
    }
}

impl S3Site {
    /// `site` with a fresh prefix whose name says `what` it is for.
    pub fn new(site: Site, what: &str) -> S3Site {
        let prefix = unique_prefix("site", what);
        S3Site {
            site: site.named(&prefix),
            server: S3Server::shared(),
            prefix,
        }
    }

    /// `s3://BUCKET/PREFIX`.
    pub fn url(&self) -> String {
        self.server.url(&self.prefix)
    }

    /// The S3 repository through our own backend (listing, reading single
    /// objects, the lock object), configured for the test server.
    pub fn backend(&self) -> repozo::backend::s3::S3 {
        self.server.client(&self.url())
    }

    /// The names and sizes of the objects directly under the prefix.
    pub fn listing(&self) -> BTreeMap<String, u64> {
        use repozo::backend::Backend;
        self.backend()
            .list("", false)
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.size))
            .collect()
    }

    /// How many multipart uploads under the prefix are begun and neither
    /// completed nor aborted (the server's ListMultipartUploads).
    pub fn uploads_pending(&self) -> usize {
        let xml = self.server.pending_uploads(&format!("{}/", self.prefix));
        assert!(xml.contains("ListMultipartUploadsResult"), "{xml}");
        xml.matches("<Upload>").count()
    }

    /// Our binary in the site, pointed at the S3 server, at a fresh stamp.
    pub fn ours(&self, args: &[&str]) -> Command {
        self.ours_at(&next_stamp(), args)
    }

    /// Our binary in the site, pointed at the S3 server, its clock pinned
    /// at `now`.
    pub fn ours_at(&self, now: &str, args: &[&str]) -> Command {
        let mut c = self.site.ours_at(now, args);
        c.envs(self.server.env());
        c
    }

    /// Backs up with `flags -f Data.fs` to S3 and to the local twin at
    /// one stamp (both must succeed); returns the stamp.
    pub fn backup_both(&self, flags: &[&str]) -> String {
        let now = next_stamp();
        let url = self.url();
        for repo in [url.as_str(), "repo"] {
            let args = [flags, &["-r", repo, "-f", "Data.fs"]].concat();
            let o = run(self.ours_at(&now, &args));
            assert!(
                o.status.success(),
                "{}: repozo {args:?} failed with {}: {}",
                self.prefix,
                o.status,
                stderr(&o)
            );
        }
        now
    }

    /// Every object under the prefix, by its name below it
    /// (`/`-separated), with its bytes.
    pub fn objects(&self) -> BTreeMap<String, Vec<u8>> {
        let down = tempfile::tempdir().unwrap();
        self.download(down.path());
        files(down.path())
    }

    /// Downloads every object under the prefix into `to`, keeping the
    /// `/`-separated names as paths (through boto3, which moto brings).
    pub fn download(&self, to: &Path) {
        let script = r#"
import os, sys, boto3
bucket, prefix, to = sys.argv[1], sys.argv[2].rstrip("/") + "/", sys.argv[3]
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
    for o in page.get("Contents", []):
        dest = os.path.join(to, o["Key"][len(prefix):])
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        s3.download_file(bucket, o["Key"], dest)
"#;
        let mut c = Command::new(py::venv_python());
        c.arg("-c")
            .arg(script)
            .arg(BUCKET)
            .arg(&self.prefix)
            .arg(to)
            .envs(self.server.env());
        let o = run(c);
        assert!(o.status.success(), "the download failed: {}", stderr(&o));
    }

    /// Every object under the prefix is the twin's file of the same path,
    /// and each side has nothing the other lacks (no lock, no probe left
    /// behind), except `blobs/STATE` and `blobs/incoming/` (a directory
    /// store's only). `.dat` lines are compared by base name, and on S3
    /// each names `s3://BUCKET/PREFIX/<name>`.
    pub fn assert_same_as_twin(&self) {
        let remote = self.objects();
        let mut local = files(&self.repo());
        local.retain(|p, _| p != "blobs/STATE" && !p.starts_with("blobs/incoming/"));
        assert_eq!(
            remote.keys().collect::<Vec<_>>(),
            local.keys().collect::<Vec<_>>(),
            "{}: the S3 prefix and the local twin hold different files",
            self.prefix
        );
        let url = self.url();
        for (name, bytes) in &remote {
            if name.ends_with(".dat") {
                assert_eq!(
                    dat_by_name(bytes),
                    dat_by_name(&local[name]),
                    "{}: {name}",
                    self.prefix
                );
                let text = String::from_utf8_lossy(bytes);
                assert!(
                    text.lines().all(|l| l.starts_with(&format!("{url}/"))),
                    "{name} does not record {url}/<name> paths:\n{text}"
                );
            } else {
                assert!(
                    *bytes == local[name],
                    "{}: {name} differs between S3 and the twin",
                    self.prefix
                );
            }
        }
    }
}

/// The lines of a `.dat` with each path field reduced to its base name
/// (all a reader uses), so an S3 `.dat` compares with a local one.
fn dat_by_name(raw: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(raw)
        .lines()
        .map(|l| {
            let (path, rest) = l.split_once(' ').unwrap_or((l, ""));
            format!("{} {rest}", path.rsplit('/').next().unwrap_or(path))
        })
        .collect()
}

/// Every regular file under `root`, by its `/`-separated path below it,
/// with its bytes.
fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e
                    .path()
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}
