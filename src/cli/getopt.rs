//! A port of the semantics of Python's `getopt.getopt` (POSIX mode).
//!
//! Hand-written rather than taken from a crate because wrappers call repozo
//! with argument lists that only Python's getopt accepts exactly this way:
//! bundled short flags with an attached value (`-BQrdir`), any unique prefix
//! of a long option (`--repo=dir`), parsing that stops at the first operand,
//! and error messages worded the way Python words them. None of clap, lexopt
//! or pico-args reproduce all four.

/// One option as recognised by [`getopt`]: its canonical name (`-B` or
/// `--backup`) and its value, if it takes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opt {
    /// The option name as Python reports it: `-x` for a short option,
    /// `--name` (the full name, never the prefix typed) for a long one.
    pub name: String,
    /// The value, for options declared to take one; `None` otherwise.
    pub value: Option<String>,
}

/// What [`getopt`] returns: the options in command-line order and the
/// operands left over once parsing stopped.
pub type Parsed = (Vec<Opt>, Vec<String>);

/// Parses `args` like Python's `getopt.getopt(args, shortopts, longopts)`.
///
/// `shortopts` uses getopt's syntax (`"r:"` means `-r` takes a value);
/// `longopts` lists long names, with a trailing `=` for those taking a value.
/// Parsing stops at `--` (which is dropped) or at the first argument that
/// does not start with `-` (or is exactly `-`); everything from there on is
/// returned as operands. The error string is exactly Python's
/// `GetoptError` message.
pub fn getopt(args: &[String], shortopts: &str, longopts: &[&str]) -> Result<Parsed, String> {
    getopt_exact(args, shortopts, longopts, &[])
}

/// [`getopt`], plus long options that match only by their exact name.
///
/// `exact` lists options this tool adds to repozo's, with a trailing `=`
/// for those taking a value (`--keep=3` or `--keep 3`). `--<name>` for a
/// name in `exact` is recognised as such; no abbreviation of it is, and
/// none of them takes part in resolving the abbreviations of `longopts`,
/// so every argument list that ZODB 6.4's repozo accepts means the same
/// here.
pub fn getopt_exact(
    args: &[String],
    shortopts: &str,
    longopts: &[&str],
    exact: &[&str],
) -> Result<Parsed, String> {
    let mut opts = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            i += 1;
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let flag = exact.contains(&name);
            let valued = exact.iter().any(|e| e.strip_suffix('=') == Some(name));
            if flag || valued {
                let value = match (valued, value) {
                    (false, Some(_)) => {
                        return Err(format!("option --{name} must not have an argument"));
                    }
                    (false, None) => None,
                    (true, Some(v)) => Some(v),
                    (true, None) => {
                        i += 1;
                        let Some(v) = args.get(i) else {
                            return Err(format!("option --{name} requires argument"));
                        };
                        Some(v.clone())
                    }
                };
                opts.push(Opt {
                    name: format!("--{name}"),
                    value,
                });
                i += 1;
                continue;
            }
            i = do_long(&mut opts, long, longopts, args, i + 1)?;
        } else {
            i = do_shorts(&mut opts, &arg[1..], shortopts, args, i + 1)?;
        }
    }
    Ok((opts, args[i..].to_vec()))
}

/// Handles one `--name[=value]` argument; returns the index of the next
/// unconsumed argument.
fn do_long(
    opts: &mut Vec<Opt>,
    text: &str,
    longopts: &[&str],
    args: &[String],
    mut next: usize,
) -> Result<usize, String> {
    let (name, mut value) = match text.split_once('=') {
        Some((n, v)) => (n, Some(v.to_string())),
        None => (text, None),
    };
    let (full, has_arg) = long_has_args(name, longopts)?;
    if has_arg {
        if value.is_none() {
            let Some(v) = args.get(next) else {
                return Err(format!("option --{full} requires argument"));
            };
            value = Some(v.clone());
            next += 1;
        }
    } else if value.is_some() {
        return Err(format!("option --{full} must not have an argument"));
    }
    opts.push(Opt {
        name: format!("--{full}"),
        value,
    });
    Ok(next)
}

/// Resolves a possibly abbreviated long option name, as Python's
/// `long_has_args` does: an exact match wins, otherwise the prefix must be
/// unique.
fn long_has_args(name: &str, longopts: &[&str]) -> Result<(String, bool), String> {
    let candidates: Vec<&str> = longopts
        .iter()
        .copied()
        .filter(|o| o.starts_with(name))
        .collect();
    if candidates.is_empty() {
        return Err(format!("option --{name} not recognized"));
    }
    if candidates.contains(&name) {
        return Ok((name.to_string(), false));
    }
    let with_eq = format!("{name}=");
    if candidates.contains(&with_eq.as_str()) {
        return Ok((name.to_string(), true));
    }
    if candidates.len() > 1 {
        return Err(format!("option --{name} not a unique prefix"));
    }
    let only = candidates[0];
    match only.strip_suffix('=') {
        Some(n) => Ok((n.to_string(), true)),
        None => Ok((only.to_string(), false)),
    }
}

/// Handles one argument of bundled short options (without its leading `-`);
/// returns the index of the next unconsumed argument.
fn do_shorts(
    opts: &mut Vec<Opt>,
    text: &str,
    shortopts: &str,
    args: &[String],
    mut next: usize,
) -> Result<usize, String> {
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        let Some(at) = shortopts.find(c).filter(|_| c != ':') else {
            return Err(format!("option -{c} not recognized"));
        };
        let takes_value = shortopts[at + c.len_utf8()..].starts_with(':');
        let value = if takes_value {
            if rest.is_empty() {
                let Some(v) = args.get(next) else {
                    return Err(format!("option -{c} requires argument"));
                };
                next += 1;
                Some(v.clone())
            } else {
                let v = rest.to_string();
                rest = "";
                Some(v)
            }
        } else {
            None
        };
        opts.push(Opt {
            name: format!("-{c}"),
            value,
        });
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: &str = "BRVvhr:f:FQzkD:o:w";
    const LONG: &[&str] = &[
        "backup",
        "verify",
        "verbose",
        "repository=",
        "file=",
        "full",
    ];

    fn parse(args: &[&str]) -> Result<Parsed, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        getopt(&args, SHORT, LONG)
    }

    fn names(p: &Parsed) -> Vec<(String, Option<String>)> {
        p.0.iter()
            .map(|o| (o.name.clone(), o.value.clone()))
            .collect()
    }

    #[test]
    fn bundled_short_flags_take_the_rest_of_the_word_as_a_value() {
        let p = parse(&["-BQrdir", "-f", "Data.fs"]).unwrap();
        assert_eq!(
            names(&p),
            vec![
                ("-B".into(), None),
                ("-Q".into(), None),
                ("-r".into(), Some("dir".into())),
                ("-f".into(), Some("Data.fs".into())),
            ]
        );
    }

    #[test]
    fn a_unique_long_prefix_is_expanded_to_the_full_name() {
        let p = parse(&["--rep=x", "--back", "--fi", "y"]).unwrap();
        assert_eq!(
            names(&p),
            vec![
                ("--repository".into(), Some("x".into())),
                ("--backup".into(), None),
                ("--file".into(), Some("y".into())),
            ]
        );
    }

    #[test]
    fn options_of_our_own_match_only_by_their_exact_name() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let exact = &["incremental", "no-fallback"];
        let (opts, rest) =
            getopt_exact(&args(&["-R", "--incremental", "x"]), SHORT, LONG, exact).unwrap();
        assert_eq!(opts[1].name, "--incremental");
        assert_eq!(rest, vec!["x"]);
        assert_eq!(
            getopt_exact(&args(&["--incr"]), SHORT, LONG, exact).unwrap_err(),
            "option --incr not recognized"
        );
        assert_eq!(
            getopt_exact(&args(&["--incremental=1"]), SHORT, LONG, exact).unwrap_err(),
            "option --incremental must not have an argument"
        );
        let exact = &["incremental", "keep="];
        let (opts, _) =
            getopt_exact(&args(&["--keep=3", "--keep", "4"]), SHORT, LONG, exact).unwrap();
        assert_eq!(opts[0].value.as_deref(), Some("3"));
        assert_eq!(opts[1].value.as_deref(), Some("4"));
        assert_eq!(
            getopt_exact(&args(&["--keep"]), SHORT, LONG, exact).unwrap_err(),
            "option --keep requires argument"
        );
        // repozo's own abbreviations resolve as before.
        let (opts, _) = getopt_exact(&args(&["--backu"]), SHORT, LONG, exact).unwrap();
        assert_eq!(opts[0].name, "--backup");
    }

    #[test]
    fn an_ambiguous_long_prefix_is_an_error() {
        assert_eq!(
            parse(&["--ver"]).unwrap_err(),
            "option --ver not a unique prefix"
        );
        assert_eq!(
            parse(&["--f"]).unwrap_err(),
            "option --f not a unique prefix"
        );
    }

    #[test]
    fn parsing_stops_at_the_first_operand() {
        let p = parse(&["-B", "foo", "-r", "repo"]).unwrap();
        assert_eq!(p.1, vec!["foo", "-r", "repo"]);
    }

    #[test]
    fn a_double_dash_ends_the_options_and_is_dropped() {
        let p = parse(&["-V", "--", "extra"]).unwrap();
        assert_eq!(p.1, vec!["extra"]);
    }

    #[test]
    fn errors_are_worded_as_python_words_them() {
        assert_eq!(parse(&["-x"]).unwrap_err(), "option -x not recognized");
        assert_eq!(
            parse(&["--crash"]).unwrap_err(),
            "option --crash not recognized"
        );
        assert_eq!(parse(&["-r"]).unwrap_err(), "option -r requires argument");
        assert_eq!(
            parse(&["--repo"]).unwrap_err(),
            "option --repository requires argument"
        );
        assert_eq!(
            parse(&["--fu=1"]).unwrap_err(),
            "option --full must not have an argument"
        );
    }

    #[test]
    fn a_lone_dash_is_an_operand() {
        let p = parse(&["-B", "-"]).unwrap();
        assert_eq!(p.1, vec!["-"]);
    }
}
