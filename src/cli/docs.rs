//! A man page and shell completions, generated from the same tables as the
//! command line (`repozo --man`, `repozo --completions=SHELL`), so they
//! cannot drift from what the parser accepts.

use super::usage::{help_text, version_line};
use super::{EXACT_OPTS, LONG_OPTS, SHORT_OPTS};

/// What an option's value is, for completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    None,
    Dir,
    File,
    Text,
}

/// Every option: short letter (if any), long name, value kind, one line
/// of description.
const OPTIONS: &[(Option<char>, &str, Value, &str)] = &[
    (Some('B'), "backup", Value::None, "back up the Data.fs"),
    (
        Some('R'),
        "recover",
        Value::None,
        "restore a Data.fs from the backups",
    ),
    (Some('V'), "verify", Value::None, "verify the backups"),
    (None, "list", Value::None, "list the restore points"),
    (Some('v'), "verbose", Value::None, "log what is done"),
    (Some('h'), "help", Value::None, "print the help and exit"),
    (None, "version", Value::None, "print the version and exit"),
    (Some('r'), "repository", Value::Dir, "repository directory"),
    (Some('f'), "file", Value::File, "source Data.fs"),
    (Some('F'), "full", Value::None, "force a full backup"),
    (Some('Q'), "quick", Value::None, "quick checks (see -h)"),
    (Some('z'), "gzip", Value::None, "compress new backup files"),
    (
        Some('k'),
        "kill-old-on-full",
        Value::None,
        "after a full backup, remove older ones",
    ),
    (Some('D'), "date", Value::Text, "state as of this UTC date"),
    (Some('o'), "output", Value::File, "recover into this file"),
    (
        Some('w'),
        "with-verify",
        Value::None,
        "log each file's check while recovering",
    ),
    (
        None,
        "no-verify",
        Value::None,
        "recover without checking the files",
    ),
    (
        None,
        "incremental",
        Value::None,
        "bring an existing output up to date",
    ),
    (
        None,
        "no-fallback",
        Value::None,
        "with --incremental: never recover in full",
    ),
    (
        None,
        "deep",
        Value::None,
        "with -V: check the chain as a FileStorage",
    ),
    (
        None,
        "md5",
        Value::None,
        "with -R/-V: check with md5, not the BLAKE3 sidecars",
    ),
    (
        None,
        "pack-delta",
        Value::None,
        "with -B: after a pack, store the Data.fs as a delta",
    ),
    (
        None,
        "blob-dir",
        Value::Text,
        "with -B/-R: back up or restore the blob directory too",
    ),
    (
        None,
        "metrics-file",
        Value::File,
        "write Prometheus metrics of the run to this file",
    ),
    (
        None,
        "max-age",
        Value::Text,
        "with -V: exit 13 if the newest backup is older (26h, 2d)",
    ),
    (None, "json", Value::None, "JSON lines on standard output"),
    (None, "no-progress", Value::None, "no progress bar"),
    (None, "keep", Value::Text, "keep the N newest chains"),
    (
        None,
        "keep-daily",
        Value::Text,
        "keep the newest restore point of N days",
    ),
    (
        None,
        "keep-weekly",
        Value::Text,
        "keep the newest restore point of N weeks",
    ),
    (
        None,
        "keep-monthly",
        Value::Text,
        "keep the newest restore point of N months",
    ),
    (
        None,
        "dry-run",
        Value::None,
        "with --keep options: only say what would go",
    ),
    (None, "man", Value::None, "print the man page and exit"),
    (
        None,
        "completions",
        Value::Text,
        "print shell completions (bash, zsh, fish)",
    ),
];

/// The shells [`completions`] knows.
pub const SHELLS: &[&str] = &["bash", "zsh", "fish"];

/// The man page of `command` (`repozo`, or `repozo-rs`), in roff: name,
/// synopsis, the help text as the description, and the exit status.
pub fn man_page(command: &str) -> String {
    let mut out = format!(
        ".TH {title} 1 \"\" \"{version}\" \"User Commands\"\n\
         .SH NAME\n{name} \\- incremental and full backups of a ZODB FileStorage (Data.fs)\n\
         .SH SYNOPSIS\n.B {name}\n\\-B | \\-R | \\-V | \\-\\-list \\-r \\fIdir\\fR [\\fIoptions\\fR]\n\
         .SH DESCRIPTION\n.nf\n",
        title = roff(&command.to_uppercase()),
        name = roff(command),
        version = roff(&version_line(command)),
    );
    for line in help_text(command).lines() {
        out.push_str(&roff_line(line));
        out.push('\n');
    }
    out.push_str(
        ".fi\n.SH \"EXIT STATUS\"\n.TP\n0\nsuccess, including \"nothing to do\"\n.TP\n1\nany error\n\
         .TP\n3\nwritten, but some blob files were found nowhere (\\-\\-blob\\-dir)\n\
         .TP\n10\nthe repository does not exist\n.TP\n11\nthe repository (or, with \
         \\-\\-incremental, the output) is locked by another process\n.TP\n13\n\\-V \\-\\-max\\-age: \
         the newest backup is older than the limit, or there is none\n.TP\n130\ninterrupted \
         (SIGINT, SIGTERM)\n.SH \"SEE ALSO\"\nThe README of repozo in Rust; ZODB's repozo.\n",
    );
    out
}

/// `text` with roff's special characters escaped.
fn roff(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

/// One line of no-fill text: escaped, and protected from being read as a
/// request when it starts with `.` or `'`.
fn roff_line(line: &str) -> String {
    let escaped = roff(line);
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// The completion script of `command` (`repozo`, or `repozo-rs`) for
/// `shell`, or `None` for a shell it does not know ([`SHELLS`]).
pub fn completions(shell: &str, command: &str) -> Option<String> {
    match shell {
        "bash" => Some(bash(command)),
        "zsh" => Some(zsh(command)),
        "fish" => Some(fish(command)),
        _ => None,
    }
}

fn takes_value(v: Value) -> bool {
    v != Value::None
}

fn bash(command: &str) -> String {
    let words: Vec<String> = OPTIONS
        .iter()
        .flat_map(|(s, l, v, _)| {
            let long = if takes_value(*v) {
                format!("--{l}=")
            } else {
                format!("--{l}")
            };
            s.map(|c| format!("-{c}")).into_iter().chain([long])
        })
        .collect();
    let with = |kind: Value| -> String {
        OPTIONS
            .iter()
            .filter(|o| o.2 == kind)
            .flat_map(|(s, l, _, _)| {
                s.map(|c| format!("-{c}"))
                    .into_iter()
                    .chain([format!("--{l}")])
            })
            .collect::<Vec<_>>()
            .join("|")
    };
    format!(
        "# bash completion for {command} ({command} --completions=bash)\n\
         {function}() {{\n\
         \x20   local cur prev\n\
         \x20   cur=\"${{COMP_WORDS[COMP_CWORD]}}\"\n\
         \x20   prev=\"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         \x20   case \"$prev\" in\n\
         \x20       {dirs}) COMPREPLY=($(compgen -d -- \"$cur\")); return ;;\n\
         \x20       {files}) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n\
         \x20       {texts}) return ;;\n\
         \x20   esac\n\
         \x20   case \"$cur\" in\n\
         \x20       --repository=*) COMPREPLY=($(compgen -d -- \"${{cur#*=}}\")); return ;;\n\
         \x20       --file=*|--output=*|--metrics-file=*) COMPREPLY=($(compgen -f -- \"${{cur#*=}}\")); return ;;\n\
         \x20   esac\n\
         \x20   COMPREPLY=($(compgen -W \"{words}\" -- \"$cur\"))\n\
         }}\n\
         complete -o filenames -o nospace -F {function} {command}\n",
        function = format!(
            "_{}",
            command.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        ),
        dirs = with(Value::Dir),
        files = with(Value::File),
        texts = with(Value::Text),
        words = words.join(" "),
    )
}

/// `text` for the inside of a single-quoted shell word (zsh, fish): each
/// `'` closes the quotes, is escaped, and reopens them.
fn single_quoted(text: &str) -> String {
    text.replace('\'', r"'\''")
}

fn zsh(command: &str) -> String {
    let mut out = format!(
        "#compdef {command}\n# zsh completion for {command} ({command} --completions=zsh)\n\
         _arguments -s \\\n",
    );
    for (s, l, v, d) in OPTIONS {
        let action = match v {
            Value::None => String::new(),
            Value::Dir => ":dir:_files -/".to_string(),
            Value::File => ":file:_files".to_string(),
            Value::Text => ":value: ".to_string(),
        };
        let eq = if takes_value(*v) { "=" } else { "" };
        match s {
            Some(c) => out.push_str(&format!(
                "  '(-{c} --{l})'{{-{c},--{l}{eq}}}'[{d}]{action}' \\\n",
                d = single_quoted(d)
            )),
            None => out.push_str(&format!(
                "  '--{l}{eq}[{d}]{action}' \\\n",
                d = single_quoted(d)
            )),
        }
    }
    out.push_str("  && return 0\n");
    out
}

fn fish(command: &str) -> String {
    let mut out = format!("# fish completion for {command} ({command} --completions=fish)\n");
    for (s, l, v, d) in OPTIONS {
        let mut line = format!("complete -c {command}");
        if let Some(c) = s {
            line.push_str(&format!(" -s {c}"));
        }
        line.push_str(&format!(" -l {l}"));
        match v {
            Value::None => line.push_str(" -f"),
            Value::Dir => line.push_str(" -r -a '(__fish_complete_directories)'"),
            Value::File => line.push_str(" -r -F"),
            Value::Text => line.push_str(" -r -f"),
        }
        line.push_str(&format!(" -d '{}'\n", single_quoted(d)));
        out.push_str(&line);
    }
    out
}

/// Every option the parser accepts, as `-x` / `--name` (for tests).
pub fn parser_options() -> Vec<String> {
    let mut v: Vec<String> = SHORT_OPTS
        .chars()
        .filter(|c| *c != ':')
        .map(|c| format!("-{c}"))
        .collect();
    v.extend(
        LONG_OPTS
            .iter()
            .chain(EXACT_OPTS)
            .map(|o| format!("--{}", o.trim_end_matches('='))),
    );
    v
}

/// Every option the man page and completions describe.
pub fn documented_options() -> Vec<String> {
    OPTIONS
        .iter()
        .flat_map(|(s, l, _, _)| {
            s.map(|c| format!("-{c}"))
                .into_iter()
                .chain([format!("--{l}")])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_of_the_zsh_and_fish_completions_closes_its_single_quotes() {
        for shell in ["zsh", "fish"] {
            let script = completions(shell, "repozo").unwrap();
            for line in script.lines() {
                let quotes = line.replace(r"'\''", "").matches('\'').count();
                assert!(quotes % 2 == 0, "{shell}: unbalanced quotes in {line}");
            }
        }
        assert!(
            OPTIONS.iter().any(|(_, _, _, d)| d.contains('\'')),
            "the case is covered"
        );
    }

    #[test]
    fn the_completions_and_man_page_cover_exactly_the_options_the_parser_accepts() {
        let mut parsed = parser_options();
        let mut documented = documented_options();
        parsed.sort();
        documented.sort();
        assert_eq!(parsed, documented);
    }

    #[test]
    fn the_man_page_escapes_what_roff_would_read_as_requests() {
        let page = man_page("repozo");
        assert!(page.starts_with(".TH REPOZO 1 "));
        for line in page.lines().skip_while(|l| *l != ".nf").skip(1) {
            if line == ".fi" {
                break;
            }
            assert!(!line.starts_with('.') && !line.starts_with('\''), "{line}");
        }
        assert!(page.contains("\\-\\-incremental"));
    }

    #[test]
    fn every_shell_has_a_script_and_others_none() {
        for shell in SHELLS {
            assert!(completions(shell, "repozo").is_some_and(|s| s.contains("repozo")));
        }
        assert!(completions("tcsh", "repozo").is_none());
    }

    #[test]
    fn the_wheel_command_has_its_own_man_page_and_completions() {
        let page = man_page("repozo-rs");
        assert!(page.starts_with(".TH REPOZO\\-RS 1 \"\" \"repozo\\-rs "));
        assert!(page.contains(".B repozo\\-rs\n"));
        assert!(
            bash("repozo-rs")
                .contains("complete -o filenames -o nospace -F _repozo_rs repozo-rs\n")
        );
        assert!(zsh("repozo-rs").starts_with("#compdef repozo-rs\n"));
        assert!(fish("repozo-rs").contains("\ncomplete -c repozo-rs -s B -l backup"));
    }
}
