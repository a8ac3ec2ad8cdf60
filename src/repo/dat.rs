//! `.dat` files: one line per file of a chain, `"<path> <start> <end> <md5>"`.
//!
//! `<path>` is the repository directory as given on the command line joined
//! with the file name; readers use only its base name. `<start>`/`<end>` are
//! offsets in the source Data.fs and `<md5>` the hex md5 of those bytes.

use crate::error::{Error, Result};

/// One line of a `.dat` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatEntry {
    /// The backup file, as recorded (repository path as given + name).
    pub file: String,
    /// First Data.fs offset the file holds.
    pub start: u64,
    /// Data.fs offset just past the last byte it holds.
    pub end: u64,
    /// md5 hex of the uncompressed bytes.
    pub md5: String,
}

impl DatEntry {
    /// The line as repozo writes it (`print(dest, start, end, sum)`),
    /// newline included.
    pub fn to_line(&self) -> String {
        format!("{} {} {} {}\n", self.file, self.start, self.end, self.md5)
    }

    /// Base name of the recorded file, which readers re-join with the
    /// current repository path (repozo's `os.path.basename(fn)`).
    pub fn base_name(&self) -> &str {
        super::base_name(&self.file)
    }

    /// The entries by base name, the first one where a name repeats (as a
    /// search from the top finds it). Built once per operation: looking
    /// each file of a chain up by a scan costs O(files²) (measured: 55% of
    /// the instructions of `-R` over a 2,000-file chain).
    pub fn first_by_name(entries: &[DatEntry]) -> std::collections::HashMap<&str, &DatEntry> {
        let mut map = std::collections::HashMap::with_capacity(entries.len());
        for e in entries {
            map.entry(e.base_name()).or_insert(e);
        }
        map
    }

    /// Number of bytes the file holds uncompressed.
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// True if and only if the entry covers no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Parses one line, reading the three numeric/hex fields from the
    /// right so that a repository path containing spaces still parses.
    /// `path` and `lineno` (1-based) only serve the error message.
    pub fn parse(line: &str, path: &str, lineno: usize) -> Result<Self> {
        let bad = |what: &str| Error::Dat {
            path: path.to_string(),
            line: lineno,
            what: what.to_string(),
        };
        let line = line.trim_end_matches(['\n', '\r']);
        let mut fields = line.trim_end().rsplitn(4, char::is_whitespace);
        let md5 = fields.next().filter(|s| !s.is_empty());
        let end = fields.next();
        let start = fields.next();
        let file = fields.next().map(str::trim).filter(|s| !s.is_empty());
        let (Some(file), Some(start), Some(end), Some(md5)) = (file, start, end, md5) else {
            return Err(bad("expected \"<file> <start> <end> <md5>\""));
        };
        let num = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| bad(&format!("{s:?} is not a byte offset")))
        };
        let (start, end) = (num(start)?, num(end)?);
        if end < start {
            return Err(bad("end offset is before start offset"));
        }
        Ok(DatEntry {
            file: file.to_string(),
            start,
            end,
            md5: md5.to_string(),
        })
    }
}

/// The complete lines of a `.dat` (everything up to its last newline),
/// and whether anything followed them.
///
/// A backup appends its line and then fsyncs the `.dat`; a power cut in
/// between can leave part of the line, or zeros where the file grew
/// before its data reached the disk, after the last newline. That tail
/// was never acknowledged: every reader reads the chain without it (`-B`
/// also removes it, [`super::Chain::reconcile`]).
pub fn complete_lines(raw: &[u8]) -> (&[u8], bool) {
    let complete = match raw.iter().rposition(|&c| c == b'\n') {
        Some(i) => &raw[..=i],
        None => &raw[..0],
    };
    (complete, complete.len() != raw.len())
}

/// Reads a `.dat` file, without a torn last line ([`complete_lines`]);
/// `Ok(None)` if it does not exist.
pub fn read(path: &str) -> Result<Option<Vec<DatEntry>>> {
    let text = match crate::io::read_regular(path) {
        Ok(b) => String::from_utf8_lossy(complete_lines(&b).0).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    text.lines()
        .enumerate()
        .map(|(i, l)| DatEntry::parse(l, path, i + 1))
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_round_trips_in_repozos_format() {
        let line = "repo/2026-11-26-02-10-03.fs 0 1154 e89ee1ab1adb86f91f2d54dbdf00b71c\n";
        let e = DatEntry::parse(line, "x.dat", 1).unwrap();
        assert_eq!(e.start, 0);
        assert_eq!(e.end, 1154);
        assert_eq!(e.base_name(), "2026-11-26-02-10-03.fs");
        assert_eq!(e.to_line(), line);
    }

    #[test]
    fn a_repository_path_with_spaces_parses_from_the_right() {
        let e = DatEntry::parse("/b ack ups/2026-11-26-02-10-03.fs 0 9 abc", "x.dat", 1).unwrap();
        assert_eq!(e.file, "/b ack ups/2026-11-26-02-10-03.fs");
        assert_eq!(e.md5, "abc");
    }

    #[test]
    fn a_last_line_without_its_newline_is_not_a_complete_line() {
        let raw = b"a 0 1 x\nb 1 2 y\n\0\0\0\0";
        assert_eq!(complete_lines(raw), (&raw[..16], true));
        assert_eq!(complete_lines(b"a 0 1 x\n"), (&b"a 0 1 x\n"[..], false));
        assert_eq!(complete_lines(b"a 0 1"), (&b""[..], true));
    }

    #[test]
    fn a_short_line_names_the_file_and_line() {
        let err = DatEntry::parse("x 1 2", "r/a.dat", 3)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("r/a.dat: line 3: "), "{err}");
    }
}
