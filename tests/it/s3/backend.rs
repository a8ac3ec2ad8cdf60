//! The backend on S3 (moto, started by the suite): the conformance bodies
//! of `crate::backend` on a fresh prefix each, and the tests only an object
//! store has: lease takeover, a lost lease, servers that ignore
//! conditions, error messages.

use std::io::{Read, Write};
use std::time::Duration;

use repozo::Error;
use repozo::backend::s3::{S3, hostname};
use repozo::backend::{Backend, Put};

use crate::backend::{Fixture, pattern};
use crate::common::s3::{S3Server, unique_prefix};

/// Our backend on a prefix of the shared moto server's bucket that no
/// other test uses.
fn s3() -> Fixture {
    Fixture {
        backend: Box::new(s3_at(&fresh_prefix())),
        _dir: None,
    }
}

fn fresh_prefix() -> String {
    unique_prefix("backend", "t")
}

fn s3_at(prefix: &str) -> S3 {
    let server = S3Server::shared();
    server.client(&server.url(prefix))
}

mod moto {
    crate::backend::conformance_tests!(super::s3);
}

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
    let b = s3_at(&fresh_prefix()).with_lease(Duration::from_secs(3));
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
    let prefix = fresh_prefix();
    let b = s3_at(&prefix);
    let mut up = b.create("2026-01-02-00-00-00.deltafs").unwrap();
    up.write_all(&pattern(17 << 20)).unwrap();
    let server = S3Server::shared();
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
    let b = S3Server::shared().client("s3://no-such-bucket-here/p");
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
