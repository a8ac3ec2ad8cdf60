//! The storage backends, the same test bodies run against a local
//! directory and (cargo feature `s3`) against a real S3 server, moto,
//! started by the suite (tests/common/s3.rs).

#[cfg(feature = "s3")]
use crate::common::s3 as s3server;

use std::io::{Read, Write};
use std::time::Duration;

use repozo::Error;
use repozo::backend::{Backend, Entry, Local, Put};

/// A backend on fresh, empty storage.
struct Fixture {
    backend: Box<dyn Backend>,
    _dir: Option<tempfile::TempDir>,
}

fn local() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    Fixture {
        backend: Box::new(Local::new(dir.path().to_str().unwrap())),
        _dir: Some(dir),
    }
}

/// A prefix of the shared moto server's bucket that no other test uses.
#[cfg(feature = "s3")]
fn s3() -> Fixture {
    Fixture {
        backend: Box::new(s3_at(&unique_prefix())),
        _dir: None,
    }
}

#[cfg(feature = "s3")]
fn unique_prefix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "run-{}/t{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(feature = "s3")]
fn s3_at(prefix: &str) -> repozo::backend::s3::S3 {
    let server = s3server::S3Server::shared();
    let config = server.config();
    let pairs: Vec<(&str, &str)> = config
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    repozo::backend::s3::S3::from_url(&server.url(prefix), &pairs).unwrap()
}

/// Generates one test per body and backend: `local_dir::NAME` and
/// `s3_moto::NAME`.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod local_dir {
            $( #[test] fn $name() { super::$name(&*super::local().backend) } )*
        }
        #[cfg(feature = "s3")]
        mod s3_moto {
            $( #[test] fn $name() { super::$name(&*super::s3().backend) } )*
        }
    };
}

on_both!(
    a_second_put_if_absent_finds_the_first_and_leaves_it,
    an_upload_appears_only_at_commit_and_a_dropped_one_leaves_nothing,
    a_20_mib_streamed_upload_reads_back_byte_identical_whole_and_by_range,
    a_compare_and_swap_with_a_stale_version_fails_and_changes_nothing,
    listing_gives_the_top_level_files_or_everything_below_a_prefix,
    open_optional_reads_an_object_and_gives_none_for_a_missing_one,
    delete_removes_an_object_and_deleting_a_missing_one_is_no_error,
    the_lock_excludes_a_second_holder_until_it_is_dropped,
    the_probe_of_conditional_writes_passes,
);

/// Bytes of a pattern no two parts share.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u64 * 2_654_435_761) >> 13) as u8)
        .collect()
}

fn a_second_put_if_absent_finds_the_first_and_leaves_it(b: &dyn Backend) {
    assert_eq!(b.put_if_absent("x.index", b"first").unwrap(), Put::Created);
    assert_eq!(
        b.put_if_absent("x.index", b"second").unwrap(),
        Put::AlreadyExists
    );
    assert_eq!(b.read("x.index").unwrap(), b"first");
    let blob = "blobs/objects/ab/ab01";
    assert_eq!(b.put_if_absent(blob, b"blob").unwrap(), Put::Created);
    assert_eq!(b.put_if_absent(blob, b"blob").unwrap(), Put::AlreadyExists);
    assert_eq!(b.size(blob).unwrap(), Some(4));
}

fn an_upload_appears_only_at_commit_and_a_dropped_one_leaves_nothing(b: &dyn Backend) {
    let mut up = b.create("2026-01-01-00-00-00.fs").unwrap();
    up.write_all(b"small file").unwrap();
    assert!(!b.exists("2026-01-01-00-00-00.fs").unwrap());
    assert_eq!(up.commit().unwrap(), 10);
    assert_eq!(b.read("2026-01-01-00-00-00.fs").unwrap(), b"small file");

    let err = b.create("2026-01-01-00-00-00.fs").err().unwrap();
    assert!(matches!(err, Error::WouldOverwrite(_)), "{err}");

    // Larger than one S3 part, so a multipart upload is under way.
    let mut up = b.create("2026-01-02-00-00-00.deltafs").unwrap();
    up.write_all(&pattern(9 << 20)).unwrap();
    assert!(!b.exists("2026-01-02-00-00-00.deltafs").unwrap());
    drop(up);
    assert!(!b.exists("2026-01-02-00-00-00.deltafs").unwrap());
    let names: Vec<String> = b
        .list("", false)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["2026-01-01-00-00-00.fs"], "no leftovers");
}

fn a_20_mib_streamed_upload_reads_back_byte_identical_whole_and_by_range(b: &dyn Backend) {
    let data = pattern((20 << 20) + 12_345);
    let name = "2026-01-03-00-00-00.fsz";
    let mut up = b.create(name).unwrap();
    for chunk in data.chunks(1_000_003) {
        up.write_all(chunk).unwrap();
    }
    assert_eq!(up.commit().unwrap(), data.len() as u64);
    assert_eq!(b.size(name).unwrap(), Some(data.len() as u64));

    let mut back = Vec::new();
    let mut r = b.open(name).unwrap();
    let mut buf = vec![0; 65_536];
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        back.extend_from_slice(&buf[..n]);
    }
    assert!(back == data, "streamed read differs");

    let part = 8u64 << 20;
    for (start, len) in [(0u64, 100u64), (part - 7, 20), (12_345_678, 1 << 20)] {
        let got = b.read_range(name, start, len).unwrap();
        assert!(
            got == data[start as usize..(start + len) as usize],
            "range {start}+{len}"
        );
    }
    let end = data.len() as u64;
    assert_eq!(
        b.read_range(name, end - 5, 100).unwrap(),
        &data[data.len() - 5..],
        "a range past the end stops at the end"
    );
    assert!(b.read_range(name, end + 10, 100).unwrap().is_empty());
}

fn a_compare_and_swap_with_a_stale_version_fails_and_changes_nothing(b: &dyn Backend) {
    let dat = "2026-01-01-00-00-00.dat";
    assert!(b.read_versioned(dat).unwrap().is_none());
    b.put_if_absent(dat, b"line 1\n").unwrap();
    let (old, v1) = b.read_versioned(dat).unwrap().unwrap();
    assert_eq!(old, b"line 1\n");
    let v2 = b.replace(dat, b"line 1\nline 2\n", &v1).unwrap();
    assert_ne!(v1, v2);
    let err = b.replace(dat, b"line 1\nother\n", &v1).unwrap_err();
    assert!(matches!(err, Error::Changed(_)), "{err}");
    assert!(err.to_string().contains(dat), "{err}");
    assert_eq!(b.read(dat).unwrap(), b"line 1\nline 2\n");
    let (_, v3) = b.read_versioned(dat).unwrap().unwrap();
    assert_eq!(v2, v3, "the version read is the one the swap returned");
    b.replace(dat, b"line 1\nline 2\nline 3\n", &v3).unwrap();

    b.delete(dat).unwrap();
    let err = b.replace(dat, b"gone", &v3).unwrap_err();
    assert!(matches!(err, Error::Changed(_)), "{err}");
}

fn listing_gives_the_top_level_files_or_everything_below_a_prefix(b: &dyn Backend) {
    assert!(b.list("", false).unwrap().is_empty());
    b.put_if_absent("b.dat", b"12345").unwrap();
    b.put_if_absent("a.fs", b"123").unwrap();
    b.put_if_absent("blobs/objects/cd/cd02", b"22").unwrap();
    b.put_if_absent("blobs/objects/ab/ab01", b"1").unwrap();
    b.put_if_absent("blobs/2026-01-01-00-00-00.blobs", b"m")
        .unwrap();
    let e = |name: &str, size| Entry {
        name: name.into(),
        size,
    };
    assert_eq!(
        b.list("", false).unwrap(),
        [e("a.fs", 3), e("b.dat", 5)],
        "the repository's own files, nothing below it"
    );
    assert_eq!(
        b.list("blobs/objects/", true).unwrap(),
        [e("blobs/objects/ab/ab01", 1), e("blobs/objects/cd/cd02", 2)]
    );
    assert_eq!(
        b.list("blobs/", false).unwrap(),
        [e("blobs/2026-01-01-00-00-00.blobs", 1)]
    );
    assert_eq!(b.list("", true).unwrap().len(), 5);
    assert!(b.list("nothing/", true).unwrap().is_empty());
}

fn open_optional_reads_an_object_and_gives_none_for_a_missing_one(b: &dyn Backend) {
    b.put_if_absent("blobs/objects/ab/x", b"content").unwrap();
    let mut got = Vec::new();
    b.open_optional("blobs/objects/ab/x")
        .unwrap()
        .expect("the object exists")
        .read_to_end(&mut got)
        .unwrap();
    assert_eq!(got, b"content");
    assert!(b.open_optional("blobs/objects/ab/y").unwrap().is_none());
}

fn delete_removes_an_object_and_deleting_a_missing_one_is_no_error(b: &dyn Backend) {
    b.put_if_absent("x.fs", b"x").unwrap();
    assert!(b.exists("x.fs").unwrap());
    b.delete("x.fs").unwrap();
    assert!(!b.exists("x.fs").unwrap());
    assert_eq!(b.size("x.fs").unwrap(), None);
    b.delete("x.fs").unwrap();
    assert!(b.open("x.fs").is_err());
}

fn the_lock_excludes_a_second_holder_until_it_is_dropped(b: &dyn Backend) {
    let first = b.lock(Duration::ZERO).unwrap();
    first.check().unwrap();
    let t = std::time::Instant::now();
    let err = b.lock(Duration::from_millis(600)).unwrap_err();
    assert!(t.elapsed() >= Duration::from_millis(600), "it waited");
    assert_eq!(err.exit_code(), repozo::error::EXIT_LOCKED, "{err}");
    assert!(err.to_string().contains(&b.describe()), "{err}");
    drop(first);
    let again = b.lock(Duration::ZERO).unwrap();
    drop(again);
}

fn the_probe_of_conditional_writes_passes(b: &dyn Backend) {
    b.probe().unwrap();
    b.probe().unwrap();
    assert!(
        b.list("", false).unwrap().is_empty(),
        "the probe leaves no object behind"
    );
}

#[test]
fn open_takes_a_local_path() {
    assert_eq!(
        repozo::backend::open("/x/repo").unwrap().describe(),
        "/x/repo"
    );
}

#[test]
fn a_missing_local_repository_lists_as_no_repository() {
    let err = Local::new("/nonexistent/repozo-repo")
        .list("", false)
        .unwrap_err();
    assert_eq!(err.exit_code(), repozo::error::EXIT_NO_REPOSITORY, "{err}");
}

/// The tests that only an object store has: lease takeover, a lost lease,
/// servers that ignore conditions, error messages.
#[cfg(feature = "s3")]
mod s3_only {
    use super::*;
    use repozo::backend::s3::{S3, hostname};

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    /// A lock object as another process would have written it.
    fn foreign_lock(host: &str, pid: u32, expires: u64) -> Vec<u8> {
        format!(
            r#"{{"owner":"11111111-2222-4333-8444-555555555555","host":"{host}","pid":{pid},"user":"someone","created":{},"expires":{expires},"tool":"repozo 0.1.0"}}"#,
            expires.saturating_sub(600)
        )
        .into_bytes()
    }

    fn lock_owner(b: &dyn Backend) -> Option<String> {
        let (data, _) = b.read_versioned("lock").unwrap()?;
        let v: serde_json::Value = serde_json::from_slice(&data).unwrap();
        Some(v["owner"].as_str().unwrap().to_string())
    }

    #[test]
    fn open_takes_an_s3_url() {
        let b = repozo::backend::open("s3://bucket/some/prefix/").unwrap();
        assert_eq!(b.describe(), "s3://bucket/some/prefix");
        assert_eq!(b.url("x.dat"), "s3://bucket/some/prefix/x.dat");
        assert!(repozo::backend::open("s3:///x").is_err());
    }

    #[test]
    fn an_expired_lock_is_taken_over_and_removed_when_dropped() {
        let b = s3().backend;
        let stale = foreign_lock("elsewhere", 4242, now() - 3600);
        assert_eq!(b.put_if_absent("lock", &stale).unwrap(), Put::Created);
        let held = b.lock(Duration::ZERO).unwrap();
        let owner = lock_owner(&*b).unwrap();
        assert_ne!(owner, "11111111-2222-4333-8444-555555555555");
        drop(held);
        assert_eq!(lock_owner(&*b), None, "released on drop");
    }

    #[test]
    fn a_lock_of_a_process_gone_from_this_host_is_taken_over_at_once() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let b = s3().backend;
        b.put_if_absent("lock", &foreign_lock(&hostname(), dead, now() + 600))
            .unwrap();
        let held = b.lock(Duration::ZERO).unwrap();
        drop(held);
    }

    #[test]
    fn a_live_lock_held_elsewhere_waits_then_names_its_owner() {
        let b = s3().backend;
        b.put_if_absent("lock", &foreign_lock("elsewhere", 4242, now() + 600))
            .unwrap();
        let err = b.lock(Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, Error::LockedBy { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("someone@elsewhere") && msg.contains("pid 4242"),
            "{msg}"
        );
        assert_eq!(err.exit_code(), repozo::error::EXIT_LOCKED);
    }

    #[test]
    fn a_lease_is_renewed_and_a_lost_one_stops_writes_before_the_commit_point() {
        let b = s3_at(&unique_prefix()).with_lease(Duration::from_secs(3));
        let held = b.lock(Duration::ZERO).unwrap();
        std::thread::sleep(Duration::from_millis(4200));
        held.check().expect("renewed past its first 3 s lease");

        // Another process takes it over.
        b.delete("lock").unwrap();
        b.put_if_absent("lock", &foreign_lock("elsewhere", 4242, now() + 600))
            .unwrap();
        std::thread::sleep(Duration::from_millis(2500));
        let err = held.check().unwrap_err();
        assert!(matches!(err, Error::LockLost { .. }), "{err}");
        assert_eq!(err.exit_code(), repozo::error::EXIT_LOCKED);
        b.put_if_absent("x.dat", b"1\n").unwrap();
        let (_, v) = b.read_versioned("x.dat").unwrap().unwrap();
        let err = b.replace("x.dat", b"1\n2\n", &v).unwrap_err();
        assert!(matches!(err, Error::LockLost { .. }), "{err}");
        assert!(matches!(
            b.create("y.fs").err().unwrap(),
            Error::LockLost { .. }
        ));
        drop(held);
        assert_eq!(
            lock_owner(&b).unwrap(),
            "11111111-2222-4333-8444-555555555555",
            "a lost lock is left to its new owner"
        );
    }

    #[test]
    fn a_dropped_multipart_upload_is_aborted_on_the_server() {
        let prefix = unique_prefix();
        let b = s3_at(&prefix);
        let mut up = b.create("2026-01-02-00-00-00.deltafs").unwrap();
        up.write_all(&pattern(17 << 20)).unwrap();
        let server = s3server::S3Server::shared();
        assert!(
            server.pending_uploads(&prefix).contains("<Upload>"),
            "a multipart upload is under way: {}",
            server.pending_uploads(&prefix)
        );
        drop(up);
        let left = server.pending_uploads(&prefix);
        assert!(left.contains("ListMultipartUploadsResult"), "{left}");
        assert!(!left.contains("<Upload>"), "aborted: {left}");
    }

    #[test]
    fn errors_name_the_bucket_the_key_and_the_servers_message() {
        let server = s3server::S3Server::shared();
        let config = server.config();
        let pairs: Vec<(&str, &str)> = config
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let b = S3::from_url("s3://no-such-bucket-here/p", &pairs).unwrap();
        let msg = b.read("x.dat").unwrap_err().to_string();
        assert!(
            msg.contains("s3://no-such-bucket-here/p/x.dat")
                && msg.contains("NoSuchBucket: The specified bucket does not exist")
                && !msg.contains("<?xml"),
            "{msg}"
        );
    }

    /// An HTTP server that answers every request with 200 and an ETag,
    /// as an S3 clone that ignores conditional headers would.
    fn careless_server() -> u16 {
        use std::io::{BufRead, BufReader};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                let _ = r.read_exact(&mut body);
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\nETag: \"abc\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        port
    }

    #[test]
    fn a_server_that_ignores_conditional_writes_is_refused() {
        let endpoint = format!("http://127.0.0.1:{}", careless_server());
        let config = [
            ("aws_endpoint_url", endpoint.as_str()),
            ("aws_allow_http", "true"),
            ("aws_region", "us-east-1"),
            ("aws_access_key_id", "k"),
            ("aws_secret_access_key", "s"),
        ];
        let b = S3::from_url("s3://careless/repo", &config).unwrap();
        let err = b.probe().unwrap_err();
        assert!(matches!(err, Error::NoConditionalWrites { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("If-None-Match") && msg.contains("s3://careless/repo"),
            "{msg}"
        );
        let err = b.put_if_absent("x", b"x").unwrap_err();
        assert!(matches!(err, Error::NoConditionalWrites { .. }), "{err}");
        assert!(matches!(
            b.lock(Duration::ZERO).unwrap_err(),
            Error::NoConditionalWrites { .. }
        ));
    }
}
