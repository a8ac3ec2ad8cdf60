//! Chain selection: which files of a repository the state as of a date
//! needs (repozo's `find_files`), and the `-D` handling every operation
//! that reads a chain shares (recover, `--incremental`, verify): the date
//! validated, an empty one taken as now, "No files in repository" when
//! nothing is that old.

use super::{Chain, Listing, Repository, split_ext};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::report::{Event, Report};

/// Opens `repository` and selects the chain for `date` (`-D`): validates
/// it (an empty one means now, as repozo takes it) and returns the chain
/// with the date it was selected for (`date`, or now as a stamp). No
/// chain is repozo's "No files in repository" error ([`Error::NoFiles`]).
///
/// A repository URL that cannot be opened is reported before a bad date;
/// a missing directory when it is listed, after the "looking for files"
/// event, as repozo does ([`Repository::chain`]).
pub fn chain_for_date(
    repository: &str,
    date: Option<&str>,
    clock: &dyn Clock,
    report: &dyn Report,
) -> Result<(Chain, String)> {
    let repo = Repository::open(repository)?;
    let date = date.filter(|d| !d.is_empty());
    if let Some(d) = date
        && !crate::clock::validate_date(d)
    {
        return Err(Error::BadDate(d.to_string()));
    }
    let when = date.map_or_else(|| clock.now().to_string(), str::to_string);
    let (listing, chain) = repo.chain(&when, report)?;
    let chain = chain.ok_or_else(|| {
        Error::NoFiles(match date {
            Some(d) => format!("No files in repository before {d}"),
            None => "No files in repository".to_string(),
        })
    })?;
    // A pack delta whose base is gone fails here, naming the file, before
    // a byte is written anywhere. (A file that cannot be read fails where
    // it is read, as it always has.)
    if let Err(e @ Error::PackDeltaBaseMissing { .. }) =
        super::packdelta::check_bases(&repo, &listing, &chain.files()[0].name)
    {
        return Err(e);
    }
    if chain.dat_has_torn_tail() {
        report.event(&crate::report::Event::IgnoredTornDatLine(
            chain.dat_path().to_string(),
        ));
    }
    Ok((chain, when))
}

impl Repository {
    /// repozo's `find_files`: the chain that reproduces the state as of
    /// `when` — the newest full backup whose stamp is ≤ `when` plus every
    /// later incremental ≤ `when` — or `None` if no data file is ≤ `when`.
    ///
    /// `when` is compared as a *string*, as repozo does: a partial date such
    /// as `2026-11-26` sorts before every stamp of that day, so it selects
    /// backups strictly before it. If no full backup is ≤ `when`, every
    /// incremental ≤ `when` is returned (repozo's behaviour).
    ///
    /// Reports that it looks for files before it lists the directory (so a
    /// missing repository fails after that line, as in repozo), then lists
    /// it once; returns the listing too.
    pub fn chain(&self, when: &str, report: &dyn Report) -> Result<(Listing, Option<Chain>)> {
        report.event(&Event::LookingForFiles {
            when: when.to_string(),
        });
        let listing = self.list()?;
        let chain = self.select(&listing, when, report);
        Ok((listing, chain))
    }

    /// [`Repository::chain`] from a listing already made.
    pub fn chain_in(&self, listing: &Listing, when: &str, report: &dyn Report) -> Option<Chain> {
        report.event(&Event::LookingForFiles {
            when: when.to_string(),
        });
        self.select(listing, when, report)
    }

    fn select(&self, listing: &Listing, when: &str, report: &dyn Report) -> Option<Chain> {
        let chain = Chain::new(self, &select_chain(&listing.data, when));
        report.event(&match &chain {
            None => Event::NoFilesFound,
            Some(c) => Event::FilesNeeded {
                when: when.to_string(),
                files: c.paths(),
            },
        });
        chain
    }
}

/// Selects the chain for `when` from `names` sorted ascending; returns
/// names oldest first. See [`Repository::chain`].
pub fn select_chain<'a>(names: &'a [String], when: &str) -> Vec<&'a str> {
    let mut needed = Vec::new();
    for name in names.iter().rev() {
        let (root, ext) = split_ext(name);
        if root <= when {
            needed.push(name.as_str());
            if ext == ".fs" || ext == ".fsz" {
                break;
            }
        }
    }
    needed.reverse();
    needed
}
