//! What `--list` and retention print: the library returns data
//! ([`RepositoryList`], [`RetentionOutcome`]); this turns it into text or
//! JSON lines. Every function returns the text, newline-terminated, for
//! `src/main.rs` to print.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter};

use crate::ops::list::{Blobs, RepositoryList};
use crate::ops::retention::RetentionOutcome;

/// `s` as a JSON string, quotes included (see [`to_json`] for the
/// escapes).
pub fn json_str(s: &str) -> String {
    to_json(&s)
}

/// `value` as one line of compact JSON, fields in declaration order.
///
/// Strings are escaped as this tool always has: `"`, `\\`, `\n`, `\r`,
/// `\t`, and every other character below U+0020 as `\u00xx` (lowercase
/// hex), where `serde_json`'s own compact form writes U+0008 and U+000C as
/// `\b` and `\f`. Both are valid JSON; keeping them makes the output of
/// `--list --json` byte for byte what it was.
fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    /// serde_json's compact form, with `\u0008` and `\u000c`.
    struct Compact;
    impl serde_json::ser::Formatter for Compact {
        fn write_char_escape<W: ?Sized + std::io::Write>(
            &mut self,
            w: &mut W,
            escape: CharEscape,
        ) -> std::io::Result<()> {
            match escape {
                CharEscape::Backspace => w.write_all(b"\\u0008"),
                CharEscape::FormFeed => w.write_all(b"\\u000c"),
                other => CompactFormatter.write_char_escape(w, other),
            }
        }
    }
    let mut out = Vec::new();
    value
        .serialize(&mut serde_json::Serializer::with_formatter(
            &mut out, Compact,
        ))
        .expect("plain data always serializes to a Vec");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// `--list` as a table: a column header, then per chain one header line
/// and one row per restore point, the chain's problems after its rows
/// (`!`), and a total.
pub fn list_text(list: &RepositoryList) -> String {
    let mut out = String::new();
    let end = |e: Option<u64>| e.map_or_else(|| "?".to_string(), |e| e.to_string());
    let points = || list.chains.iter().flat_map(|c| &c.points);
    let size_w = points()
        .map(|p| p.stored_size.to_string().len())
        .chain(["stored bytes".len()])
        .max()
        .unwrap_or(0);
    let end_w = points()
        .map(|p| end(p.end).len())
        .chain(["Data.fs end".len()])
        .max()
        .unwrap_or(0);
    // The blake3 column says which files have a fast-hash sidecar; the
    // blobs column appears once any backup was made with --blob-dir.
    let with_blobs = points().any(|p| p.blobs != Blobs::None);
    if !list.chains.is_empty() {
        let _ = writeln!(
            out,
            "  {:<19}  {:<11}  {:<4}  {:>size_w$}  {:>end_w$}  index  blake3{}",
            "stamp",
            "kind",
            "gzip",
            "stored bytes",
            "Data.fs end",
            if with_blobs { "  blobs" } else { "" }
        );
    }
    for chain in &list.chains {
        let n = chain.points.len();
        let _ = writeln!(
            out,
            "chain {}: {n} restore point{}, {} bytes stored",
            chain.stamp,
            if n == 1 { "" } else { "s" },
            chain.stored_size()
        );
        for p in &chain.points {
            let yes_no = |b: bool| if b { "yes" } else { "no" };
            let index = format!("{:<5}  {:<6}", yes_no(p.index), yes_no(p.sidecar));
            let index = match p.blobs {
                _ if !with_blobs => index,
                Blobs::None => format!("{index}  no"),
                Blobs::Listed { gone: 0 } => format!("{index}  yes"),
                Blobs::Listed { gone } => format!("{index}  {gone} missing"),
                Blobs::Unreadable => format!("{index}  damaged"),
            };
            // What pack deltas need, in a last column of its own: rows
            // without it end as they always have.
            let mut deps = Vec::new();
            if let Some(base) = &p.pack_delta_base {
                deps.push(format!("based on {base}"));
            }
            if let Some(delta) = &p.needed_by {
                deps.push(format!("needed by {delta}"));
            }
            let index = if deps.is_empty() {
                index.trim_end().to_string()
            } else {
                // The columns' width: with blobs, room for "N missing".
                let w = if with_blobs {
                    "index  blake3  9 missing".len()
                } else {
                    index.len()
                };
                format!("{index:<w$}  {}", deps.join("; "))
            };
            let _ = writeln!(
                out,
                "  {:<19}  {:<11}  {:<4}  {:>size_w$}  {:>end_w$}  {index}",
                p.stamp,
                p.kind.as_str(),
                yes_no(p.gzip),
                p.stored_size,
                end(p.end),
            );
        }
        for note in &chain.notes {
            let _ = writeln!(out, "  ! {note}");
        }
    }
    for orphan in &list.orphans {
        let _ = writeln!(out, "! {orphan} belongs to no backup file");
    }
    let chains = list.chains.len();
    let _ = writeln!(
        out,
        "{chains} chain{}, {} restore point{}, {} bytes stored",
        if chains == 1 { "" } else { "s" },
        list.restore_points(),
        if list.restore_points() == 1 { "" } else { "s" },
        list.stored_size()
    );
    out
}

/// One `restore_point` line of `--list --json`; fields in output order.
#[derive(Serialize)]
struct PointLine<'a> {
    message_type: &'static str,
    chain: &'a str,
    stamp: &'a str,
    kind: &'a str,
    gzip: bool,
    file: &'a str,
    stored_size: u64,
    end: Option<u64>,
    index: bool,
    blake3: bool,
    blobs: Option<BlobsField>,
    /// Only on a pack delta: the first file of the chain it is based on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pack_delta_base: Option<&'a str>,
    /// Only on a file a pack delta is based on: that delta.
    #[serde(skip_serializing_if = "Option::is_none")]
    needed_by: Option<&'a str>,
}

/// The `blobs` field of a restore point (`null` when it has no manifest).
#[derive(Serialize)]
#[serde(untagged)]
enum BlobsField {
    /// `{"missing":N}`: a manifest recording N missing revisions.
    Listed {
        /// How many.
        missing: u64,
    },
    /// `"damaged"`: a manifest that cannot be read.
    Damaged(&'static str),
}

/// A `warning` line of `--list --json` (`chain` null for an orphan).
#[derive(Serialize)]
struct WarningLine<'a> {
    message_type: &'static str,
    chain: Option<&'a str>,
    message: String,
}

/// The closing `summary` line of `--list --json`.
#[derive(Serialize)]
struct SummaryLine {
    message_type: &'static str,
    operation: &'static str,
    chains: usize,
    restore_points: usize,
    stored_bytes: u64,
}

/// `--list --json`: one `restore_point` object per data file, oldest
/// first, a `warning` object per problem, and a final `summary`.
pub fn list_json(list: &RepositoryList) -> String {
    let mut out = String::new();
    for chain in &list.chains {
        for p in &chain.points {
            push_line(
                &mut out,
                &PointLine {
                    message_type: "restore_point",
                    chain: &chain.stamp,
                    stamp: &p.stamp,
                    kind: p.kind.as_str(),
                    gzip: p.gzip,
                    file: &p.path,
                    stored_size: p.stored_size,
                    end: p.end,
                    index: p.index,
                    blake3: p.sidecar,
                    blobs: match p.blobs {
                        Blobs::None => None,
                        Blobs::Listed { gone } => Some(BlobsField::Listed { missing: gone }),
                        Blobs::Unreadable => Some(BlobsField::Damaged("damaged")),
                    },
                    pack_delta_base: p.pack_delta_base.as_deref(),
                    needed_by: p.needed_by.as_deref(),
                },
            );
        }
        for note in &chain.notes {
            push_line(
                &mut out,
                &WarningLine {
                    message_type: "warning",
                    chain: Some(&chain.stamp),
                    message: note.to_string(),
                },
            );
        }
    }
    for orphan in &list.orphans {
        push_line(
            &mut out,
            &WarningLine {
                message_type: "warning",
                chain: None,
                message: format!("{orphan} belongs to no backup file"),
            },
        );
    }
    push_line(
        &mut out,
        &SummaryLine {
            message_type: "summary",
            operation: "list",
            chains: list.chains.len(),
            restore_points: list.restore_points(),
            stored_bytes: list.stored_size(),
        },
    );
    out
}

/// Appends `value` to `out` as one JSON line.
fn push_line(out: &mut String, value: &impl Serialize) {
    out.push_str(&to_json(value));
    out.push('\n');
}

/// `--dry-run`'s report: each chain kept (and why) or removed, with the
/// files that would go, then a total line.
pub fn retention_plan(outcome: &RetentionOutcome) -> String {
    let mut out = String::new();
    for chain in &outcome.plan.chains {
        let n = chain.files.len();
        let files = format!("{n} data file{}", if n == 1 { "" } else { "s" });
        if chain.kept() {
            let why: Vec<String> = chain.keep.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                out,
                "keep   chain {} ({files}): {}",
                chain.stamp,
                why.join("; ")
            );
        } else {
            let _ = writeln!(
                out,
                "remove chain {} ({files}): no rule keeps it",
                chain.stamp
            );
            for f in outcome
                .files
                .iter()
                .filter(|f| f.chain.as_ref() == Some(&chain.stamp))
            {
                let _ = writeln!(out, "  would remove {} ({} bytes)", f.path, f.size);
            }
        }
    }
    let leftovers: Vec<_> = outcome.files.iter().filter(|f| f.chain.is_none()).collect();
    if !leftovers.is_empty() {
        let _ = writeln!(
            out,
            "remove leftovers of an interrupted removal (no data file has their stamp):"
        );
        for f in leftovers {
            let _ = writeln!(out, "  would remove {} ({} bytes)", f.path, f.size);
        }
    }
    let _ = writeln!(out, "dry run: {}", retention_summary(outcome));
    out
}

/// One line: what a retention run removed (or would remove) and kept.
pub fn retention_summary(outcome: &RetentionOutcome) -> String {
    let plan = &outcome.plan;
    let (files, removed) = (outcome.files.len(), plan.removed_chains());
    format!(
        "{} {files} file{} ({} bytes) of {removed} expired chain{}; {} {} chain{}",
        if outcome.dry_run {
            "would remove"
        } else {
            "removed"
        },
        if files == 1 { "" } else { "s" },
        outcome.bytes(),
        if removed == 1 { "" } else { "s" },
        if outcome.dry_run { "keeping" } else { "kept" },
        plan.kept_chains(),
        if plan.kept_chains() == 1 { "" } else { "s" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::list::{ChainInfo, ChainNote, Kind, RestorePoint};

    #[test]
    fn json_strings_escape_quotes_backslashes_and_control_characters() {
        assert_eq!(json_str("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(json_str("\n\t\u{1}é"), "\"\\n\\t\\u0001é\"");
        assert_eq!(json_str("\u{8}\u{c}\u{7f}"), "\"\\u0008\\u000c\u{7f}\"");
    }

    proptest::proptest! {
        #[test]
        fn any_string_survives_a_json_round_trip(s in proptest::prelude::any::<String>()) {
            let back: String = serde_json::from_str(&json_str(&s)).unwrap();
            proptest::prop_assert_eq!(back, s);
        }
    }

    fn sample() -> RepositoryList {
        let point = |stamp: &str, kind, gzip, size, end, index| RestorePoint {
            stamp: stamp.into(),
            name: format!("{stamp}.fs"),
            path: format!("r/{stamp}.fs"),
            kind,
            gzip,
            stored_size: size,
            end,
            index,
            sidecar: false,
            blobs: Blobs::None,
            pack_delta_base: None,
            needed_by: None,
        };
        RepositoryList {
            chains: vec![ChainInfo {
                stamp: "2026-01-01-00-00-00".into(),
                dat: "2026-01-01-00-00-00.dat".into(),
                points: vec![
                    point(
                        "2026-01-01-00-00-00",
                        Kind::Full,
                        false,
                        4242,
                        Some(4242),
                        true,
                    ),
                    point(
                        "2026-01-02-00-00-00",
                        Kind::Incremental,
                        true,
                        17,
                        None,
                        false,
                    ),
                ],
                notes: vec![ChainNote::Unlisted {
                    file: "2026-01-02-00-00-00.deltafsz".into(),
                    dat: "2026-01-01-00-00-00.dat".into(),
                }],
            }],
            orphans: vec![],
        }
    }

    #[test]
    fn the_text_listing_is_a_table_with_one_header_line_per_chain() {
        assert_eq!(
            list_text(&sample()),
            "  stamp                kind         gzip  stored bytes  Data.fs end  index  blake3\n\
             chain 2026-01-01-00-00-00: 2 restore points, 4259 bytes stored\n\
             \x20 2026-01-01-00-00-00  full         no            4242         4242  yes    no\n\
             \x20 2026-01-02-00-00-00  incremental  yes             17            ?  no     no\n\
             \x20 ! 2026-01-02-00-00-00.deltafsz is not listed in 2026-01-01-00-00-00.dat\n\
             1 chain, 2 restore points, 4259 bytes stored\n"
        );
        assert_eq!(
            list_text(&RepositoryList::default()),
            "0 chains, 0 restore points, 0 bytes stored\n"
        );
    }

    #[test]
    fn a_blobs_column_appears_once_a_backup_has_a_manifest() {
        let mut list = sample();
        list.chains[0].points[0].blobs = Blobs::Listed { gone: 0 };
        list.chains[0].points[1].blobs = Blobs::Listed { gone: 2 };
        let text = list_text(&list);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with("index  blake3  blobs"), "{}", lines[0]);
        assert!(lines[2].ends_with("yes    no      yes"), "{}", lines[2]);
        assert!(
            lines[3].ends_with("no     no      2 missing"),
            "{}",
            lines[3]
        );
        let json = list_json(&list);
        assert!(json.contains("\"blobs\":{\"missing\":2}"), "{json}");
    }

    #[test]
    fn a_pack_delta_and_the_files_it_needs_are_marked_in_text_and_json() {
        let mut list = sample();
        let mut delta = list.chains[0].points[0].clone();
        delta.stamp = "2026-01-03-00-00-00".into();
        delta.kind = Kind::PackDelta;
        delta.gzip = true;
        delta.pack_delta_base = Some("2026-01-01-00-00-00.fs".into());
        list.chains.push(ChainInfo {
            stamp: "2026-01-03-00-00-00".into(),
            dat: "2026-01-03-00-00-00.dat".into(),
            points: vec![delta],
            notes: vec![],
        });
        for p in &mut list.chains[0].points {
            p.needed_by = Some("2026-01-03-00-00-00.fsz".into());
        }
        let text = list_text(&list);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[2],
            "  2026-01-01-00-00-00  full         no            4242         4242  yes    no      \
             needed by 2026-01-03-00-00-00.fsz"
        );
        assert_eq!(
            lines[6],
            "  2026-01-03-00-00-00  pack delta   yes           4242         4242  yes    no      \
             based on 2026-01-01-00-00-00.fs"
        );
        let json = list_json(&list);
        let lines: Vec<&str> = json.lines().collect();
        assert!(
            lines[0].ends_with(
                "\"blake3\":false,\"blobs\":null,\"needed_by\":\"2026-01-03-00-00-00.fsz\"}"
            ),
            "{}",
            lines[0]
        );
        assert!(
            lines[3].contains("\"kind\":\"pack delta\",\"gzip\":true,")
                && lines[3].ends_with("\"pack_delta_base\":\"2026-01-01-00-00-00.fs\"}"),
            "{}",
            lines[3]
        );
        // A repository without pack deltas lists as it always has.
        assert!(!list_json(&sample()).contains("needed_by"));
        assert!(!list_json(&sample()).contains("pack_delta_base"));
    }

    #[test]
    fn the_json_listing_has_a_line_per_restore_point_and_a_summary() {
        let text = list_json(&sample());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[1].contains("\"end\":null"), "{}", lines[1]);
        assert!(lines[2].starts_with("{\"message_type\":\"warning\""));
        assert_eq!(
            lines[3],
            "{\"message_type\":\"summary\",\"operation\":\"list\",\"chains\":1,\
             \"restore_points\":2,\"stored_bytes\":4259}"
        );
    }
}
