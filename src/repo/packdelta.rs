//! Pack deltas: the first file of a chain written by `-B --pack-delta`.
//!
//! After a pack, the Data.fs is mostly the bytes of the state before it
//! (see `fs::packdiff`). A pack delta stores the packed Data.fs as a delta
//! ([`crate::io::delta`]) against the state of another chain, its *base*,
//! and is otherwise the first file of an ordinary chain: a `<stamp>.dat`
//! line `<file> 0 <end> <md5 of the packed bytes>`, a `<stamp>.index`, a
//! sidecar, later incrementals.
//!
//! It is named `<stamp>.fsz` but is not gzip, so that ZODB's repozo, which
//! cannot read it, fails loudly on it instead of restoring wrong bytes:
//! its `-R` and `-B` stop with "Not a gzipped file", its `-V` reports the
//! file missing. (Under any name it lists, a plain `.fs` would be copied
//! as it is; under a name it does not list, its `-R` would silently
//! restore the chain before.) Our readers tell it from gzip by its first
//! bytes ([`MAGIC`]).
//!
//! Layout: [`MAGIC`], then text lines
//!
//! ```text
//! size <bytes it rebuilds>
//! base <n>
//! <the n .dat lines of the base state: name start end md5>
//! ops deflate
//! <empty line>
//! ```
//!
//! then the operations as one raw deflate stream. The base state is the
//! concatenation of the listed files (which may themselves start with a
//! pack delta); they must stay in the repository as long as the delta
//! does ([`keep_bases`]).

use std::io::{BufRead, BufReader, Read};

use flate2::bufread::DeflateDecoder;

use super::dat::DatEntry;
use super::{Listing, Repository};
use crate::error::{Error, Result};
use crate::io::delta::Apply;
use crate::names;

/// First bytes of a pack delta. Not gzip's `1f 8b`.
pub const MAGIC: &[u8] = b"repozo-rs pack-delta 1\n";

/// Longest header accepted, in bytes: a base of 100,000 files fits.
const HEADER_MAX: usize = 16 * 1024 * 1024;

/// Pack deltas nest at most this deep (a delta against a chain starting
/// with a delta against …).
pub const DEPTH_MAX: usize = 32;

/// What a pack delta says before its operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Bytes it rebuilds (its `.dat` line's end).
    pub size: u64,
    /// The base state: files, oldest first, as their `.dat` lines (names
    /// only, no directory).
    pub base: Vec<DatEntry>,
}

impl Header {
    /// The header's bytes, [`MAGIC`] included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend(format!("size {}\nbase {}\n", self.size, self.base.len()).bytes());
        for e in &self.base {
            out.extend(format!("{} {} {} {}\n", e.base_name(), e.start, e.end, e.md5).bytes());
        }
        out.extend(b"ops deflate\n\n");
        out
    }

    /// Length of the base state.
    pub fn base_len(&self) -> u64 {
        self.base.last().map_or(0, |e| e.end)
    }

    /// Reads the header after [`MAGIC`] from `r` (which then stands at the
    /// operations). `path` names the file in errors.
    pub fn read_after_magic(r: &mut dyn BufRead, path: &str) -> Result<Header> {
        let mut taken = MAGIC.len();
        let mut line = String::new();
        let mut next = |what: &str, taken: &mut usize| -> Result<String> {
            line.clear();
            let n = r
                .take((HEADER_MAX - *taken) as u64)
                .read_line(&mut line)
                .map_err(|e| Error::io(path, e))?;
            let at = *taken;
            *taken += n;
            if !line.ends_with('\n') {
                return Err(damaged(
                    path,
                    at,
                    &format!("its header ends before the {what} line"),
                ));
            }
            Ok(line.trim_end_matches('\n').to_string())
        };
        let number = |l: &str, key: &str, at: usize| -> Result<u64> {
            l.strip_prefix(key)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| {
                    damaged(
                        path,
                        at,
                        &format!("its header has {l:?}, not {key}<number>"),
                    )
                })
        };
        let at = taken;
        let size = number(&next("size", &mut taken)?, "size ", at)?;
        let at = taken;
        let n = number(&next("base", &mut taken)?, "base ", at)?;
        let mut base = Vec::new();
        for i in 0..n {
            let at = taken;
            let l = next("base file", &mut taken)?;
            let e = DatEntry::parse(&l, path, i as usize + 3).map_err(|_| {
                damaged(path, at, &format!("its header lists {l:?} as a base file"))
            })?;
            if e.base_name() != e.file || !names::is_data_file(&e.file) {
                return Err(damaged(
                    path,
                    at,
                    &format!("its base file {:?} is not a backup file name", e.file),
                ));
            }
            base.push(e);
        }
        let at = taken;
        if next("ops", &mut taken)? != "ops deflate" || !next("end", &mut taken)?.is_empty() {
            return Err(damaged(
                path,
                at,
                "its header does not end with \"ops deflate\" and an empty line",
            ));
        }
        Ok(Header { size, base })
    }
}

fn damaged(path: &str, at: usize, what: &str) -> Error {
    Error::Layout(format!(
        "{path} is a damaged pack delta: {what} (at byte {at}); \
         restore an earlier date, or make a full backup (-B -F) to start a new chain"
    ))
}

/// Checks the base files `header` lists against `dat`, the bytes of the
/// `.dat` of the chain they start (`dat_path`): the n-th file listed must
/// be its n-th line, by name, range and md5. So a header that lists the
/// wrong md5 or size, or a base chain that is not the one the delta was
/// made against, is an error naming the delta (`path`) before any byte
/// is rebuilt. Only metadata is compared: the rebuilt bytes are checked
/// against the delta's own `.dat` line as any file's are.
pub fn check_base(header: &Header, dat: &[u8], path: &str, dat_path: &str) -> Result<()> {
    let text = String::from_utf8_lossy(super::dat::complete_lines(dat).0);
    let mut lines = text.lines();
    for (i, want) in header.base.iter().enumerate() {
        let line = lines.next();
        let same = line
            .and_then(|l| DatEntry::parse(l, dat_path, i + 1).ok())
            .is_some_and(|got| {
                got.base_name() == want.file
                    && (got.start, got.end) == (want.start, want.end)
                    && got.md5 == want.md5
            });
        if !same {
            return Err(Error::Layout(format!(
                "{path} does not match the backups it is based on: its header lists \
                 {:?}, but line {} of {dat_path} is {:?}; restore an earlier date, \
                 or make a full backup (-B -F) to start a new chain",
                format!("{} {} {} {}", want.file, want.start, want.end, want.md5),
                i + 1,
                line.unwrap_or("missing"),
            )));
        }
    }
    Ok(())
}

/// A pack delta being read: its header, and the rest of the file (the
/// operations) not yet read.
pub struct Opened<R: Read> {
    /// What the delta says before its operations.
    pub header: Header,
    /// The file, standing at the operations.
    body: BufReader<R>,
}

/// The operations stream of an [`Opened`] delta over `R`.
pub type Ops<R> = BufReader<DeflateDecoder<BufReader<R>>>;

/// Reads the [`MAGIC`] and the header of the pack delta `r` (read from its
/// first byte); `path` names it in errors.
pub fn open<R: Read>(r: R, path: &str) -> Result<Opened<R>> {
    let mut body = BufReader::with_capacity(64 * 1024, r);
    let mut magic = [0u8; MAGIC.len()];
    body.read_exact(&mut magic)
        .map_err(|e| Error::io(path, e))?;
    if !is_pack_delta(&magic) {
        return Err(damaged(
            path,
            0,
            "it does not start with the pack-delta mark",
        ));
    }
    let header = Header::read_after_magic(&mut body, path)?;
    Ok(Opened { header, body })
}

impl<R: Read> Opened<R> {
    /// The bytes the delta rebuilds, given `base`: a stream of its base
    /// state from its first byte (the concatenation of the header's base
    /// files, wherever they are read from). Exactly `header.size` bytes, or
    /// an error ([`Apply`]); whether they are the right ones is for the
    /// caller to check (the delta's `.dat` md5 or sidecar).
    pub fn rebuild<B: Read>(self, base: B) -> Apply<B, Ops<R>> {
        let ops = BufReader::with_capacity(64 * 1024, DeflateDecoder::new(self.body));
        Apply::new(base, ops, self.header.size)
    }
}

/// Whether a file starting with `head` is a pack delta.
pub fn is_pack_delta(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

/// Bytes [`header_of`] reads first: a header of a few hundred base files
/// fits, so listing a repository costs one small (ranged) read per `.fsz`
/// full.
const HEAD_READ: u64 = 64 * 1024;

/// The header of repository file `name` if it is a pack delta; `None` for
/// any other file (only `.fsz` fulls can be one) and for a file that is
/// gone.
///
/// Reads the first [`HEAD_READ`] bytes in one ranged read (on S3 one
/// ranged GET, never the whole object); only a header longer than that
/// (a base of more than about 700 files) takes a second ranged read, of
/// at most the longest header accepted.
pub fn header_of(repo: &Repository, name: &str) -> Result<Option<Header>> {
    if !(names::is_full(name) && names::is_gzip_name(name)) {
        return Ok(None);
    }
    let path = repo.path(name);
    let head = match repo.read_range(name, 0, HEAD_READ) {
        Ok(head) => head,
        Err(_) if !repo.exists(name)? => return Ok(None),
        Err(e) => return Err(e),
    };
    if !is_pack_delta(&head) {
        return Ok(None);
    }
    let full = head.len() as u64 == HEAD_READ;
    let rest = RestOf {
        repo,
        name,
        from: HEAD_READ,
        bytes: None,
        at: 0,
        wanted: full,
    };
    let mut r = std::io::BufReader::new(std::io::Cursor::new(&head[MAGIC.len()..]).chain(rest));
    Header::read_after_magic(&mut r, &path).map(Some)
}

/// The bytes of a header after the first [`HEAD_READ`], read in one ranged
/// read when (and only if) the parser gets there.
struct RestOf<'a> {
    repo: &'a Repository,
    name: &'a str,
    from: u64,
    bytes: Option<Vec<u8>>,
    at: usize,
    /// False when the first read already reached the end of the file.
    wanted: bool,
}

impl Read for RestOf<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.wanted {
            return Ok(0);
        }
        if self.bytes.is_none() {
            let len = HEADER_MAX as u64 - self.from;
            let got = self
                .repo
                .read_range(self.name, self.from, len)
                .map_err(std::io::Error::other)?;
            self.bytes = Some(got);
        }
        let bytes = self.bytes.as_deref().unwrap_or_default();
        let n = buf.len().min(bytes.len() - self.at);
        buf[..n].copy_from_slice(&bytes[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Checks, before anything is read or written, that the files a chain
/// starting with `first` needs besides its own are all in `listing`: if
/// `first` is a pack delta, its base files, and, where the base starts
/// with a pack delta too, that one's, and so on. The first one missing is
/// [`Error::PackDeltaBaseMissing`]. One small read per pack delta on the
/// way ([`header_of`]); nothing for a chain that does not start with a
/// `.fsz` full.
pub fn check_bases(repo: &Repository, listing: &Listing, first: &str) -> Result<()> {
    let mut current = first.to_string();
    for _ in 0..DEPTH_MAX {
        let Some(header) = header_of(repo, &current)? else {
            return Ok(());
        };
        let data = listing.data_files();
        for e in &header.base {
            if data.binary_search(&e.file).is_err() {
                return Err(Error::PackDeltaBaseMissing {
                    base: repo.path(&e.file),
                    delta: repo.path(&current),
                });
            }
        }
        match header.base.first() {
            Some(e) => current = e.file.clone(),
            None => return Ok(()),
        }
    }
    // Deeper than the reader goes: it says so when it gets there.
    Ok(())
}

/// A chain kept only because a kept pack delta is based on it
/// ([`keep_bases`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptBase {
    /// Its index in the chains given.
    pub chain: usize,
    /// The pack delta (file name) based on it.
    pub needed_by: String,
}

/// What [`keep_bases`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bases {
    /// Chains kept for a pack delta, in the order found.
    pub kept: Vec<KeptBase>,
    /// Base files a kept pack delta names that are in no chain: (delta,
    /// missing file). Nothing can keep them; `-R` and `-V` at the delta's
    /// dates fail, naming them.
    pub missing: Vec<(String, String)>,
}

/// Closes the set of kept chains under pack-delta dependencies: while a
/// kept chain starts with a pack delta whose base files lie in a chain
/// not kept, keeps that whole chain too (all its files, so it stays a
/// chain any reader can use), and so on through deltas of deltas.
///
/// `chains` are [`Listing::chains`]; `kept[i]` says whether chain `i` is
/// kept, and is set for every chain this keeps. `bases(first file)` gives
/// the base file names of a chain's first file if it is a pack delta
/// (`None` otherwise); it is asked only about kept chains, once each
/// ([`keep_bases_in`] reads the headers).
pub fn keep_bases(
    chains: &[&[String]],
    kept: &mut [bool],
    bases: &mut dyn FnMut(&str) -> Result<Option<Vec<String>>>,
) -> Result<Bases> {
    let mut out = Bases::default();
    let chain_of: std::collections::HashMap<&str, usize> = chains
        .iter()
        .enumerate()
        .flat_map(|(i, c)| c.iter().map(move |n| (n.as_str(), i)))
        .collect();
    let mut todo: Vec<usize> = (0..chains.len()).filter(|&i| kept[i]).rev().collect();
    while let Some(i) = todo.pop() {
        let delta = &chains[i][0];
        let Some(files) = bases(delta)? else {
            continue;
        };
        for file in files {
            match chain_of.get(file.as_str()).copied() {
                Some(j) if !kept[j] => {
                    kept[j] = true;
                    out.kept.push(KeptBase {
                        chain: j,
                        needed_by: delta.clone(),
                    });
                    todo.push(j);
                }
                Some(_) => {}
                None => out.missing.push((delta.clone(), file)),
            }
        }
    }
    Ok(out)
}

/// [`keep_bases`] reading the headers of the kept chains' first files in
/// `repo` ([`header_of`]: one small read per kept `.fsz` full, none for
/// other files).
pub fn keep_bases_in(repo: &Repository, chains: &[&[String]], kept: &mut [bool]) -> Result<Bases> {
    keep_bases(chains, kept, &mut |first| {
        Ok(header_of(repo, first)?.map(|h| h.base.into_iter().map(|e| e.file).collect()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(file: &str, start: u64, end: u64) -> DatEntry {
        DatEntry {
            file: file.into(),
            start,
            end,
            md5: "0123456789abcdef0123456789abcdef".into(),
        }
    }

    proptest::proptest! {
        /// Any edit of a header (bytes overwritten, the rest cut): a
        /// header or an error, never a panic.
        #[test]
        fn any_edited_header_reads_as_a_header_or_an_error(
            edits in proptest::collection::vec((0usize..200, proptest::num::u8::ANY), 0..8),
            cut in 0usize..200,
        ) {
            let mut bytes = Header {
                size: 150,
                base: vec![
                    entry("2026-01-01-00-00-00.fs", 0, 100),
                    entry("2026-01-02-00-00-00.deltafsz", 100, 150),
                ],
            }
            .encode()[MAGIC.len()..]
                .to_vec();
            for (at, v) in edits {
                let n = bytes.len();
                bytes[at % n] = v;
            }
            bytes.truncate(cut);
            let _ = Header::read_after_magic(&mut &bytes[..], "d.fsz");
        }
    }

    #[test]
    fn a_header_reads_back_and_leaves_the_reader_at_the_operations() {
        let h = Header {
            size: 1234,
            base: vec![
                entry("2026-01-01-00-00-00.fs", 0, 100),
                entry("2026-01-02-00-00-00.deltafsz", 100, 150),
            ],
        };
        let mut bytes = h.encode();
        bytes.extend(b"OPS");
        assert!(is_pack_delta(&bytes));
        let mut r = &bytes[MAGIC.len()..];
        assert_eq!(Header::read_after_magic(&mut r, "x").unwrap(), h);
        assert_eq!(r, b"OPS");
        assert_eq!(h.base_len(), 150);
    }

    #[test]
    fn a_cut_or_garbled_header_is_an_error_naming_the_file_and_offset() {
        let h = Header {
            size: 1,
            base: vec![entry("2026-01-01-00-00-00.fs", 0, 100)],
        };
        let bytes = h.encode();
        for cut in MAGIC.len()..bytes.len() {
            let mut r = &bytes[MAGIC.len()..cut];
            let err = Header::read_after_magic(&mut r, "d.fsz")
                .unwrap_err()
                .to_string();
            assert!(err.contains("d.fsz") && err.contains("at byte"), "{err}");
        }
        let bad = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("2026-01-01-00-00-00.fs", "../../etc/passwd");
        let mut r = &bad.as_bytes()[MAGIC.len()..];
        assert!(Header::read_after_magic(&mut r, "d.fsz").is_err());
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn kept_deltas_keep_their_base_chains_whole_and_transitively() {
        // a: plain chain; b: delta on a's two files; c: plain; d: delta on
        // b's chain; e: the newest, a plain full.
        let a = names(&["a.fs", "a1.deltafs", "a2.deltafs"]);
        let b = names(&["b.fsz", "b1.deltafsz"]);
        let c = names(&["c.fs"]);
        let d = names(&["d.fsz"]);
        let e = names(&["e.fs"]);
        let chains: Vec<&[String]> = vec![&a, &b, &c, &d, &e];
        let mut asked = Vec::new();
        let mut bases = |first: &str| {
            asked.push(first.to_string());
            Ok(match first {
                "b.fsz" => Some(names(&["a.fs", "a1.deltafs"])),
                "d.fsz" => Some(names(&["b.fsz", "b1.deltafsz", "gone.deltafs"])),
                _ => None,
            })
        };
        let mut kept = vec![false, false, false, true, true];
        let found = keep_bases(&chains, &mut kept, &mut bases).unwrap();
        assert_eq!(kept, vec![true, true, false, true, true]);
        assert_eq!(
            found.kept,
            vec![
                KeptBase {
                    chain: 1,
                    needed_by: "d.fsz".into()
                },
                KeptBase {
                    chain: 0,
                    needed_by: "b.fsz".into()
                },
            ]
        );
        assert_eq!(
            found.missing,
            vec![("d.fsz".to_string(), "gone.deltafs".to_string())]
        );
        // Only kept chains' first files were asked about, once each.
        asked.sort();
        assert_eq!(asked, vec!["a.fs", "b.fsz", "d.fsz", "e.fs"]);
        // A plain full kept alone keeps nothing else.
        let mut kept = vec![false, false, false, false, true];
        let found = keep_bases(&chains, &mut kept, &mut |f: &str| {
            Ok((f == "d.fsz").then(|| names(&["b.fsz"])))
        })
        .unwrap();
        assert_eq!(found, Bases::default());
        assert_eq!(kept, vec![false, false, false, false, true]);
    }

    fn local(files: &[(&str, &[u8])]) -> (tempfile::TempDir, Repository) {
        let d = tempfile::tempdir().unwrap();
        for (name, bytes) in files {
            std::fs::write(d.path().join(name), bytes).unwrap();
        }
        let repo = Repository::new(d.path().to_str().unwrap());
        (d, repo)
    }

    #[test]
    fn only_fsz_fulls_starting_with_the_magic_have_a_header_however_long() {
        // A base of 2,000 files: a header longer than the first read.
        let long = Header {
            size: 7,
            base: (0..2000u64)
                .map(|i| {
                    let stamp = crate::clock::Stamp::parse("2026-01-01-00-00-00")
                        .unwrap()
                        .plus_seconds(i);
                    let ext = if i == 0 { ".fs" } else { ".deltafsz" };
                    entry(&format!("{stamp}{ext}"), i, i + 1)
                })
                .collect(),
        };
        let mut long_bytes = long.encode();
        assert!(long_bytes.len() as u64 > HEAD_READ);
        long_bytes.extend(b"ops");
        let short = Header {
            size: 3,
            base: vec![entry("2026-01-01-00-00-00.fs", 0, 3)],
        };
        let short_bytes = short.encode();
        let (_d, repo) = local(&[
            ("2026-02-01-00-00-00.fsz", &long_bytes),
            ("2026-02-02-00-00-00.fsz", &short_bytes),
            ("2026-02-03-00-00-00.fsz", b"\x1f\x8b gzip, not a delta"),
            ("2026-02-04-00-00-00.fs", &short_bytes),
            ("2026-02-05-00-00-00.deltafsz", &short_bytes),
        ]);
        assert_eq!(
            header_of(&repo, "2026-02-01-00-00-00.fsz").unwrap(),
            Some(long)
        );
        assert_eq!(
            header_of(&repo, "2026-02-02-00-00-00.fsz").unwrap(),
            Some(short)
        );
        for other in [
            "2026-02-03-00-00-00.fsz",
            "2026-02-04-00-00-00.fs",
            "2026-02-05-00-00-00.deltafsz",
            "2026-02-06-00-00-00.fsz",
        ] {
            assert_eq!(header_of(&repo, other).unwrap(), None, "{other}");
        }
    }

    #[test]
    fn a_missing_base_is_named_with_the_delta_that_needs_it() {
        let b = Header {
            size: 3,
            base: vec![
                entry("2026-01-01-00-00-00.fs", 0, 3),
                entry("2026-01-02-00-00-00.deltafs", 3, 5),
            ],
        }
        .encode();
        let c = Header {
            size: 3,
            base: vec![entry("2026-01-03-00-00-00.fsz", 0, 3)],
        }
        .encode();
        let (_d, repo) = local(&[
            ("2026-01-01-00-00-00.fs", b"abc"),
            ("2026-01-03-00-00-00.fsz", &b),
            ("2026-01-04-00-00-00.fsz", &c),
        ]);
        let listing = repo.list().unwrap();
        // Through the delta the base is a delta of.
        let err = check_bases(&repo, &listing, "2026-01-04-00-00-00.fsz").unwrap_err();
        assert!(
            matches!(&err, Error::PackDeltaBaseMissing { base, delta }
                if base.ends_with("/2026-01-02-00-00-00.deltafs")
                    && delta.ends_with("/2026-01-03-00-00-00.fsz")),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("-B -F") && text.contains("earlier date"),
            "{text}"
        );
        std::fs::write(repo.path("2026-01-02-00-00-00.deltafs"), b"de").unwrap();
        let listing = repo.list().unwrap();
        check_bases(&repo, &listing, "2026-01-04-00-00-00.fsz").unwrap();
        check_bases(&repo, &listing, "2026-01-01-00-00-00.fs").unwrap();
    }

    #[test]
    fn base_files_must_be_the_lines_of_their_chains_dat() {
        let h = Header {
            size: 1,
            base: vec![
                entry("2026-01-01-00-00-00.fs", 0, 100),
                entry("2026-01-02-00-00-00.deltafsz", 100, 150),
            ],
        };
        let line = |file: &str, start: u64, end: u64, md5: &str| {
            format!("/some/repo/{file} {start} {end} {md5}\n")
        };
        let md5 = "0123456789abcdef0123456789abcdef";
        let good = line("2026-01-01-00-00-00.fs", 0, 100, md5)
            + &line("2026-01-02-00-00-00.deltafsz", 100, 150, md5);
        check_base(&h, good.as_bytes(), "d.fsz", "a.dat").unwrap();
        // A later line the delta does not use changes nothing.
        let longer = good.clone() + &line("2026-01-03-00-00-00.deltafsz", 150, 160, md5);
        check_base(&h, longer.as_bytes(), "d.fsz", "a.dat").unwrap();
        let other = "fedcba9876543210fedcba9876543210";
        for bad in [
            line("2026-01-01-00-00-00.fs", 0, 100, other)
                + &line("2026-01-02-00-00-00.deltafsz", 100, 150, md5),
            line("2026-01-01-00-00-00.fs", 0, 101, md5)
                + &line("2026-01-02-00-00-00.deltafsz", 101, 150, md5),
            line("2026-01-01-00-00-00.fs", 0, 100, md5),
            good[..good.len() - 1].to_string(),
            line("2026-01-01-00-00-00.fsz", 0, 100, md5)
                + &line("2026-01-02-00-00-00.deltafsz", 100, 150, md5),
        ] {
            let err = check_base(&h, bad.as_bytes(), "d.fsz", "a.dat")
                .unwrap_err()
                .to_string();
            assert!(err.contains("d.fsz") && err.contains("a.dat"), "{err}");
        }
    }
}
