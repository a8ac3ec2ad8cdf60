//! Our port of Python's `getopt.getopt` (`src/cli/getopt.rs`) against
//! Python's own, on repozo's option tables and on random ones.
//!
//! Python runs `tests/py/getopt_oracle.py` once per test process and
//! answers one JSON line per argument list, so a property test of a
//! thousand cases takes about a second. The interpreter is the venv's
//! (the one ZODB's repozo runs under) if the venv exists, else `python3`
//! on `PATH`; if neither starts, the tests fail, they do not skip.
//!
//! For every argument list the options (name and value: Python gives `''`
//! for an option without a value, where we give `None`) and the operands
//! left over must be identical, or the `GetoptError.msg` must equal our
//! error string. `REPOZO_PROPTEST_CASES` sets the number of random cases
//! per property (default 512).

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use proptest::prelude::*;
use proptest::sample::{Index as Pick, select};
use repozo::cli::getopt::getopt;
use repozo::cli::{LONG_OPTS, SHORT_OPTS};

// ---- a minimal JSON writer and reader ------------------------------------

fn json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_str_array(items: &[impl AsRef<str>], out: &mut String) {
    out.push('[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(s.as_ref(), out);
    }
    out.push(']');
}

/// The JSON values the oracle answers with.
#[derive(Debug)]
enum Json {
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

struct Reader<'a> {
    s: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn parse(text: &str) -> Json {
        let mut r = Reader {
            s: text.as_bytes(),
            i: 0,
        };
        let v = r.value();
        r.ws();
        assert_eq!(r.i, r.s.len(), "trailing text in oracle answer {text:?}");
        v
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) {
        self.ws();
        assert_eq!(
            self.s.get(self.i),
            Some(&b),
            "oracle answer: expected {:?} at byte {}",
            b as char,
            self.i
        );
        self.i += 1;
    }

    fn peek(&mut self) -> u8 {
        self.ws();
        *self.s.get(self.i).expect("oracle answer ends early")
    }

    fn value(&mut self) -> Json {
        match self.peek() {
            b'"' => Json::Str(self.string()),
            b'[' => {
                self.eat(b'[');
                let mut v = Vec::new();
                if self.peek() == b']' {
                    self.i += 1;
                    return Json::Arr(v);
                }
                loop {
                    v.push(self.value());
                    if self.peek() == b',' {
                        self.i += 1;
                    } else {
                        self.eat(b']');
                        return Json::Arr(v);
                    }
                }
            }
            b'{' => {
                self.eat(b'{');
                let mut v = Vec::new();
                if self.peek() == b'}' {
                    self.i += 1;
                    return Json::Obj(v);
                }
                loop {
                    let k = self.string();
                    self.eat(b':');
                    v.push((k, self.value()));
                    if self.peek() == b',' {
                        self.i += 1;
                    } else {
                        self.eat(b'}');
                        return Json::Obj(v);
                    }
                }
            }
            c => panic!("unexpected {:?} in oracle answer", c as char),
        }
    }

    fn hex4(&mut self) -> u32 {
        let h = std::str::from_utf8(&self.s[self.i..self.i + 4]).unwrap();
        self.i += 4;
        u32::from_str_radix(h, 16).unwrap()
    }

    fn string(&mut self) -> String {
        self.eat(b'"');
        let mut bytes = Vec::new();
        loop {
            let b = self.s[self.i];
            self.i += 1;
            match b {
                b'"' => return String::from_utf8(bytes).expect("UTF-8 in oracle answer"),
                b'\\' => {
                    let e = self.s[self.i];
                    self.i += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4();
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                assert_eq!(&self.s[self.i..self.i + 2], b"\\u");
                                self.i += 2;
                                let lo = self.hex4();
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            char::from_u32(code).expect("a lone surrogate in oracle answer")
                        }
                        e => panic!("bad escape \\{} in oracle answer", e as char),
                    };
                    let mut buf = [0u8; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                b => bytes.push(b),
            }
        }
    }
}

impl Json {
    fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            other => panic!("expected a string, got {other:?}"),
        }
    }

    fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(v) => v,
            other => panic!("expected an array, got {other:?}"),
        }
    }
}

// ---- the oracle ----------------------------------------------------------

/// What getopt made of an argument list: options as (name, value) with
/// Python's `''` for "no value", and the operands; or the error message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Parsed {
        opts: Vec<(String, String)>,
        operands: Vec<String>,
    },
    Error(String),
}

struct Oracle {
    python: PathBuf,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

fn python() -> PathBuf {
    let venv = common::py::venv_dir().join("bin").join("python");
    if venv.is_file() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

impl Oracle {
    fn start() -> Self {
        let python = python();
        let script = common::py::repo_root()
            .join("tests")
            .join("py")
            .join("getopt_oracle.py");
        let mut child = Command::new(&python)
            .arg(&script)
            .env_remove("PYTHONPATH")
            .env_remove("PYTHONHOME")
            .env_remove("PYTHONSTARTUP")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "\n==== CANNOT START PYTHON ====\n`{} {}`: {e}\n\
                     This test compares our getopt with Python's; it is NOT skipped. \
                     Install python3 or provision the venv (scripts/setup-venv.sh).\n",
                    python.display(),
                    script.display()
                )
            });
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Oracle {
            python,
            child,
            stdin,
            stdout,
        }
    }

    fn ask(&mut self, args: &[String], short: &str, long: &[&str]) -> Outcome {
        let mut req = String::from("{\"args\":");
        json_str_array(args, &mut req);
        req.push_str(",\"short\":");
        json_str(short, &mut req);
        req.push_str(",\"long\":");
        json_str_array(long, &mut req);
        req.push_str("}\n");
        let mut line = String::new();
        let sent = self
            .stdin
            .write_all(req.as_bytes())
            .and_then(|()| self.stdin.flush());
        let got = sent.and_then(|()| self.stdout.read_line(&mut line));
        if !matches!(got, Ok(n) if n > 0) {
            let status = self.child.try_wait();
            panic!(
                "{} {}: no answer ({got:?}, process status {status:?}) for {args:?}",
                self.python.display(),
                "tests/py/getopt_oracle.py"
            );
        }
        let Json::Obj(fields) = Reader::parse(&line) else {
            panic!("oracle answer is not an object: {line}");
        };
        let field = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v);
        if let Some(e) = field("error") {
            return Outcome::Error(e.str().to_string());
        }
        if let Some(c) = field("crash") {
            panic!("Python's getopt raised {} for {args:?}", c.str());
        }
        let opts = field("opts")
            .expect("opts")
            .arr()
            .iter()
            .map(|pair| {
                let p = pair.arr();
                assert_eq!(p.len(), 2, "an option pair: {pair:?}");
                (p[0].str().to_string(), p[1].str().to_string())
            })
            .collect();
        let operands = field("args")
            .expect("args")
            .arr()
            .iter()
            .map(|a| a.str().to_string())
            .collect();
        Outcome::Parsed { opts, operands }
    }
}

/// Python's answer for `args` with these tables, from the one oracle
/// process of this test binary.
fn python_getopt(args: &[String], short: &str, long: &[&str]) -> Outcome {
    static ORACLE: OnceLock<Mutex<Oracle>> = OnceLock::new();
    let oracle = ORACLE.get_or_init(|| Mutex::new(Oracle::start()));
    let mut guard = oracle.lock().unwrap_or_else(|e| e.into_inner());
    guard.ask(args, short, long)
}

/// Our answer, in the same shape. Also checks that a value is `None`
/// exactly for options the tables declare without one.
fn our_getopt(args: &[String], short: &str, long: &[&str]) -> Outcome {
    match getopt(args, short, long) {
        Err(msg) => Outcome::Error(msg),
        Ok((opts, operands)) => Outcome::Parsed {
            opts: opts
                .into_iter()
                .map(|o| {
                    // A name is `-` and one character (a short option) or
                    // `--` and a long name; `--` itself is either the short
                    // option `-` or the long option ``.
                    let rest = &o.name[1..];
                    let mut may_take = Vec::new();
                    let mut chars = rest.chars();
                    if let (Some(c), None) = (chars.next(), chars.next()) {
                        may_take.push(short_takes_value(short, c));
                    }
                    if let Some(n) = o.name.strip_prefix("--") {
                        may_take.push(long_takes_value(long, n));
                    }
                    assert!(
                        may_take.contains(&o.value.is_some()),
                        "{} has value {:?} (args {args:?}, tables {short:?} {long:?})",
                        o.name,
                        o.value
                    );
                    (o.name, o.value.unwrap_or_default())
                })
                .collect(),
            operands,
        },
    }
}

/// Whether the short option `c` is declared with a value (`c:`).
fn short_takes_value(short: &str, c: char) -> bool {
    short
        .char_indices()
        .find(|&(_, s)| s == c && c != ':')
        .is_some_and(|(i, _)| short[i + c.len_utf8()..].starts_with(':'))
}

/// Whether the long option `name` (in full) takes a value: an exact match
/// without `=` wins over `name=`.
fn long_takes_value(long: &[&str], name: &str) -> bool {
    !long.contains(&name) && long.contains(&format!("{name}=").as_str())
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Random cases per property: `REPOZO_PROPTEST_CASES`, default 512.
fn cases() -> u32 {
    match std::env::var("REPOZO_PROPTEST_CASES") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("REPOZO_PROPTEST_CASES={v:?} is not a number")),
        Err(_) => 512,
    }
}

// ---- fixed cases ---------------------------------------------------------

/// Argument lists that exercise each rule of Python's getopt.
const TRICKY: &[&[&str]] = &[
    &[],
    &[""],
    &["", "-B"],
    &["-B"],
    &["-BQz"],
    &["-Rv"],
    &["-vvv"],
    &["-rdir"],
    &["-r"],
    &["-r", "dir"],
    &["-r", "-B"],
    &["-r", "--"],
    &["-r", ""],
    &["-Br"],
    &["-Br", "x"],
    &["-rB"],
    &["-BQrdir", "-f", "Data.fs"],
    &["-Bf"],
    &["-hr"],
    &["-h", "-X"],
    &["-X", "-h"],
    &["x"],
    &["x", "-B"],
    &["-"],
    &["-", "-B"],
    &["-B", "-"],
    &["--"],
    &["--", "-B"],
    &["-B", "--", "--", "x"],
    &["--rep=a"],
    &["--repository"],
    &["--repository", "a"],
    &["--repository", "--"],
    &["--repository="],
    &["--repository=a=b"],
    &["--repository==a"],
    &["--rep", "--"],
    &["--r"],
    &["--r", "x"],
    &["--re"],
    &["--rec"],
    &["--b"],
    &["--qu"],
    &["--q"],
    &["--g"],
    &["--date="],
    &["--date"],
    &["--d=2026"],
    &["--kill-old-on-full"],
    &["--k"],
    &["--kill"],
    &["--kill-old-on-full=1"],
    &["--kill-old-on-full="],
    &["--with-verify"],
    &["--w"],
    &["--with-verify="],
    &["--with-verification"],
    &["--foo"],
    &["--foo=bar"],
    &["--Backup"],
    &["-X"],
    &["-BX"],
    &["-B:"],
    &["-:"],
    &["-r:"],
    &["--="],
    &["--=x"],
    &["---"],
    &["---x"],
    &["--v"],
    &["--ver"],
    &["--verb"],
    &["--veri"],
    &["--verbose="],
    &["--h"],
    &["--help=x"],
    &["--f"],
    &["--fi"],
    &["--fu"],
    &["--fu=1"],
    &["--file"],
    &["-f"],
    &["--o", "out"],
    &["--output=out put"],
    &["-o", ""],
    &["-D", ""],
    &["-r", "a b", "-f", "c=d"],
    &["-é"],
    &["-Bé"],
    &["-rré"],
    &["--é"],
    &["--rép"],
    &["--repository=ünï"],
    &["ünïcode", "-B"],
    &["-\u{0}"],
    &["--\u{0}"],
    &["-r", "\u{0}"],
    &[" -B"],
    &["-B "],
    &["- B"],
    &["-\t"],
    &["-Rv", "-D2026-11-26", "-oout.fs", "-w"],
    &[
        "--backup",
        "-f",
        "var/filestorage/Data.fs",
        "-r",
        "var/backups",
        "--quick",
        "--gzip",
    ],
    &[
        "-B", "-F", "-Q", "-z", "-k", "-v", "--full", "--quick", "--gzip",
    ],
    &["-V", "-Q", "-r", "repo", "extra", "-B"],
];

#[test]
fn our_getopt_agrees_with_pythons_on_tricky_argument_lists() {
    let mut mismatches = Vec::new();
    for case in TRICKY {
        let args = strings(case);
        let theirs = python_getopt(&args, SHORT_OPTS, LONG_OPTS);
        let ours = our_getopt(&args, SHORT_OPTS, LONG_OPTS);
        if ours != theirs {
            mismatches.push(format!(
                "{args:?}\n    python: {theirs:?}\n    ours:   {ours:?}"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} argument lists differ:\n{}",
        mismatches.len(),
        TRICKY.len(),
        mismatches.join("\n")
    );
}

#[test]
fn our_getopt_agrees_with_pythons_on_tricky_tables() {
    // Rules repozo's tables do not reach: an exact long match that is also
    // a prefix of another, "name" and "name=" both declared, the empty
    // long name, a leading or doubled ':', a non-ASCII short option and
    // the short option '-' (whose name `--` is also the empty long name's).
    let tables: &[(&str, &[&str])] = &[
        ("a:b", &["ab", "abc=", "b", "b="]),
        (":a::é:", &["", "é=", "éa"]),
        ("", &[]),
        ("ab", &["x", "x"]),
        ("a-:", &["", "b"]),
    ];
    let lists: &[&[&str]] = &[
        &["--ab"],
        &["--ab=1"],
        &["--a"],
        &["--abc"],
        &["--abc", "v"],
        &["--b"],
        &["--b=1"],
        &["--="],
        &["--=v"],
        &["--é", "v"],
        &["--éa=1"],
        &["-a"],
        &["-a", "v"],
        &["-:"],
        &["-aé"],
        &["-é"],
        &["-é", "v"],
        &["-b", "-a"],
        &["--x"],
        &["-x"],
        &["--", "-a"],
        &["-a-", "v"],
        &["-a-v"],
    ];
    let mut mismatches = Vec::new();
    for (short, long) in tables {
        for case in lists {
            let args = strings(case);
            let theirs = python_getopt(&args, short, long);
            let ours = our_getopt(&args, short, long);
            if ours != theirs {
                mismatches.push(format!(
                    "tables {short:?} {long:?}, args {args:?}\n    python: {theirs:?}\n    ours:   {ours:?}"
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

// ---- random cases --------------------------------------------------------

/// Whole arguments that matter to repozo's tables.
const FRAGMENTS: &[&str] = &[
    "-B",
    "-BQz",
    "-Rv",
    "-V",
    "-h",
    "-rdir",
    "-r",
    "-f",
    "-D",
    "-o",
    "-w",
    "x",
    "Data.fs",
    "-",
    "--",
    "---",
    "",
    " ",
    "--rep=a",
    "--repository",
    "--repository=",
    "--r",
    "--b",
    "--qu",
    "--v",
    "--ver",
    "--verif",
    "--date=",
    "--date=2026-11-26",
    "--kill-old-on-full",
    "--kill-old-on-full=",
    "--with-verify",
    "--with-verify=yes",
    "--output",
    "--help",
    "--foo",
    "--=",
    "-X",
    "-:",
    "a=b",
    "a b",
    "ünïcode",
    "-é",
    "--é",
];

/// Values: typical, awkward (`=`, spaces, empty, dashes) and arbitrary.
fn value() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(&["", "=", "a=b", "a b", "-", "--", "-B", "dir", "é", " "][..])
            .prop_map(str::to_owned),
        3 => "[a-z =.é-]{0,5}",
        1 => any::<String>(),
    ]
    .boxed()
}

/// Characters bundled after a single `-`.
const SHORT_CHARS: &[char] = &[
    'B', 'R', 'V', 'v', 'h', 'r', 'f', 'F', 'Q', 'z', 'k', 'D', 'o', 'w', 'X', 'x', ':', '-', '=',
    ' ', 'é',
];

fn fragment() -> BoxedStrategy<String> {
    let extra_longs = ["foo", "é", "repositoryx", ""];
    let long_names: Vec<String> = LONG_OPTS
        .iter()
        .map(|o| o.trim_end_matches('=').to_string())
        .chain(extra_longs.iter().map(|s| s.to_string()))
        .collect();
    prop_oneof![
        5 => select(FRAGMENTS).prop_map(str::to_owned),
        3 => (
            prop::collection::vec(select(SHORT_CHARS), 0..5),
            prop::option::of(value()),
        )
            .prop_map(|(cs, tail)| {
                format!("-{}{}", cs.into_iter().collect::<String>(), tail.unwrap_or_default())
            }),
        3 => (select(long_names), any::<Pick>(), prop::option::of(value())).prop_map(
            |(name, cut, v)| {
                let chars: Vec<char> = name.chars().collect();
                let prefix: String = chars[..cut.index(chars.len() + 1)].iter().collect();
                match v {
                    Some(v) => format!("--{prefix}={v}"),
                    None => format!("--{prefix}"),
                }
            }
        ),
        2 => value(),
    ]
    .boxed()
}

fn check(args: &[String], short: &str, long: &[&str]) -> Result<(), TestCaseError> {
    let theirs = python_getopt(args, short, long);
    let ours = our_getopt(args, short, long);
    prop_assert_eq!(
        &ours,
        &theirs,
        "args {:?} with tables {:?} {:?}",
        args,
        short,
        long
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        ..ProptestConfig::default()
    })]

    #[test]
    fn our_getopt_agrees_with_pythons_on_random_argument_lists(
        args in prop::collection::vec(fragment(), 0..8),
    ) {
        check(&args, SHORT_OPTS, LONG_OPTS)?;
    }

    #[test]
    fn our_getopt_agrees_with_pythons_on_random_tables(
        short in "[abé:-]{0,6}",
        long in prop::collection::vec("[abé-]{0,3}=?", 0..5),
        args in prop::collection::vec(
            prop_oneof![
                "-[abcé:= -]{0,4}",
                "--[abcé= -]{0,4}",
                "[a -]{0,2}",
            ],
            0..6,
        ),
    ) {
        let long: Vec<&str> = long.iter().map(String::as_str).collect();
        check(&args, &short, &long)?;
    }
}
