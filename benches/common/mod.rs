//! What the `cargo bench` programs (`harness = false`) share: their
//! command line.

/// The arguments given after `cargo bench --bench NAME --`, without the
/// `--bench` flag cargo passes too. Never empty: without a first argument
/// (the file to measure) prints `usage` and exits with status 2.
pub fn args(usage: &str) -> Vec<String> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.is_empty() {
        eprintln!("usage: {usage}");
        std::process::exit(2);
    }
    args
}
