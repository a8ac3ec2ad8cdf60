//! The fast-hash sidecar: `<stamp>.blake3` beside each data file this tool
//! writes, holding the BLAKE3 of the file's uncompressed bytes.
//!
//! md5 (what the `.dat` records, and what ZODB's repozo checks) runs at
//! about 590 MB/s on one core and cannot be split; BLAKE3 runs at several
//! GB/s on one core. A backup computes both over the same bytes (BLAKE3 on
//! the other core: a full backup takes the time of md5 alone), and `-R`,
//! `-V` and `--incremental`'s proof then check with BLAKE3 when every file
//! they read has a usable sidecar, with md5 otherwise, or always with
//! `--md5`.
//!
//! # Format
//!
//! Seven short text lines, each ending in `\n`:
//!
//! ```text
//! repozo-rs fast-hash 1
//! file 2026-12-04-17-00-00.deltafs
//! range 1234 5678
//! md5 <32 hex digits>
//! blake3 <64 hex digits>
//! check <64 hex digits>
//! end
//! ```
//!
//! `file`, `range` and `md5` repeat the data file's `.dat` line: a sidecar
//! is used only for the file and bytes it was written for (one left by
//! ZODB's repozo `-k`, which deletes data files but knows nothing of
//! sidecars, or by a replaced file, is "foreign" and ignored). `check` is
//! the BLAKE3 of every byte before its line, so a damaged or truncated
//! sidecar is recognised as such rather than read as a checksum mismatch
//! of its data file.
//!
//! # Invariants
//!
//! * A sidecar is never trusted over md5: a file whose BLAKE3 does not
//!   match its sidecar is checked again with md5 before anything fails
//!   ([`Lookup`] says why a sidecar is not used).
//! * A backup writes (and syncs) the sidecar after its data file and
//!   before the `.dat` line that makes the file part of its chain; a crash
//!   in between leaves a sidecar of an unrecorded file, which the next
//!   backup's reconcile records with it (or ignores if the file goes).
//! * ZODB's repozo ignores these files (they are not named like data
//!   files); `-k`, retention and `--list` of this tool handle them with the
//!   other files of their stamp.

use std::collections::HashMap;
use std::io::Read;

use super::Repository;
use super::dat::DatEntry;
use super::reader::{DataFile, DataFiles};
use crate::error::Result;
use crate::io::{Digested, Digests};
use crate::names;
use crate::report::{Event, Report};

/// First line of every sidecar (format version 1).
const MAGIC: &str = "repozo-rs fast-hash 1";

/// A sidecar is a few hundred bytes; more is not a sidecar.
const MAX_SIZE: u64 = 1024;

/// The content of one sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sidecar {
    /// The data file's name (`<stamp>.<ext>`).
    pub file: String,
    /// Where the file's bytes start in the Data.fs.
    pub start: u64,
    /// Where they end.
    pub end: u64,
    /// Their md5 hex (the `.dat` line's).
    pub md5: String,
    /// Their BLAKE3 hex.
    pub blake3: String,
}

/// What [`lookup`] found for a data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A sidecar written for exactly this file and `.dat` line.
    Valid(Sidecar),
    /// No sidecar (a file written by ZODB's repozo, or before sidecars).
    Missing,
    /// A sidecar that cannot be read as one (damaged or cut short): why.
    Damaged(String),
    /// A sound sidecar written for other bytes (another file, range or
    /// md5): why.
    Foreign(String),
}

impl Sidecar {
    /// The sidecar of a data file as its `.dat` line records it.
    pub fn of(entry: &DatEntry, blake3: String) -> Sidecar {
        Sidecar {
            file: entry.base_name().to_string(),
            start: entry.start,
            end: entry.end,
            md5: entry.md5.clone(),
            blake3,
        }
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut body = format!(
            "{MAGIC}\nfile {}\nrange {} {}\nmd5 {}\nblake3 {}\n",
            self.file, self.start, self.end, self.md5, self.blake3
        );
        let check = blake3::hash(body.as_bytes()).to_hex();
        body.push_str(&format!("check {check}\nend\n"));
        body.into_bytes()
    }

    /// Reads a sidecar's bytes; `Err(why)` if they are not a whole, sound
    /// sidecar.
    pub fn parse(bytes: &[u8]) -> std::result::Result<Sidecar, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "it is not text".to_string())?;
        let Some(body_end) = text.find("check ") else {
            return Err("it has no check line (cut short?)".into());
        };
        let (body, tail) = text.split_at(body_end);
        let want = blake3::hash(body.as_bytes()).to_hex();
        if tail != format!("check {want}\nend\n") {
            return Err("its check line does not match its content (damaged or cut short)".into());
        }
        let mut lines = body.lines();
        if lines.next() != Some(MAGIC) {
            return Err(format!("it does not start with `{MAGIC}`"));
        }
        let mut field = |key: &str| -> std::result::Result<&str, String> {
            lines
                .next()
                .and_then(|l| l.strip_prefix(key))
                .and_then(|l| l.strip_prefix(' '))
                .ok_or_else(|| format!("its `{key}` line is missing"))
        };
        let file = field("file")?.to_string();
        let range = field("range")?;
        let md5 = field("md5")?.to_string();
        let blake3 = field("blake3")?.to_string();
        let (start, end) = range
            .split_once(' ')
            .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
            .filter(|(a, b)| a <= b)
            .ok_or_else(|| format!("its range `{range}` is not two ascending offsets"))?;
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|c| c.is_ascii_hexdigit());
        if !hex(&md5, 32) || !hex(&blake3, 64) {
            return Err("its md5 or blake3 is not a hex digest".into());
        }
        Ok(Sidecar {
            file,
            start,
            end,
            md5,
            blake3,
        })
    }

    /// Whether this sidecar was written for the file and bytes `entry`
    /// describes; `Err(why)` if not.
    fn matches(&self, entry: &DatEntry) -> std::result::Result<(), String> {
        if self.file != entry.base_name() {
            return Err(format!("it was written for {}", self.file));
        }
        if (self.start, self.end) != (entry.start, entry.end) {
            return Err(format!(
                "it describes bytes {} to {}, the .dat line {} to {}",
                self.start, self.end, entry.start, entry.end
            ));
        }
        if self.md5 != entry.md5 {
            return Err(format!(
                "its md5 is {}, the .dat line's {}",
                self.md5, entry.md5
            ));
        }
        Ok(())
    }
}

/// The name of the sidecar of the data file `name` (`<stamp>.blake3`).
pub fn name_of(data_file: &str) -> String {
    names::sidecar_name(names::stamp_of(names::base_name(data_file)))
}

/// Writes the sidecar of `entry`'s file (atomically, synced), before the
/// `.dat` line that records the file.
pub fn write(repo: &Repository, entry: &DatEntry, blake3: String) -> Result<()> {
    let sidecar = Sidecar::of(entry, blake3);
    repo.write_whole(&name_of(entry.base_name()), &sidecar.to_bytes())
}

/// The sidecar of `entry`'s file: read (at most [`MAX_SIZE`] bytes) and
/// checked against the line.
pub fn lookup(repo: &Repository, entry: &DatEntry) -> Result<Lookup> {
    let name = name_of(entry.base_name());
    let Some(r) = repo.open_optional(&name)? else {
        return Ok(Lookup::Missing);
    };
    let mut bytes = Vec::new();
    r.take(MAX_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| crate::error::Error::io(repo.path(&name), e))?;
    if bytes.len() as u64 > MAX_SIZE {
        return Ok(Lookup::Damaged(format!(
            "it is larger than {MAX_SIZE} bytes"
        )));
    }
    Ok(match Sidecar::parse(&bytes) {
        Err(why) => Lookup::Damaged(why),
        Ok(s) => match s.matches(entry) {
            Ok(()) => Lookup::Valid(s),
            Err(why) => Lookup::Foreign(why),
        },
    })
}

/// How the files of one operation are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checks {
    /// With md5, as the `.dat` records (and ZODB's repozo checks).
    Md5,
    /// With BLAKE3: the sidecar's digest per data file name.
    Blake3(HashMap<String, String>),
}

impl Checks {
    /// The BLAKE3 a file must have, if checks are by BLAKE3.
    pub fn blake3_of(&self, name: &str) -> Option<&str> {
        match self {
            Checks::Md5 => None,
            Checks::Blake3(m) => m.get(name).map(String::as_str),
        }
    }

    /// The digest to compute while reading the file `name`.
    pub fn digests_for(&self, name: &str) -> Digests {
        match self.blake3_of(name) {
            Some(_) => Digests::Blake3,
            None => Digests::Md5,
        }
    }
}

/// md5 decides, never a sidecar alone: after `file`'s bytes did not match
/// the BLAKE3 of its sidecar, reads it again by md5; if it holds `want`
/// (its `.dat` line's size and md5) after all, the sidecar is wrong
/// ([`Event::SidecarWrong`]). Returns that pass's size and md5, for the
/// caller's own verdict.
pub fn recheck_by_md5(
    files: &DataFiles,
    file: DataFile,
    (size, md5): (u64, &str),
    report: &dyn Report,
) -> Result<Digested> {
    let again = files.digest(file, None, "", Digests::Md5)?;
    if again.len == size && again.md5.as_deref() == Some(md5) {
        report.event(&Event::SidecarWrong {
            file: file.path.to_string(),
        });
    }
    Ok(again)
}

/// How to check the files `entries` describe: with BLAKE3 if every one
/// has a valid sidecar (and `md5_only` is false), with md5 otherwise.
/// A damaged or foreign sidecar is reported (a warning) and means md5.
pub fn checks_for(
    repo: &Repository,
    entries: &[DatEntry],
    md5_only: bool,
    report: &dyn Report,
) -> Result<Checks> {
    if entries.is_empty() {
        return Ok(Checks::Md5);
    }
    // One listing first: a chain with a file of ZODB's (no sidecar) is
    // checked with md5 without a read per file (a request each on S3).
    let listing = if md5_only { None } else { Some(repo.list()?) };
    let all_listed =
        listing.is_some_and(|l| entries.iter().all(|e| l.has_meta(&name_of(e.base_name()))));
    if !all_listed {
        report.event(&Event::CheckingWith { blake3: false });
        return Ok(Checks::Md5);
    }
    let mut found = HashMap::new();
    let mut usable = true;
    for entry in entries {
        match lookup(repo, entry)? {
            Lookup::Valid(s) => {
                found.insert(entry.base_name().to_string(), s.blake3);
            }
            Lookup::Missing => usable = false,
            Lookup::Damaged(why) | Lookup::Foreign(why) => {
                report.event(&Event::SidecarUnusable {
                    path: repo.path(&name_of(entry.base_name())),
                    why,
                });
                usable = false;
            }
        }
    }
    let checks = if usable {
        Checks::Blake3(found)
    } else {
        Checks::Md5
    };
    report.event(&Event::CheckingWith {
        blake3: matches!(checks, Checks::Blake3(_)),
    });
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> DatEntry {
        DatEntry {
            file: "/r/2026-01-02-03-04-05.deltafs".into(),
            start: 100,
            end: 250,
            md5: "0123456789abcdef0123456789abcdef".into(),
        }
    }

    fn sidecar() -> Sidecar {
        Sidecar::of(&entry(), "ab".repeat(32))
    }

    #[test]
    fn a_sidecar_reads_back_as_written() {
        let s = sidecar();
        assert_eq!(Sidecar::parse(&s.to_bytes()), Ok(s.clone()));
        assert_eq!(s.matches(&entry()), Ok(()));
    }

    #[test]
    fn every_flipped_byte_and_every_cut_is_seen_as_damage() {
        let bytes = sidecar().to_bytes();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(Sidecar::parse(&b).is_err(), "byte {i} flipped");
            assert!(Sidecar::parse(&bytes[..i]).is_err(), "cut at {i}");
        }
    }

    #[test]
    fn a_sidecar_of_other_bytes_is_foreign() {
        let s = sidecar();
        let mut e = entry();
        e.md5 = "f".repeat(32);
        assert!(s.matches(&e).unwrap_err().contains("md5"));
        let mut e = entry();
        e.file = "/r/2026-01-02-03-04-06.deltafs".into();
        assert!(s.matches(&e).unwrap_err().contains("written for"));
        let mut e = entry();
        e.end = 251;
        assert!(s.matches(&e).unwrap_err().contains("bytes"));
    }

    #[test]
    fn the_sidecar_of_a_data_file_is_named_after_its_stamp() {
        assert_eq!(
            name_of("/r/2026-01-02-03-04-05.deltafsz"),
            "2026-01-02-03-04-05.blake3"
        );
    }

    proptest::proptest! {
        /// A sidecar's bytes come from storage: any bytes give an answer,
        /// never a panic, and only a sidecar this module wrote is sound.
        #[test]
        fn any_bytes_give_an_answer_never_a_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1200),
            cut in 0usize..400,
        ) {
            let _ = Sidecar::parse(&bytes);
            let good = sidecar().to_bytes();
            let mut spliced = good[..cut.min(good.len())].to_vec();
            spliced.extend_from_slice(&bytes);
            if spliced != good {
                proptest::prop_assert!(Sidecar::parse(&spliced).is_err());
            }
        }
    }
}
