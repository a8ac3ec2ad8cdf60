//! The AWS shared configuration files, read as the AWS CLI reads them:
//! the profile's static keys, region and endpoint, as `object_store` S3
//! settings that go under the `AWS_*` environment variables.
//!
//! * Files: `AWS_SHARED_CREDENTIALS_FILE` (default `~/.aws/credentials`)
//!   and `AWS_CONFIG_FILE` (default `~/.aws/config`); a file that does
//!   not exist is empty.
//! * Profile: `AWS_PROFILE`, default `default`. In the credentials file
//!   its section is `[NAME]`; in the config file `[profile NAME]`
//!   (`[default]` or `[profile default]` for the default one). For a key
//!   in both, the credentials file wins.
//! * A profile named by `AWS_PROFILE` that is in neither file is an
//!   error naming both files; a missing `default` profile is no profile.
//! * Keys used: `aws_access_key_id`, `aws_secret_access_key`,
//!   `aws_session_token` (only as a set, and only if the environment has
//!   neither `AWS_ACCESS_KEY_ID` nor `AWS_SECRET_ACCESS_KEY`); `region`
//!   (unless `AWS_REGION` or `AWS_DEFAULT_REGION` is set); the endpoint,
//!   from the `[services NAME]` section the profile's `services` key
//!   names (its `s3 =` sub-section's `endpoint_url`), else the profile's
//!   own `endpoint_url` (unless `AWS_ENDPOINT_URL` or
//!   `AWS_ENDPOINT_URL_S3` is set, or `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`
//!   is true); `role_arn` with `web_identity_token_file` (and
//!   `role_session_name`), which `object_store` exchanges for keys itself.
//! * A profile without static keys that wants another way of getting
//!   credentials (`credential_process`, SSO, `role_arn` with
//!   `source_profile`) is an error saying so, not a silent fallback to
//!   the instance's credentials.
//!
//! The reader is our own, not a crate's: the AWS dialect of INI (`#` and
//! `;` whole-line comments only, `=` or `:`, keys lowercased, an empty
//! value followed by indented `key = value` lines as a sub-section) is
//! about sixty lines, and the INI crates differ from it exactly there
//! (inline comments, nested sub-sections), where a difference would
//! silently change a key or a secret.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One file: section name → (key → value). A sub-section's keys are
/// `parent.key` (`s3.endpoint_url`).
type Ini = HashMap<String, HashMap<String, String>>;

/// Parses the AWS dialect of INI; `Err` names the line that is not a
/// section header, an assignment, a continuation or a comment.
fn parse(text: &str) -> std::result::Result<Ini, String> {
    let mut ini = Ini::new();
    let mut section: Option<String> = None;
    // The last key of the current section, and whether its value was
    // empty (then indented lines are its sub-keys).
    let mut last: Option<(String, bool)> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let bad = |why: &str| format!("line {}: {why}", n + 1);
        let indented = raw.starts_with([' ', '\t']);
        if !indented && line.starts_with('[') {
            let name = line
                .strip_prefix('[')
                .and_then(|l| l.strip_suffix(']'))
                .ok_or_else(|| bad("a section header must end with ]"))?;
            let name = name.trim().to_string();
            ini.entry(name.clone()).or_default();
            section = Some(name);
            last = None;
            continue;
        }
        let Some(current) = section.as_ref() else {
            return Err(bad("a setting before the first [section]"));
        };
        let keys = ini.get_mut(current).expect("section entered above");
        if indented && let Some((parent, nested)) = &last {
            if *nested {
                let (k, v) = split(line).ok_or_else(|| bad("expected `key = value`"))?;
                keys.insert(format!("{parent}.{k}"), v);
            } else {
                // A continuation of a multi-line value.
                let v = keys.get_mut(parent).expect("last key was inserted");
                v.push('\n');
                v.push_str(line);
            }
            continue;
        }
        let (k, v) = split(line).ok_or_else(|| bad("expected `key = value`"))?;
        last = Some((k.clone(), v.is_empty()));
        keys.insert(k, v);
    }
    Ok(ini)
}

/// `key = value` (or `key: value`, split at the first of the two) with
/// the key lowercased and both trimmed; `None` without a delimiter or a
/// key.
fn split(line: &str) -> Option<(String, String)> {
    let at = line.find(['=', ':'])?;
    let key = line[..at].trim().to_ascii_lowercase();
    if key.is_empty() {
        return None;
    }
    Some((key, line[at + 1..].trim().to_string()))
}

/// Reads and parses `path`; a file that does not exist is empty.
fn read(path: &Path) -> std::result::Result<Ini, String> {
    match crate::io::read_text_at_most(path, 1 << 20) {
        Ok(text) => parse(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ini::new()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// `var`'s path (a leading `~/` is the home directory), else `default`
/// under the home directory; `None` without either.
fn file(env: &dyn Fn(&str) -> Option<String>, var: &str, default: &str) -> Option<PathBuf> {
    let home = env("HOME").map(PathBuf::from);
    match env(var) {
        Some(p) => match (p.strip_prefix("~/"), &home) {
            (Some(rest), Some(h)) => Some(h.join(rest)),
            _ => Some(PathBuf::from(p)),
        },
        None => home.map(|h| h.join(default)),
    }
}

/// The settings the shared files give, as pairs of `object_store` S3
/// configuration key and value, to be applied before the `AWS_*`
/// environment variables (which `env` looks up; an empty variable is
/// unset). `Err` is a message for the operator: a named profile that is
/// missing, a file that cannot be read or parsed, a profile whose
/// credentials need a provider we lack.
pub fn settings(
    env: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<Vec<(&'static str, String)>, String> {
    let named = env("AWS_PROFILE");
    let name = named.clone().unwrap_or_else(|| "default".to_string());
    let cred_path = file(env, "AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
    let conf_path = file(env, "AWS_CONFIG_FILE", ".aws/config");
    let creds = match &cred_path {
        Some(p) => read(p)?,
        None => Ini::new(),
    };
    let conf = match &conf_path {
        Some(p) => read(p)?,
        None => Ini::new(),
    };
    let in_conf = conf.get(&format!("profile {name}")).or_else(|| {
        if name == "default" {
            conf.get("default")
        } else {
            None
        }
    });
    let in_creds = creds.get(&name);
    if in_conf.is_none() && in_creds.is_none() {
        if named.is_some() {
            let show = |p: &Option<PathBuf>| match p {
                Some(p) => p.display().to_string(),
                None => "(no home directory)".to_string(),
            };
            return Err(format!(
                "the AWS profile {name:?} (AWS_PROFILE) is in neither {} nor {}",
                show(&cred_path),
                show(&conf_path)
            ));
        }
        return Ok(Vec::new());
    }
    let mut profile: HashMap<String, String> = in_conf.cloned().unwrap_or_default();
    profile.extend(in_creds.cloned().unwrap_or_default());
    let get = |k: &str| profile.get(k).filter(|v| !v.is_empty()).cloned();
    let set = |k: &str| env(k).is_some();

    let mut out = Vec::new();
    if !set("AWS_ACCESS_KEY_ID") && !set("AWS_SECRET_ACCESS_KEY") {
        let id = get("aws_access_key_id");
        let secret = get("aws_secret_access_key");
        if id.is_some() || secret.is_some() {
            if let Some(id) = id {
                out.push(("aws_access_key_id", id));
            }
            if let Some(secret) = secret {
                out.push(("aws_secret_access_key", secret));
            }
            if let Some(token) = get("aws_session_token") {
                out.push(("aws_session_token", token));
            }
        } else if let (Some(role), Some(token_file), None, None) = (
            get("role_arn"),
            get("web_identity_token_file"),
            get("source_profile"),
            get("credential_source"),
        ) {
            out.push(("aws_role_arn", role));
            out.push(("aws_web_identity_token_file", token_file));
            if let Some(session) = get("role_session_name") {
                out.push(("aws_role_session_name", session));
            }
        } else if let Some(how) = [
            "credential_process",
            "sso_session",
            "sso_start_url",
            "role_arn",
        ]
        .into_iter()
        .find(|k| get(k).is_some())
        {
            return Err(format!(
                "the AWS profile {name:?} gets its credentials by {how}, which repozo does \
                 not support; give the profile aws_access_key_id and aws_secret_access_key, \
                 or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            ));
        }
    }
    if !set("AWS_REGION")
        && !set("AWS_DEFAULT_REGION")
        && let Some(region) = get("region")
    {
        out.push(("aws_region", region));
    }
    let ignore =
        env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !set("AWS_ENDPOINT_URL") && !set("AWS_ENDPOINT_URL_S3") && !ignore {
        let service = get("services")
            .and_then(|s| conf.get(&format!("services {s}")))
            .and_then(|s| s.get("s3.endpoint_url"))
            .filter(|v| !v.is_empty())
            .cloned();
        if let Some(endpoint) = service.or_else(|| get("endpoint_url")) {
            out.push(("aws_endpoint", endpoint));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// A profile file is the user's, and anything: it parses or is an
        /// error, never a panic.
        #[test]
        fn any_profile_file_parses_or_is_an_error_never_a_panic(text in "(\\PC|[\\[\\]=#; \\t\\n]){0,300}") {
            let _ = parse(&text);
        }
    }

    /// An environment of `vars` only.
    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    /// A home directory with `.aws/credentials` and `.aws/config`.
    fn home(credentials: &str, config: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".aws")).unwrap();
        std::fs::write(dir.path().join(".aws/credentials"), credentials).unwrap();
        std::fs::write(dir.path().join(".aws/config"), config).unwrap();
        dir
    }

    fn get(pairs: &[(&'static str, String)], key: &str) -> Option<String> {
        pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    }

    const CREDS: &str = "# keys\n[default]\naws_access_key_id = AKIDDEFAULT\n\
                         aws_secret_access_key = secret/with=equals\n\n\
                         [backup]\nAWS_ACCESS_KEY_ID=AKIDBACKUP\naws_secret_access_key: s2\n\
                         aws_session_token = tok\n";
    const CONF: &str = "[default]\nregion = eu-west-1\nendpoint_url = http://127.0.0.1:9000\n\
                        [profile backup]\nregion = eu-central-1\nservices = local\n\
                        aws_access_key_id = AKIDFROMCONFIG\n\
                        [services local]\ns3 =\n  endpoint_url = http://s3.local:9000\n\
                        sts =\n  endpoint_url = http://sts.local\n";

    #[test]
    fn the_default_profile_gives_keys_region_and_endpoint() {
        let h = home(CREDS, CONF);
        let s = settings(&env_of(&[("HOME", h.path().to_str().unwrap())])).unwrap();
        assert_eq!(get(&s, "aws_access_key_id").unwrap(), "AKIDDEFAULT");
        assert_eq!(
            get(&s, "aws_secret_access_key").unwrap(),
            "secret/with=equals"
        );
        assert_eq!(get(&s, "aws_session_token"), None);
        assert_eq!(get(&s, "aws_region").unwrap(), "eu-west-1");
        assert_eq!(get(&s, "aws_endpoint").unwrap(), "http://127.0.0.1:9000");
    }

    #[test]
    fn a_named_profile_takes_its_keys_from_the_credentials_file_and_its_endpoint_from_services() {
        let h = home(CREDS, CONF);
        let s = settings(&env_of(&[
            ("HOME", h.path().to_str().unwrap()),
            ("AWS_PROFILE", "backup"),
        ]))
        .unwrap();
        assert_eq!(get(&s, "aws_access_key_id").unwrap(), "AKIDBACKUP");
        assert_eq!(get(&s, "aws_secret_access_key").unwrap(), "s2");
        assert_eq!(get(&s, "aws_session_token").unwrap(), "tok");
        assert_eq!(get(&s, "aws_region").unwrap(), "eu-central-1");
        assert_eq!(get(&s, "aws_endpoint").unwrap(), "http://s3.local:9000");
    }

    #[test]
    fn a_missing_named_profile_is_an_error_naming_both_files() {
        let h = home(CREDS, CONF);
        let err = settings(&env_of(&[
            ("HOME", h.path().to_str().unwrap()),
            ("AWS_PROFILE", "nope"),
        ]))
        .unwrap_err();
        assert!(err.contains("\"nope\""), "{err}");
        assert!(err.contains(".aws/credentials"), "{err}");
        assert!(err.contains(".aws/config"), "{err}");
    }

    #[test]
    fn no_files_and_no_named_profile_give_nothing() {
        let h = tempfile::tempdir().unwrap();
        let s = settings(&env_of(&[("HOME", h.path().to_str().unwrap())])).unwrap();
        assert!(s.is_empty(), "{s:?}");
        assert!(settings(&env_of(&[])).unwrap().is_empty());
    }

    #[test]
    fn environment_variables_win_over_the_profile() {
        let h = home(CREDS, CONF);
        let s = settings(&env_of(&[
            ("HOME", h.path().to_str().unwrap()),
            ("AWS_PROFILE", "backup"),
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_DEFAULT_REGION", "us-west-2"),
            ("AWS_ENDPOINT_URL", "http://env:1"),
        ]))
        .unwrap();
        assert!(s.is_empty(), "{s:?}");
    }

    #[test]
    fn the_file_variables_override_the_default_paths() {
        let h = home("", "");
        let other = tempfile::tempdir().unwrap();
        let (c, f) = (other.path().join("c"), other.path().join("f"));
        std::fs::write(
            &c,
            "[p]\naws_access_key_id = A\naws_secret_access_key = S\n",
        )
        .unwrap();
        std::fs::write(&f, "[profile p]\nregion = ap-south-1\n").unwrap();
        let s = settings(&env_of(&[
            ("HOME", h.path().to_str().unwrap()),
            ("AWS_PROFILE", "p"),
            ("AWS_SHARED_CREDENTIALS_FILE", c.to_str().unwrap()),
            ("AWS_CONFIG_FILE", f.to_str().unwrap()),
        ]))
        .unwrap();
        assert_eq!(get(&s, "aws_access_key_id").unwrap(), "A");
        assert_eq!(get(&s, "aws_region").unwrap(), "ap-south-1");
    }

    #[test]
    fn a_profile_section_without_the_profile_word_in_config_is_not_the_profile() {
        let h = home("", "[backup]\nregion = eu-west-3\n");
        let err = settings(&env_of(&[
            ("HOME", h.path().to_str().unwrap()),
            ("AWS_PROFILE", "backup"),
        ]))
        .unwrap_err();
        assert!(err.contains("neither"), "{err}");
    }

    #[test]
    fn a_profile_that_needs_another_credential_provider_is_an_error_saying_which() {
        let h = home(
            "",
            "[profile sso]\nsso_session = corp\nregion = eu-west-1\n",
        );
        let err = settings(&env_of(&[
            ("HOME", h.path().to_str().unwrap()),
            ("AWS_PROFILE", "sso"),
        ]))
        .unwrap_err();
        assert!(err.contains("sso_session"), "{err}");
    }

    #[test]
    fn a_line_that_is_not_ini_is_an_error_naming_file_and_line() {
        let h = home("[default]\naws_access_key_id = A\nnonsense\n", "");
        let err = settings(&env_of(&[("HOME", h.path().to_str().unwrap())])).unwrap_err();
        assert!(err.contains("credentials: line 3"), "{err}");
    }

    #[test]
    fn comments_are_whole_lines_only_and_values_keep_their_hashes() {
        let ini = parse("; c\n[s]\n# c\nk = v # not a comment\nmulti =\n  a = 1\n").unwrap();
        assert_eq!(ini["s"]["k"], "v # not a comment");
        assert_eq!(ini["s"]["multi.a"], "1");
    }
}
