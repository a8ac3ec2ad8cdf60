//! The lock of an S3 repository: the object `<prefix>/lock`, a JSON lease
//! (owner uuid, host, pid, user, created, expires) created with
//! `If-None-Match: *`, renewed by a thread with `If-Match`, taken over when
//! it ran out or its process is gone from this host, and deleted when
//! dropped if it is still ours.

use super::*;

/// The lock object as `me` writes it.
pub(super) fn lock_body(me: &Owner, created: u64, expires: u64) -> Bytes {
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

/// Who takes a lock: this process.
#[derive(Debug, Clone)]
pub(super) struct Owner {
    pub(super) id: String,
    pub(super) host: String,
    pub(super) pid: u32,
    pub(super) user: String,
}

impl Owner {
    pub(super) fn me() -> Owner {
        Owner {
            id: crate::backend::uuid(),
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
pub(super) fn pid_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A lock object as read back.
#[derive(Debug)]
pub(super) struct Found {
    pub(super) version: Version,
    /// The parsed JSON; `None` if it is not ours or damaged.
    pub(super) info: Option<serde_json::Value>,
    pub(super) modified: u64,
}

impl Found {
    pub(super) fn expires(&self, lease: Duration) -> u64 {
        self.info
            .as_ref()
            .and_then(|v| v["expires"].as_u64())
            .unwrap_or(self.modified + lease.as_secs())
    }

    /// Whether its owner is a process of this host that no longer exists.
    pub(super) fn owner_dead_here(&self, host: &str) -> bool {
        let Some(v) = &self.info else { return false };
        let (Some(h), Some(pid)) = (v["host"].as_str(), v["pid"].as_u64()) else {
            return false;
        };
        h == host && pid != u64::from(std::process::id()) && !pid_alive(pid as u32)
    }

    pub(super) fn describe(&self, lease: Duration) -> String {
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
pub(super) struct Lease {
    pub(super) repo: String,
    pub(super) state: Mutex<LeaseState>,
}

#[derive(Debug)]
pub(super) struct LeaseState {
    pub(super) version: Version,
    pub(super) expires: u64,
    pub(super) lost: Option<String>,
}

impl Lease {
    pub(super) fn check(&self) -> Result<()> {
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

    pub(super) fn lose(&self, why: String) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.lost.get_or_insert(why);
    }
}

/// A lock held on an S3 repository: renewed by a thread until dropped,
/// then deleted if it is still ours.
pub struct S3Held {
    pub(super) lease: Arc<Lease>,
    pub(super) stop: Option<mpsc::Sender<()>>,
    pub(super) renewer: Option<std::thread::JoinHandle<()>>,
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) rt: Arc<Runtime>,
    pub(super) path: Path,
    pub(super) owner: String,
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

impl S3 {
    /// Starts renewing the lock just taken.
    pub(super) fn hold(&self, me: Owner, created: u64, version: Version) -> S3Held {
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
pub(super) fn renew(
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
