//! `--list`: every restore point of a repository, grouped by chain.
//!
//! Reads names, sizes and `.dat` files, and the header of each `.fsz`
//! full (one small ranged read, to tell a pack delta,
//! [`crate::repo::packdelta`]); never a data file's contents beyond that,
//! never a modification time. Order is by file name (the UTC stamp), as
//! every repozo operation orders backups. Takes no lock: a listing made
//! while a backup runs may show its `.dat` line missing for the file being
//! written.

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::error::Result;
use crate::repo::{self, DatEntry, Listing, Repository, packdelta};

/// Options of `--list`.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Repository directory (`-r`), as given.
    pub repository: String,
}

/// A full or an incremental backup, or a pack delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `.fs` / `.fsz`: a whole Data.fs prefix.
    Full,
    /// `.deltafs` / `.deltafsz`: the bytes since the previous file.
    Incremental,
    /// A `.fsz` that is a pack delta (`-B --pack-delta`): the first file
    /// of a chain, a whole Data.fs prefix rebuilt from another chain.
    PackDelta,
}

impl Kind {
    /// `"full"`, `"incremental"` or `"pack delta"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Full => "full",
            Kind::Incremental => "incremental",
            Kind::PackDelta => "pack delta",
        }
    }
}

/// One data file: the state of the Data.fs it completes is a restore point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestorePoint {
    /// The UTC stamp of its name, `YYYY-MM-DD-HH-MM-SS`.
    pub stamp: String,
    /// The file name.
    pub name: String,
    /// The path, the repository as given joined with the name (as repozo
    /// prints and records it).
    pub path: String,
    /// Full or incremental.
    pub kind: Kind,
    /// Whether it is gzipped (its name ends with `fsz`).
    pub gzip: bool,
    /// Bytes on disk.
    pub stored_size: u64,
    /// The Data.fs position it ends at, from its chain's `.dat` line;
    /// `None` when the `.dat` has no (readable) line for it.
    pub end: Option<u64>,
    /// Whether `<stamp>.index` is present.
    pub index: bool,
    /// Whether its fast-hash sidecar `<stamp>.blake3` is present (backups
    /// of this tool; see [`crate::repo::sidecar`]). Whether it is sound
    /// is for `-V` to say.
    pub sidecar: bool,
    /// Its blob manifest `<stamp>.blobs` (backups with `--blob-dir`).
    pub blobs: Blobs,
    /// For a pack delta: the first file of the chain it is based on (the
    /// first of the base files its header lists).
    pub pack_delta_base: Option<String>,
    /// For a file a pack delta in the repository is based on: that delta
    /// (the newest, should there be several). Retention and `-k` keep the
    /// file's chain as long as they keep the delta.
    pub needed_by: Option<String>,
}

/// The blob manifest of a restore point, as far as its first line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blobs {
    /// No `<stamp>.blobs`: backed up without `--blob-dir` (or by ZODB's
    /// repozo).
    None,
    /// A manifest, recording this many blob files as missing.
    Listed {
        /// Revisions recorded as `gone`.
        gone: u64,
    },
    /// A `<stamp>.blobs` whose first line is not a manifest header.
    Unreadable,
}

/// Something about a chain that recover or `-V` would trip over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainNote {
    /// The chain has no full backup (its full was deleted): recover at
    /// its dates would restore incrementals alone.
    NoFull,
    /// The chain's `.dat` does not exist.
    NoDat {
        /// The `.dat` name.
        dat: String,
    },
    /// The `.dat` (or a line of it) cannot be read.
    DatUnreadable {
        /// What the reader said.
        why: String,
    },
    /// A data file of the chain that the `.dat` does not list.
    Unlisted {
        /// The data file name.
        file: String,
        /// The `.dat` name.
        dat: String,
    },
    /// A `.dat` line whose file is not in the chain.
    Missing {
        /// The file name the line records.
        file: String,
        /// The `.dat` name.
        dat: String,
    },
    /// A base file of the chain's pack delta that is not in the
    /// repository: no state of the chain can be rebuilt.
    BaseMissing {
        /// The pack delta (file name).
        delta: String,
        /// The missing base file (file name).
        file: String,
    },
    /// The chain's first file looks like a pack delta but its header
    /// cannot be read.
    PackDeltaUnreadable {
        /// What the reader said.
        why: String,
    },
}

impl fmt::Display for ChainNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainNote::NoFull => f.write_str(
                "no full backup: the full backup of these incrementals is gone, \
                 recover cannot use them",
            ),
            ChainNote::NoDat { dat } => {
                write!(
                    f,
                    "{dat} is missing: end positions unknown, -V and -R -w fail"
                )
            }
            ChainNote::DatUnreadable { why } => f.write_str(why),
            ChainNote::Unlisted { file, dat } => write!(f, "{file} is not listed in {dat}"),
            ChainNote::Missing { file, dat } => {
                write!(f, "{dat} lists {file}, which is missing")
            }
            ChainNote::BaseMissing { delta, file } => write!(
                f,
                "the pack delta {delta} is based on {file}, which is missing: -R and -V at \
                 this chain's dates fail; make a full backup (-B -F)"
            ),
            ChainNote::PackDeltaUnreadable { why } => f.write_str(why),
        }
    }
}

/// A chain: a full backup and the incrementals after it up to the next
/// full (see [`Listing::chains`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainInfo {
    /// The stamp of its first file (the full backup's).
    pub stamp: String,
    /// Its `.dat` name (`<stamp>.dat`).
    pub dat: String,
    /// Restore points, oldest first (at least one).
    pub points: Vec<RestorePoint>,
    /// What is wrong with it, if anything.
    pub notes: Vec<ChainNote>,
}

impl ChainInfo {
    /// Bytes on disk of its data files.
    pub fn stored_size(&self) -> u64 {
        self.points.iter().map(|p| p.stored_size).sum()
    }
}

/// What `--list` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepositoryList {
    /// Chains, oldest first.
    pub chains: Vec<ChainInfo>,
    /// `<stamp>.dat` / `<stamp>.index` files whose stamp no data file has.
    pub orphans: Vec<String>,
}

impl RepositoryList {
    /// Number of restore points (data files).
    pub fn restore_points(&self) -> usize {
        self.chains.iter().map(|c| c.points.len()).sum()
    }

    /// Bytes on disk of every data file.
    pub fn stored_size(&self) -> u64 {
        self.chains.iter().map(ChainInfo::stored_size).sum()
    }
}

/// Lists `opts.repository`. A repository that cannot be listed is an
/// error (`[Errno 2] No such file or directory: '<dir>'`); a `.dat` that
/// cannot be read is a note on its chain, not an error.
pub fn list(opts: &ListOptions) -> Result<RepositoryList> {
    let repo = Repository::open(&opts.repository)?;
    let listing = repo.list()?;
    describe(&repo, &listing)
}

/// [`list`] from a listing already made: stats every data file and reads
/// every chain's `.dat`.
pub fn describe(repo: &Repository, listing: &Listing) -> Result<RepositoryList> {
    // Every pack delta's header first: which files each one needs.
    let groups = listing.chains();
    let mut headers: Vec<Result<Option<packdelta::Header>, String>> = Vec::new();
    let mut needed_by: HashMap<&str, &str> = HashMap::new();
    for names in &groups {
        let header = packdelta::header_of(repo, &names[0]).map_err(|e| e.to_string());
        if let Ok(Some(h)) = &header {
            for e in &h.base {
                if let Ok(k) = listing.data_files().binary_search(&e.file) {
                    // Chains come oldest first: the newest delta wins.
                    needed_by.insert(listing.data_files()[k].as_str(), names[0].as_str());
                }
            }
        }
        headers.push(header);
    }
    let mut chains = Vec::new();
    for (names, header) in groups.iter().zip(headers) {
        let stamp = repo::stamp_of(&names[0]).to_string();
        let dat = format!("{stamp}.dat");
        let mut notes = Vec::new();
        if !repo::is_full(&names[0]) {
            notes.push(ChainNote::NoFull);
        }
        let header = match header {
            Ok(h) => h,
            Err(why) => {
                notes.push(ChainNote::PackDeltaUnreadable { why });
                None
            }
        };
        if let Some(h) = &header {
            for e in &h.base {
                if listing.data_files().binary_search(&e.file).is_err() {
                    notes.push(ChainNote::BaseMissing {
                        delta: names[0].clone(),
                        file: e.file.clone(),
                    });
                }
            }
        }
        let entries = read_dat(repo, listing, &dat, &mut notes);
        let ends: HashMap<&str, u64> = entries
            .iter()
            .flatten()
            .map(|e| (e.base_name(), e.end))
            .collect();
        let mut points = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let path = repo.path(name);
            let stored_size = match listing.size_of(name) {
                Some(size) => size,
                // Gone since the listing (removed by hand): nothing stored.
                None => repo.size(name)?.unwrap_or(0),
            };
            let end = ends.get(name.as_str()).copied();
            if end.is_none() && entries.is_some() {
                notes.push(ChainNote::Unlisted {
                    file: name.clone(),
                    dat: dat.clone(),
                });
            }
            let stamp = repo::stamp_of(name).to_string();
            points.push(RestorePoint {
                index: listing.has_meta(&format!("{stamp}.index")),
                sidecar: listing.has_meta(&crate::names::sidecar_name(&stamp)),
                blobs: if listing.has_meta(&format!("{stamp}.blobs")) {
                    match super::blobs::peek_gone(repo, &format!("{stamp}.blobs")) {
                        Some(gone) => Blobs::Listed { gone },
                        None => Blobs::Unreadable,
                    }
                } else {
                    Blobs::None
                },
                stamp,
                name: name.clone(),
                path,
                kind: match &header {
                    Some(_) if i == 0 => Kind::PackDelta,
                    _ if repo::is_full(name) => Kind::Full,
                    _ => Kind::Incremental,
                },
                pack_delta_base: match &header {
                    Some(h) if i == 0 => h.base.first().map(|e| e.file.clone()),
                    _ => None,
                },
                needed_by: needed_by.get(name.as_str()).map(|d| d.to_string()),
                gzip: repo::is_gzip_name(name),
                stored_size,
                end,
            });
        }
        for e in entries.iter().flatten() {
            // A line naming a file of another chain is that chain's
            // business; only a file that is nowhere is missing.
            if listing
                .data_files()
                .binary_search_by(|n| n.as_str().cmp(e.base_name()))
                .is_err()
            {
                notes.push(ChainNote::Missing {
                    file: e.base_name().to_string(),
                    dat: dat.clone(),
                });
            }
        }
        chains.push(ChainInfo {
            stamp,
            dat,
            points,
            notes,
        });
    }
    let stamps: HashSet<&str> = listing
        .data_files()
        .iter()
        .map(|n| repo::stamp_of(n))
        .collect();
    let orphans = listing
        .meta_files()
        .iter()
        .filter(|m| !stamps.contains(repo::stamp_of(m)))
        .cloned()
        .collect();
    Ok(RepositoryList { chains, orphans })
}

/// The readable lines of a chain's `.dat`, `None` if it is missing or
/// cannot be read at all; what cannot be read becomes a note.
fn read_dat(
    repo: &Repository,
    listing: &Listing,
    dat: &str,
    notes: &mut Vec<ChainNote>,
) -> Option<Vec<DatEntry>> {
    if !listing.has_meta(dat) {
        notes.push(ChainNote::NoDat {
            dat: dat.to_string(),
        });
        return None;
    }
    let path = repo.path(dat);
    let raw = match repo.read(dat) {
        Ok(raw) => raw,
        Err(e) => {
            notes.push(ChainNote::DatUnreadable { why: e.to_string() });
            return None;
        }
    };
    let mut entries = Vec::new();
    let complete = crate::repo::dat::complete_lines(&raw).0;
    for (i, line) in String::from_utf8_lossy(complete).lines().enumerate() {
        match DatEntry::parse(line, &path, i + 1) {
            Ok(e) => entries.push(e),
            Err(e) => notes.push(ChainNote::DatUnreadable { why: e.to_string() }),
        }
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_with(files: &[(&str, &[u8])]) -> (tempfile::TempDir, Repository) {
        let d = tempfile::tempdir().unwrap();
        for (name, bytes) in files {
            std::fs::write(d.path().join(name), bytes).unwrap();
        }
        let repo = Repository::new(d.path().to_str().unwrap());
        (d, repo)
    }

    #[test]
    fn restore_points_are_grouped_by_chain_with_ends_from_the_dat() {
        let dat = "r/2026-01-01-00-00-00.fs 0 10 a\nr/2026-01-02-00-00-00.deltafsz 10 25 b\n";
        let (_d, repo) = repo_with(&[
            ("2026-01-01-00-00-00.fs", b"0123456789"),
            ("2026-01-01-00-00-00.dat", dat.as_bytes()),
            ("2026-01-01-00-00-00.index", b"i"),
            ("2026-01-02-00-00-00.deltafsz", b"zz"),
            ("2026-01-03-00-00-00.fsz", b"abc"),
            ("notes.txt", b"not ours"),
        ]);
        let l = list(&ListOptions {
            repository: repo.dir().to_string(),
        })
        .unwrap();
        assert_eq!(l.chains.len(), 2);
        let a = &l.chains[0];
        assert_eq!(a.stamp, "2026-01-01-00-00-00");
        assert!(a.notes.is_empty(), "{:?}", a.notes);
        assert_eq!(a.points[0].kind, Kind::Full);
        assert_eq!(a.points[0].end, Some(10));
        assert_eq!(a.points[0].stored_size, 10);
        assert!(a.points[0].index);
        assert_eq!(a.points[1].kind, Kind::Incremental);
        assert!(a.points[1].gzip);
        assert_eq!(a.points[1].end, Some(25));
        assert!(!a.points[1].index);
        let b = &l.chains[1];
        assert_eq!(b.points[0].end, None);
        assert_eq!(
            b.notes,
            vec![ChainNote::NoDat {
                dat: "2026-01-03-00-00-00.dat".into()
            }]
        );
        assert_eq!(l.restore_points(), 3);
        assert_eq!(l.stored_size(), 15);
    }

    #[test]
    fn unlisted_files_missing_files_damaged_lines_and_orphans_are_noted() {
        let dat = "r/2026-01-01-00-00-00.fs 0 10 a\n\
                   r/2026-01-02-00-00-00.deltafs 10 25 b\n\
                   garbage\n";
        let (_d, repo) = repo_with(&[
            ("2026-01-01-00-00-00.fs", b"x"),
            ("2026-01-01-00-00-00.dat", dat.as_bytes()),
            ("2026-01-03-00-00-00.deltafs", b"y"),
            ("2025-01-01-00-00-00.index", b""),
        ]);
        let l = describe(&repo, &repo.list().unwrap()).unwrap();
        let notes = &l.chains[0].notes;
        assert!(matches!(&notes[0], ChainNote::DatUnreadable { why } if why.contains("line 3")));
        assert!(notes.contains(&ChainNote::Unlisted {
            file: "2026-01-03-00-00-00.deltafs".into(),
            dat: "2026-01-01-00-00-00.dat".into()
        }));
        assert!(notes.contains(&ChainNote::Missing {
            file: "2026-01-02-00-00-00.deltafs".into(),
            dat: "2026-01-01-00-00-00.dat".into()
        }));
        assert_eq!(l.orphans, vec!["2025-01-01-00-00-00.index"]);
    }

    #[test]
    fn a_pack_delta_is_its_own_kind_and_the_files_it_needs_say_so() {
        let delta = |files: &[&str]| {
            packdelta::Header {
                size: 10,
                base: files
                    .iter()
                    .map(|f| DatEntry {
                        file: f.to_string(),
                        start: 0,
                        end: 1,
                        md5: "0123456789abcdef0123456789abcdef".into(),
                    })
                    .collect(),
            }
            .encode()
        };
        let b = delta(&["2026-01-01-00-00-00.fs", "2026-01-02-00-00-00.deltafs"]);
        let c = delta(&["2026-01-03-00-00-00.fsz", "2026-01-03-12-00-00.deltafsz"]);
        let (_d, repo) = repo_with(&[
            ("2026-01-01-00-00-00.fs", b"0123456789"),
            ("2026-01-02-00-00-00.deltafs", b"x"),
            ("2026-01-03-00-00-00.fsz", &b),
            ("2026-01-04-00-00-00.fsz", &c),
            ("2026-01-05-00-00-00.fsz", b"\x1f\x8bnot a delta"),
        ]);
        let l = describe(&repo, &repo.list().unwrap()).unwrap();
        let point = |chain: usize, i: usize| &l.chains[chain].points[i];
        assert_eq!(point(0, 0).kind, Kind::Full);
        assert_eq!(
            point(0, 0).needed_by.as_deref(),
            Some("2026-01-03-00-00-00.fsz")
        );
        assert_eq!(
            point(0, 1).needed_by.as_deref(),
            Some("2026-01-03-00-00-00.fsz")
        );
        assert_eq!(point(1, 0).kind, Kind::PackDelta);
        assert_eq!(point(1, 0).kind.as_str(), "pack delta");
        assert_eq!(
            point(1, 0).pack_delta_base.as_deref(),
            Some("2026-01-01-00-00-00.fs")
        );
        // A delta of a delta: needed, and based on another chain.
        assert_eq!(
            point(1, 0).needed_by.as_deref(),
            Some("2026-01-04-00-00-00.fsz")
        );
        assert_eq!(point(2, 0).kind, Kind::PackDelta);
        assert!(l.chains[2].notes.contains(&ChainNote::BaseMissing {
            delta: "2026-01-04-00-00-00.fsz".into(),
            file: "2026-01-03-12-00-00.deltafsz".into(),
        }));
        assert_eq!(point(3, 0).kind, Kind::Full);
        assert_eq!(point(3, 0).pack_delta_base, None);
        assert_eq!(point(3, 0).needed_by, None);
        assert!(
            !l.chains[1]
                .notes
                .iter()
                .any(|n| matches!(n, ChainNote::BaseMissing { .. }))
        );
    }

    #[test]
    fn incrementals_without_their_full_are_a_chain_marked_as_such() {
        let (_d, repo) = repo_with(&[("2026-01-02-00-00-00.deltafs", b"y")]);
        let l = describe(&repo, &repo.list().unwrap()).unwrap();
        assert_eq!(l.chains[0].notes[0], ChainNote::NoFull);
    }

    #[test]
    fn a_missing_repository_says_so_with_exit_code_10() {
        let err = list(&ListOptions {
            repository: "/nonexistent-repo-dir".into(),
        })
        .unwrap_err();
        assert!(matches!(err, crate::Error::NoRepository(_)), "{err}");
        assert_eq!(err.exit_code(), crate::error::EXIT_NO_REPOSITORY);
    }
}
