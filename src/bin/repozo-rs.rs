//! `repozo-rs`: the same program as `repozo` (src/main.rs) under the name
//! the wheel installs (pyproject.toml). A wheel must not ship a command
//! named `repozo`: pip would silently replace ZODB's `bin/repozo` with it,
//! and uninstalling the wheel would delete that file. Invoked through a
//! link named `repozo`, it behaves as `repozo` does, down to the usage
//! line (which names `argv[0]`, as ZODB's repozo does); `--version`,
//! `--man` and `--completions` name `repozo-rs`.

#[path = "../main.rs"]
mod repozo_main;

fn main() -> std::process::ExitCode {
    repozo_main::main()
}
