//! `<stamp>.blobs`: the blob revisions one data file of a chain names.
//!
//! A text file, one line per revision, sorted by oid then tid:
//!
//! ```text
//! # repozo-blobs 1 layout=bushy data=2026-11-26-10-00-00.deltafs kind=incremental start=4096 end=81920 gone=1
//! 00000000000000a1 040d461ffeab9600 48213 <64 hex digits of BLAKE3>
//! 00000000000000a2 040d461ffeab9600 - gone
//! # end 2 <64 hex digits of BLAKE3 of every byte above this line>
//! ```
//!
//! A full backup's manifest lists every blob record of `Data.fs[0, end)`,
//! an incremental one only those of its own `[start, end)`, so the blob
//! set as of any date is the union of the chain's manifests up to it. A
//! `gone` line is a revision the backup needed but found neither in the
//! blob directory nor in `<blob dir>.old`. The last line detects a
//! truncated or edited manifest.

use std::io::{BufRead, BufReader, Read};

use super::layout::Layout;
use super::store::Hash;
use crate::error::{Error, IoContext, Result};

/// First word of a manifest, with its format version.
const MAGIC: &str = "# repozo-blobs 1 ";
/// Longest line a manifest can hold: the header with a long data name.
/// [`Manifest::peek_gone_in`] and [`Manifest::looks_whole_parts`] need
/// at most this many bytes of each end.
pub const MAX_LINE: u64 = 1024;

/// Whether a manifest covers a full backup or an increment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Every blob record of `[0, end)`.
    Full,
    /// The blob records of `[start, end)` only.
    Incremental,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Full => "full",
            Kind::Incremental => "incremental",
        }
    }
}

/// One blob revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// Object id.
    pub oid: u64,
    /// Transaction id naming the file.
    pub tid: u64,
    /// Size and content hash; `None` when the file was not found.
    pub content: Option<(u64, Hash)>,
}

/// A parsed (or about to be written) manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The layout of the blob directory backed up.
    pub layout: Layout,
    /// The data file this manifest belongs to (base name).
    pub data: String,
    /// Full or incremental.
    pub kind: Kind,
    /// First byte of the range.
    pub start: u64,
    /// End of the range.
    pub end: u64,
    /// The revisions, sorted by (oid, tid), without duplicates.
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// The file's bytes. Entries are sorted and deduplicated first.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut entries = self.entries.clone();
        entries.sort();
        entries.dedup_by_key(|e| (e.oid, e.tid));
        let gone = entries.iter().filter(|e| e.content.is_none()).count();
        let mut out = format!(
            "{MAGIC}layout={} data={} kind={} start={} end={} gone={gone}\n",
            self.layout.name(),
            self.data,
            self.kind.name(),
            self.start,
            self.end
        );
        for e in &entries {
            match e.content {
                Some((size, hash)) => {
                    out.push_str(&format!("{:016x} {:016x} {size} {hash}\n", e.oid, e.tid))
                }
                None => out.push_str(&format!("{:016x} {:016x} - gone\n", e.oid, e.tid)),
            }
        }
        let sum = Hash::of(out.as_bytes());
        out.push_str(&format!("# end {} {sum}\n", entries.len()));
        out.into_bytes()
    }

    /// How many revisions were not found when it was written.
    pub fn gone(&self) -> usize {
        self.entries.iter().filter(|e| e.content.is_none()).count()
    }

    /// How many revisions the manifest at `path` records as missing, from
    /// its first line alone (cheap: a full manifest can hold millions of
    /// lines). `None` if that line cannot be read as a header.
    pub fn peek_gone(path: &str) -> Option<u64> {
        let (head, _) = ends_of(path)?;
        Manifest::peek_gone_in(&head)
    }

    /// [`Manifest::peek_gone`] from the manifest's first [`MAX_LINE`]
    /// bytes (or all of it, if shorter).
    pub fn peek_gone_in(head: &[u8]) -> Option<u64> {
        let line = head.split_inclusive(|&c| c == b'\n').next()?;
        let header = std::str::from_utf8(line).ok()?.trim_end();
        header
            .strip_prefix(MAGIC.trim_end())?
            .split(' ')
            .find_map(|w| w.strip_prefix("gone="))?
            .parse()
            .ok()
    }

    /// Whether the manifest at `path` can be read, starts with a header
    /// and ends with an `# end` line — from its first and last lines
    /// alone (cheap, unlike [`Manifest::read`]). False for an empty, cut
    /// or garbage file: the next backup writes it again.
    pub fn looks_whole(path: &str) -> bool {
        ends_of(path).is_some_and(|(head, tail)| Manifest::looks_whole_parts(&head, &tail))
    }

    /// [`Manifest::looks_whole`] from the first and the last [`MAX_LINE`]
    /// bytes of a manifest (each all of it, if shorter).
    pub fn looks_whole_parts(head: &[u8], tail: &[u8]) -> bool {
        let Some(line) = head.split_inclusive(|&c| c == b'\n').next() else {
            return false;
        };
        let header = std::str::from_utf8(line)
            .ok()
            .filter(|l| l.ends_with('\n'))
            .and_then(|l| l.trim_end().strip_prefix(MAGIC.trim_end()))
            .and_then(parse_header);
        if header.is_none() {
            return false;
        }
        let Some(body) = tail.strip_suffix(b"\n") else {
            return false;
        };
        let last = body.rsplit(|&c| c == b'\n').next().unwrap_or(body);
        last.starts_with(b"# end ")
    }

    /// Reads and checks the manifest at `path`. Errors name the file and
    /// line and say what to do.
    pub fn read(path: &str) -> Result<Manifest> {
        let file = crate::io::open_regular(path).at(path)?;
        Manifest::parse(file, path)
    }

    /// Parses a manifest from `r`; `path` names it in errors.
    pub fn parse(r: impl Read, path: &str) -> Result<Manifest> {
        let mut r = BufReader::new(r);
        let mut hasher = blake3::Hasher::new();
        let mut line = Vec::new();
        let mut lineno = 0usize;
        let bad = |lineno: usize, what: &str| Error::Manifest {
            path: path.to_string(),
            line: lineno,
            what: what.to_string(),
        };
        let mut next = |line: &mut Vec<u8>, lineno: &mut usize| -> Result<bool> {
            line.clear();
            let n = (&mut r).take(MAX_LINE).read_until(b'\n', line).at(path)?;
            *lineno += 1;
            if n == 0 {
                return Ok(false);
            }
            if line.last() != Some(&b'\n') {
                return Err(bad(*lineno, "line too long or cut short"));
            }
            Ok(true)
        };
        if !next(&mut line, &mut lineno)? {
            return Err(bad(1, "empty file"));
        }
        hasher.update(&line);
        let header = std::str::from_utf8(&line)
            .ok()
            .and_then(|l| l.trim_end().strip_prefix(MAGIC.trim_end()))
            .ok_or_else(|| bad(1, "not a repozo blob manifest (version 1)"))?;
        let (mut manifest, gone) = parse_header(header).ok_or_else(|| bad(1, "damaged header"))?;
        loop {
            if !next(&mut line, &mut lineno)? {
                return Err(bad(
                    lineno,
                    "the \"# end\" line is missing: the file is cut short",
                ));
            }
            let text = std::str::from_utf8(&line)
                .map_err(|_| bad(lineno, "not text"))?
                .trim_end_matches('\n');
            if let Some(footer) = text.strip_prefix("# end ") {
                let sum = hasher.finalize();
                let mut words = footer.split(' ');
                let count = words.next().and_then(|w| w.parse::<usize>().ok());
                let want = words.next().and_then(Hash::from_hex);
                if count != Some(manifest.entries.len())
                    || want.map(|h| h.0) != Some(*sum.as_bytes())
                    || manifest.gone() as u64 != gone
                {
                    return Err(bad(
                        lineno,
                        "checksum mismatch: the file was changed or damaged",
                    ));
                }
                if next(&mut line, &mut lineno)? {
                    return Err(bad(lineno, "text after the \"# end\" line"));
                }
                return Ok(manifest);
            }
            hasher.update(&line);
            let entry = parse_entry(text).ok_or_else(|| bad(lineno, "damaged entry"))?;
            if manifest
                .entries
                .last()
                .is_some_and(|l| (l.oid, l.tid) >= (entry.oid, entry.tid))
            {
                return Err(bad(lineno, "entries out of order"));
            }
            manifest.entries.push(entry);
        }
    }
}

fn parse_header(h: &str) -> Option<(Manifest, u64)> {
    let mut m = Manifest {
        layout: Layout::Bushy,
        data: String::new(),
        kind: Kind::Full,
        start: 0,
        end: 0,
        entries: Vec::new(),
    };
    // One bit per field: each must appear exactly once (a repeated one
    // must not stand in for a missing one).
    let mut seen = 0u8;
    let mut gone = 0;
    for word in h.split(' ').filter(|w| !w.is_empty()) {
        let (k, v) = word.split_once('=')?;
        let bit = match k {
            "layout" => 1,
            "data" => 2,
            "kind" => 4,
            "start" => 8,
            "end" => 16,
            "gone" => 32,
            _ => continue, // a later minor version may add fields
        };
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
        match k {
            "layout" => m.layout = Layout::from_name(v)?,
            "data" => m.data = v.to_string(),
            "kind" => {
                m.kind = match v {
                    "full" => Kind::Full,
                    "incremental" => Kind::Incremental,
                    _ => return None,
                }
            }
            "start" => m.start = v.parse().ok()?,
            "end" => m.end = v.parse().ok()?,
            _ => gone = v.parse().ok()?,
        }
    }
    (seen == 63 && m.start <= m.end).then_some((m, gone))
}

fn parse_entry(line: &str) -> Option<Entry> {
    let mut w = line.split(' ');
    let oid = w.next().filter(|s| s.len() == 16)?;
    let tid = w.next().filter(|s| s.len() == 16)?;
    let oid = u64::from_str_radix(oid, 16).ok()?;
    let tid = u64::from_str_radix(tid, 16).ok()?;
    let content = match (w.next()?, w.next()?) {
        ("-", "gone") => None,
        (size, hash) => Some((size.parse().ok()?, Hash::from_hex(hash)?)),
    };
    w.next().is_none().then_some(Entry { oid, tid, content })
}

/// The first and the last [`MAX_LINE`] bytes of the file at `path`.
fn ends_of(path: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    use std::os::unix::fs::FileExt;
    let file = crate::io::open_regular(path).ok()?;
    let len = file.metadata().ok()?.len();
    let read = |from: u64| -> Option<Vec<u8>> {
        let mut buf = vec![0u8; (len - from).min(MAX_LINE) as usize];
        file.read_exact_at(&mut buf, from).ok()?;
        Some(buf)
    };
    Some((read(0)?, read(len.saturating_sub(MAX_LINE))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            layout: Layout::Bushy,
            data: "2026-11-26-10-00-00.fs".into(),
            kind: Kind::Full,
            start: 0,
            end: 100,
            entries: vec![
                Entry {
                    oid: 2,
                    tid: 9,
                    content: None,
                },
                Entry {
                    oid: 1,
                    tid: 5,
                    content: Some((3, Hash::of(b"abc"))),
                },
            ],
        }
    }

    #[test]
    fn a_written_manifest_reads_back_sorted() {
        let m = sample();
        let bytes = m.to_bytes();
        let back = Manifest::parse(&bytes[..], "x.blobs").unwrap();
        assert_eq!(back.entries[0].oid, 1);
        assert_eq!(back.gone(), 1);
        assert_eq!(back.data, m.data);
        assert_eq!(back.end, 100);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.blobs");
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(Manifest::peek_gone(path.to_str().unwrap()), Some(1));
    }

    #[test]
    fn only_a_manifest_with_header_and_end_line_looks_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.blobs");
        let path = path.to_str().unwrap();
        let bytes = sample().to_bytes();
        std::fs::write(path, &bytes).unwrap();
        assert!(Manifest::looks_whole(path));
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            std::fs::write(path, &bytes[..cut]).unwrap();
            assert!(!Manifest::looks_whole(path), "cut at {cut}");
        }
        std::fs::write(path, b"garbage\n# end 0 00\n").unwrap();
        assert!(!Manifest::looks_whole(path));
        assert!(!Manifest::looks_whole(
            dir.path().join("none").to_str().unwrap()
        ));
    }

    #[test]
    fn a_cut_or_changed_manifest_is_an_error_naming_the_line() {
        let bytes = sample().to_bytes();
        let cut = &bytes[..bytes.len() - 80];
        let err = Manifest::parse(cut, "x.blobs").unwrap_err().to_string();
        assert!(err.starts_with("x.blobs: line "), "{err}");
        let mut changed = bytes.clone();
        let at = changed.iter().position(|&c| c == b'\n').unwrap() + 1;
        changed[at + 36] = if changed[at + 36] == b'a' { b'b' } else { b'a' };
        let err = Manifest::parse(&changed[..], "x.blobs")
            .unwrap_err()
            .to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
        assert!(Manifest::parse(&b""[..], "x.blobs").is_err());
        assert!(Manifest::parse(&b"garbage\n"[..], "x.blobs").is_err());
    }

    proptest::proptest! {
        /// The first and last bytes of a manifest come from storage (a
        /// file, an S3 object): any bytes give an answer, never a panic,
        /// and a manifest this module wrote always looks whole.
        #[test]
        fn any_head_and_tail_give_an_answer_never_a_panic(
            head in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1100),
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1100),
        ) {
            let _ = Manifest::peek_gone_in(&head);
            let _ = Manifest::looks_whole_parts(&head, &tail);
            let bytes = sample().to_bytes();
            let n = MAX_LINE as usize;
            let whole = Manifest::looks_whole_parts(
                &bytes[..bytes.len().min(n)],
                &bytes[bytes.len().saturating_sub(n)..],
            );
            proptest::prop_assert!(whole);
        }
    }
}
