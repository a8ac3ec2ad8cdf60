//! Where our binary gets its S3 endpoint, region and keys from when no
//! `AWS_*` variable gives them: the profile of the shared AWS files in
//! its home directory, and the container credential provider; and that
//! the variables still win. Every command here runs with every `AWS_*`
//! variable of the test process removed and `HOME` a temporary
//! directory, so nothing of the machine's own AWS setup leaks in (and
//! the test process's own environment is never changed).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::s3::{KEY_ID, S3Site, SECRET};
use crate::common::{Site, next_stamp, ok, run, stderr};

/// Our binary in `site` with `args`, at a fresh stamp, `HOME` at `home`
/// and no `AWS_*` variable but `env`.
fn ours_in(site: &S3Site, home: &Path, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut c = site.ours(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    for (k, _) in site.server.env() {
        c.env_remove(k);
    }
    c.env("HOME", home).env("REPOZO_TEST_NOW", next_stamp());
    c.envs(env.iter().copied());
    c
}

/// A home directory with `.aws/credentials` and `.aws/config`.
fn home(credentials: &str, config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".aws")).unwrap();
    std::fs::write(dir.path().join(".aws/credentials"), credentials).unwrap();
    std::fs::write(dir.path().join(".aws/config"), config).unwrap();
    dir
}

/// Backs up, verifies and recovers `site` through `s3://` with `env`
/// only; the recovered Data.fs must be the committed one.
fn backup_verify_recover(site: &S3Site, home: &Path, env: &[(&str, &str)]) {
    let url = site.url();
    ok(run(ours_in(
        site,
        home,
        env,
        &["-B", "-r", &url, "-f", "Data.fs"],
    )));
    ok(run(ours_in(site, home, env, &["-V", "-r", &url])));
    ok(run(ours_in(
        site,
        home,
        env,
        &["-R", "-r", &url, "-o", "out.fs"],
    )));
    assert!(
        site.read("out.fs") == site.committed(),
        "{}: recovered from S3 unlike the Data.fs",
        site.prefix
    );
}

#[test]
fn a_profile_in_the_shared_files_gives_keys_region_and_endpoint_with_no_aws_variables_set() {
    let site = S3Site::new(Site::grown(3, 71), "profile-default");
    let h = home(
        &format!("[default]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"),
        &format!(
            "[default]\nregion = us-east-1\nendpoint_url = {}\n",
            site.server.endpoint
        ),
    );
    backup_verify_recover(&site, h.path(), &[]);
}

#[test]
fn aws_profile_picks_the_profile_and_its_services_section_gives_the_s3_endpoint() {
    let site = S3Site::new(Site::grown(2, 72), "profile-named");
    let h = home(
        &format!(
            "[default]\naws_access_key_id = nope\naws_secret_access_key = nope\n\
             [backup]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"
        ),
        &format!(
            "[default]\nendpoint_url = http://127.0.0.1:1\n\
             [profile backup]\nregion = us-east-1\nservices = here\n\
             [services here]\ns3 =\n  endpoint_url = {}\n",
            site.server.endpoint
        ),
    );
    backup_verify_recover(&site, h.path(), &[("AWS_PROFILE", "backup")]);
}

#[test]
fn a_profile_named_by_aws_profile_that_no_file_has_exits_1_naming_the_files() {
    let site = S3Site::new(Site::grown(1, 73), "profile-missing");
    let h = home("[default]\n", "[profile other]\n");
    let url = site.url();
    let o = run(ours_in(
        &site,
        h.path(),
        &[("AWS_PROFILE", "nightly")],
        &["-B", "-r", &url, "-f", "Data.fs"],
    ));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    let creds = h.path().join(".aws/credentials");
    let conf = h.path().join(".aws/config");
    assert!(
        err.contains("\"nightly\"")
            && err.contains(creds.to_str().unwrap())
            && err.contains(conf.to_str().unwrap()),
        "{err}"
    );
    assert!(site.listing().is_empty(), "it wrote to S3");
}

#[test]
fn aws_variables_win_over_the_profile() {
    let site = S3Site::new(Site::grown(2, 74), "profile-env-wins");
    // The profile points at a port nobody listens on, in another region.
    let h = home(
        "[default]\naws_access_key_id = fromfile\naws_secret_access_key = fromfile\n",
        "[default]\nregion = eu-west-3\nendpoint_url = http://127.0.0.1:1\n",
    );
    let env = site.server.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    backup_verify_recover(&site, h.path(), &env);
}

/// A container credential endpoint on loopback: answers every request
/// that carries `Authorization: <token>` with temporary keys (moto takes
/// any), anything else with 401; counts the requests it answered.
fn container_credentials(token: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/creds", listener.local_addr().unwrap());
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut authorized = false;
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case("authorization")
                    && v.trim() == token
                {
                    authorized = true;
                }
                line.clear();
            }
            let (status, body) = if authorized {
                count.fetch_add(1, Ordering::SeqCst);
                (
                    "200 OK",
                    format!(
                        r#"{{"AccessKeyId":"{KEY_ID}","SecretAccessKey":"{SECRET}","Token":"session","Expiration":"2099-01-01T00:00:00Z"}}"#
                    ),
                )
            } else {
                ("401 Unauthorized", String::new())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, served)
}

#[test]
fn without_static_keys_the_container_credential_provider_is_asked() {
    let site = S3Site::new(Site::grown(2, 75), "container-credentials");
    let (creds_url, served) = container_credentials("sesame");
    let h = tempfile::tempdir().unwrap();
    let token = h.path().join("token");
    std::fs::write(&token, "sesame").unwrap();
    backup_verify_recover(
        &site,
        h.path(),
        &[
            ("AWS_ENDPOINT_URL", &site.server.endpoint),
            ("AWS_REGION", "us-east-1"),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &creds_url),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                token.to_str().unwrap(),
            ),
        ],
    );
    assert!(
        served.load(Ordering::SeqCst) >= 3,
        "the container credential endpoint was asked {} times, not once per run",
        served.load(Ordering::SeqCst)
    );
}
