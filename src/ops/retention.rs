//! Retention by name: which chains to keep, which to remove, and the
//! removal itself (`--keep`, `--keep-daily`, `--keep-weekly`,
//! `--keep-monthly`, `--dry-run`).
//!
//! Everything is decided from file names, never from modification times:
//! a backup's time is the UTC stamp in its name, the same one chain
//! selection uses. [`plan`] is a pure function of a [`Listing`];
//! [`plan_with_bases`] adds what kept pack deltas need, read from their
//! headers (one small read per kept `.fsz` full); [`retain`] lists the
//! repository under the repository lock, plans and removes.
//!
//! # Rules
//!
//! Restore points are the data files; a chain is a full backup and the
//! incrementals after it up to the next full ([`Listing::chains`]).
//!
//! * `--keep=N` keeps the N newest chains.
//! * `--keep-daily=N` (weekly, monthly) keeps the newest restore point of
//!   each of the last N days (ISO weeks, months) that have restore points
//!   (restic's semantics: days without backups do not count).
//! * A chain is kept whole when any rule keeps one of its restore points,
//!   and the newest chain is always kept.
//! * A chain that a kept pack delta is based on ([`crate::repo::packdelta`])
//!   is kept whole too ([`Reason::NeededBy`]), and so is the chain that
//!   one is based on if it starts with a pack delta, and so on: the kept
//!   set is closed under dependencies. A plain full backup needs nothing,
//!   so once one is kept (`-B -F`), older chains go by the rules alone.
//! * Every other chain is removed whole: its data files, `.dat` and
//!   `.index` files.
//!
//! # Removal order, and why
//!
//! Removal must never leave a repository that recover reads as something
//! it is not. Recover (ours and ZODB's) picks, for a date, the newest full
//! backup at or before it and every incremental after that full up to the
//! date, by data file names alone; ours then checks each file against the
//! chain's `.dat` (size and md5) and refuses a chain whose `.dat` is
//! missing. So:
//!
//! * A chain's **incrementals go first, newest first**, and **its full
//!   after them**. Were the full removed first, its remaining incrementals
//!   would follow the previous chain's files, and a recover at their dates
//!   would append them to an older, unrelated state (ZODB's repozo: a
//!   corrupt Data.fs with exit code 0). Removing from the newest back
//!   leaves, at every instant, the full and a prefix of its incrementals:
//!   a shorter chain that restores exactly the states of the files still
//!   there.
//! * The chain's **`.dat` goes last**, after the full: until then every
//!   file left is listed in it (it lists more, which neither tool minds),
//!   so every remaining restore point still recovers *with* verification.
//!   Removed before the full, it would leave a lone full that our recover
//!   refuses without `--no-verify`.
//! * Each data file's **`.index` goes just before the file**: recover
//!   installs the `.index` of the last file it uses, so an `.index` is
//!   never left for a file that is gone (a file left without its `.index`
//!   only makes ZODB rebuild the index on open).
//! * **Chains go newest first.** A pack delta is always newer than the
//!   chain it is based on, so a removed delta's chain is gone before its
//!   base starts to go: a crash never leaves a delta whose base is half
//!   removed.
//!
//! A crash between a full and its `.dat` leaves that `.dat` without data
//! files. No recover reads it, `--list` flags it, and the next retention
//! run removes it with any other such leftover: a `<stamp>.dat` or
//! `<stamp>.index` that no data file has, **older than the newest chain**
//! (ZODB's repozo, which takes no lock, writes a backup's `.index` before
//! its data file; that stamp is the newest, so it is never touched).
//!
//! A crash at any point thus leaves only complete, shorter chains, such
//! leftovers, and every file the run had not reached yet. Planning again
//! on that repository keeps the same chains and removes exactly the rest
//! (a removed restore point never decided a kept one; property-tested
//! below), so the next run finishes the job. The newest chain, the one
//! backups continue, is never touched.
//!
//! Nothing else is ever touched: names that are not repozo data files,
//! `.dat` and `.index` files, and `.dat`/`.index` files of a stamp that a
//! kept data file has or that is not older than the newest chain.

use std::collections::HashSet;
use std::fmt;

use super::Ctx;
use crate::clock::Stamp;
use crate::error::Result;
use crate::failpoint;
use crate::lock;
use crate::repo::{self, Listing, Repository, packdelta};
use crate::report::Event;

/// How many chains or periods to keep. Every count is at least 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// `--keep=N`: the N newest chains.
    pub last: Option<u32>,
    /// `--keep-daily=N`: the newest restore point of each of the last N
    /// days that have one.
    pub daily: Option<u32>,
    /// `--keep-weekly=N`: the same per ISO week.
    pub weekly: Option<u32>,
    /// `--keep-monthly=N`: the same per month.
    pub monthly: Option<u32>,
}

impl Policy {
    /// Whether no rule is set.
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }
}

/// A retention to apply: the rules, and whether only to say what would
/// be removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// The rules.
    pub policy: Policy,
    /// `--dry-run`: remove nothing, report what would be removed.
    pub dry_run: bool,
}

/// Options of a retention run without a backup (`--keep…` with `-r`).
#[derive(Debug, Clone, Default)]
pub struct RetainOptions {
    /// Repository directory (`-r`), as given.
    pub repository: String,
    /// What to keep.
    pub retention: Retention,
    /// How long to wait for a backup holding the repository lock.
    /// Default: [`lock::DEFAULT_WAIT`] (60 s).
    pub lock_wait: Option<std::time::Duration>,
}

/// A calendar period of the `--keep-daily/weekly/monthly` rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// A UTC day, `2026-11-26`.
    Day,
    /// An ISO week, `2026-W48`.
    Week,
    /// A month, `2026-11`.
    Month,
}

impl Period {
    /// The period a stamp falls in, e.g. `2026-W48`; `None` for a stamp
    /// that is not a calendar date (such a file matches no period).
    pub fn bucket(self, stamp: &str) -> Option<String> {
        let s = Stamp::parse(stamp)?;
        Some(match self {
            Period::Day => format!("{:04}-{:02}-{:02}", s.year, s.month, s.day),
            Period::Week => {
                let (year, week) = s.iso_week();
                format!("{year:04}-W{week:02}")
            }
            Period::Month => format!("{:04}-{:02}", s.year, s.month),
        })
    }

    fn noun(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }

    fn option(self) -> &'static str {
        match self {
            Period::Day => "--keep-daily",
            Period::Week => "--keep-weekly",
            Period::Month => "--keep-monthly",
        }
    }
}

/// Why a chain is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// It is the newest chain (always kept: backups continue it).
    Newest,
    /// It is one of the `n` newest chains (`--keep=n`).
    Last(u32),
    /// A kept pack delta (this file name) is based on it
    /// ([`crate::repo::packdelta`]): removing it would leave that delta
    /// nothing to rebuild its states from.
    NeededBy(String),
    /// One of its restore points is the newest of a kept period.
    Period {
        /// Day, week or month.
        period: Period,
        /// The period, e.g. `2026-W48`.
        bucket: String,
        /// The stamp of the restore point kept.
        point: String,
        /// The rule's count.
        n: u32,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Newest => f.write_str("the newest chain"),
            Reason::Last(1) => f.write_str("--keep=1"),
            Reason::Last(n) => write!(f, "one of the {n} newest chains (--keep={n})"),
            Reason::NeededBy(delta) => write!(
                f,
                "needed by {delta} (a kept pack delta based on this chain)"
            ),
            Reason::Period {
                period,
                bucket,
                point,
                n,
            } => write!(
                f,
                "{point} is the newest of {} {bucket} ({}={n})",
                period.noun(),
                period.option()
            ),
        }
    }
}

/// The decision for one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainPlan {
    /// The stamp of its first file.
    pub stamp: String,
    /// Its data files, oldest first.
    pub files: Vec<String>,
    /// Why it is kept; empty if it is removed.
    pub keep: Vec<Reason>,
    /// File names to remove, in removal order (see the module doc);
    /// empty if it is kept.
    pub remove: Vec<String>,
}

impl ChainPlan {
    /// Whether the chain is kept.
    pub fn kept(&self) -> bool {
        !self.keep.is_empty()
    }
}

/// The decision for a whole repository: every chain, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// One entry per chain, oldest first.
    pub chains: Vec<ChainPlan>,
    /// `.dat` and `.index` files that no data file has, older than the
    /// newest chain: left by an interrupted removal (see the module doc).
    /// Removed after the chains.
    pub leftovers: Vec<String>,
}

impl Plan {
    /// Every file name to remove, in removal order: the chains newest
    /// first (see the module doc), then the leftovers.
    pub fn removals(&self) -> impl Iterator<Item = &str> {
        self.chains
            .iter()
            .rev()
            .flat_map(|c| c.remove.iter())
            .chain(&self.leftovers)
            .map(String::as_str)
    }

    /// Number of chains kept.
    pub fn kept_chains(&self) -> usize {
        self.chains.iter().filter(|c| c.kept()).count()
    }

    /// Number of chains removed.
    pub fn removed_chains(&self) -> usize {
        self.chains.len() - self.kept_chains()
    }
}

/// Decides which chains of `listing` to keep under `policy`, from the
/// names alone: for a repository without pack deltas. Pure.
pub fn plan(listing: &Listing, policy: &Policy) -> Plan {
    let keep = by_rules(listing, policy);
    assemble(listing, keep)
}

/// [`plan`], then keeps every chain a kept pack delta is based on, and
/// theirs ([`packdelta::keep_bases`]): the kept set is closed under
/// dependencies. `bases(name)` gives the base files of a chain's first
/// file if it is a pack delta; it is asked about kept chains only.
pub fn plan_with_bases(
    listing: &Listing,
    policy: &Policy,
    bases: &mut dyn FnMut(&str) -> Result<Option<Vec<String>>>,
) -> Result<Plan> {
    let mut keep = by_rules(listing, policy);
    let chains = listing.chains();
    let mut kept: Vec<bool> = keep.iter().map(|k| !k.is_empty()).collect();
    let found = packdelta::keep_bases(&chains, &mut kept, bases)?;
    for base in found.kept {
        keep[base.chain].push(Reason::NeededBy(base.needed_by));
    }
    Ok(assemble(listing, keep))
}

/// Why each chain of `listing` is kept by the rules (empty: it is not).
fn by_rules(listing: &Listing, policy: &Policy) -> Vec<Vec<Reason>> {
    let groups = listing.chains();
    let mut keep: Vec<Vec<Reason>> = vec![Vec::new(); groups.len()];
    if let Some(last) = keep.last_mut() {
        last.push(Reason::Newest);
    }
    if let Some(n) = policy.last {
        for reasons in keep.iter_mut().rev().take(n as usize) {
            reasons.push(Reason::Last(n));
        }
    }
    // Every restore point with its chain, newest first.
    let points: Vec<(usize, &str)> = groups
        .iter()
        .enumerate()
        .flat_map(|(i, g)| g.iter().map(move |n| (i, repo::stamp_of(n))))
        .rev()
        .collect();
    for (period, n) in [
        (Period::Day, policy.daily),
        (Period::Week, policy.weekly),
        (Period::Month, policy.monthly),
    ] {
        let Some(n) = n else { continue };
        let mut seen = 0;
        let mut current: Option<String> = None;
        for &(chain, stamp) in &points {
            if seen == n {
                break;
            }
            let Some(bucket) = period.bucket(stamp) else {
                continue;
            };
            // Points are newest first, so the first of each period is its
            // newest and the periods come one after the other.
            if current.as_deref() != Some(bucket.as_str()) {
                seen += 1;
                keep[chain].push(Reason::Period {
                    period,
                    bucket: bucket.clone(),
                    point: stamp.to_string(),
                    n,
                });
                current = Some(bucket);
            }
        }
    }
    keep
}

/// The plan that keeps the chains `keep` gives reasons for.
fn assemble(listing: &Listing, keep: Vec<Vec<Reason>>) -> Plan {
    let groups = listing.chains();
    let stamps: HashSet<&str> = listing
        .data_files()
        .iter()
        .map(|n| repo::stamp_of(n))
        .collect();
    let newest = groups.last().map(|g| repo::stamp_of(&g[0]));
    let leftovers = listing
        .meta_files()
        .iter()
        .filter(|m| {
            let stamp = repo::stamp_of(m);
            !stamps.contains(stamp) && newest.is_some_and(|newest| stamp < newest)
        })
        .cloned()
        .collect();
    let chains = groups
        .iter()
        .zip(keep)
        .map(|(files, keep)| {
            let remove = if keep.is_empty() {
                removal_order(listing, files)
            } else {
                Vec::new()
            };
            ChainPlan {
                stamp: repo::stamp_of(&files[0]).to_string(),
                files: files.to_vec(),
                keep,
                remove,
            }
        })
        .collect();
    Plan { chains, leftovers }
}

/// The files of a removed chain, in the order they are removed: for each
/// data file from the newest back, its blob manifest, sidecar and `.index` (and a `.dat` of its
/// stamp, which only a full has normally), then the file itself; the
/// chain's `.dat` last. See the module doc.
///
/// A `.dat` or `.index` is never removed while a data file of another
/// chain has its stamp: ZODB's repozo can write an incremental and a full
/// in the same second (`T.deltafs` then sorts before `T.fs` and ends the
/// previous chain), and `T.dat`/`T.index` then belong to the kept `T.fs`.
fn removal_order(listing: &Listing, files: &[String]) -> Vec<String> {
    let ours: HashSet<&str> = files.iter().map(String::as_str).collect();
    let elsewhere: HashSet<&str> = listing
        .data_files()
        .iter()
        .filter(|n| !ours.contains(n.as_str()))
        .map(|n| repo::stamp_of(n))
        .collect();
    let removable =
        |meta: &str| listing.has_meta(meta) && !elsewhere.contains(repo::stamp_of(meta));
    let chain_dat = format!("{}.dat", repo::stamp_of(&files[0]));
    let mut out = Vec::new();
    for name in files.iter().rev() {
        let stamp = repo::stamp_of(name);
        for meta in [
            format!("{stamp}.blobs"),
            format!("{stamp}.blake3"),
            format!("{stamp}.index"),
            format!("{stamp}.dat"),
        ] {
            if meta != chain_dat && removable(&meta) && !out.contains(&meta) {
                out.push(meta);
            }
        }
        out.push(name.clone());
    }
    if removable(&chain_dat) && !out.contains(&chain_dat) {
        out.push(chain_dat);
    }
    out
}

/// A file removed (or, under `--dry-run`, that would be removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedFile {
    /// Its path (the repository as given joined with the name).
    pub path: String,
    /// The stamp of its chain; `None` for a leftover ([`Plan::leftovers`]).
    pub chain: Option<String>,
    /// Its size in bytes when it was removed.
    pub size: u64,
}

/// What a retention run decided and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// The decision.
    pub plan: Plan,
    /// Whether this was a dry run (nothing removed).
    pub dry_run: bool,
    /// The files removed (or that would be), in order.
    pub files: Vec<RemovedFile>,
}

impl RetentionOutcome {
    /// Total size of [`RetentionOutcome::files`].
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Applies `opts.retention` to `opts.repository` on its own: takes the
/// repository lock (waiting as a backup waits), lists, plans, removes.
pub fn retain(opts: &RetainOptions, ctx: Ctx) -> Result<RetentionOutcome> {
    let repo = Repository::open(&opts.repository)?;
    let held = repo.lock(opts.lock_wait.unwrap_or(lock::DEFAULT_WAIT))?;
    let outcome = retain_locked(&repo, &opts.retention, ctx)?;
    drop(held);
    Ok(outcome)
}

/// [`retain`] for a caller that holds the repository lock (a backup).
pub(crate) fn retain_locked(
    repo: &Repository,
    retention: &Retention,
    ctx: Ctx,
) -> Result<RetentionOutcome> {
    let listing = repo.list()?;
    let plan =
        plan_with_bases(&listing, &retention.policy, &mut |first| {
            Ok(packdelta::header_of(repo, first)?
                .map(|h| h.base.into_iter().map(|e| e.file).collect()))
        })?;
    if !retention.dry_run {
        for chain in &plan.chains {
            for reason in &chain.keep {
                let Reason::NeededBy(delta) = reason else {
                    continue;
                };
                for file in &chain.files {
                    ctx.report.event(&Event::KeptForPackDelta {
                        file: repo.path(file),
                        needed_by: repo.path(delta),
                    });
                }
            }
        }
    }
    let mut files = Vec::new();
    let removals = plan
        .chains
        .iter()
        .rev()
        .flat_map(|c| c.remove.iter().map(|n| (n, Some(&c.stamp))))
        .chain(plan.leftovers.iter().map(|n| (n, None)));
    for (name, chain) in removals {
        let chain = chain.cloned();
        let path = repo.path(name);
        // Gone already (removed by hand meanwhile): nothing to do.
        let Some(size) = repo.entry_size(name)? else {
            continue;
        };
        if !retention.dry_run {
            ctx.report.event(&Event::RemovingExpired {
                file: path.clone(),
                chain: chain.clone(),
            });
            if !repo.remove(name)? {
                continue;
            }
            failpoint::hit("retain:removed-one");
        }
        files.push(RemovedFile { path, chain, size });
    }
    if !retention.dry_run && !files.is_empty() {
        // Make the removals durable before saying they are done.
        repo.sync()?;
        super::blobs::collect_garbage(repo, ctx)?;
    }
    Ok(RetentionOutcome {
        plan,
        dry_run: retention.dry_run,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(last: u32, daily: u32, weekly: u32, monthly: u32) -> Policy {
        let some = |n: u32| (n > 0).then_some(n);
        Policy {
            last: some(last),
            daily: some(daily),
            weekly: some(weekly),
            monthly: some(monthly),
        }
    }

    fn kept_stamps(plan: &Plan) -> Vec<&str> {
        plan.chains
            .iter()
            .filter(|c| c.kept())
            .map(|c| c.stamp.as_str())
            .collect()
    }

    #[test]
    fn a_dat_whose_stamp_a_kept_full_has_is_never_removed() {
        // ZODB's repozo, full and incremental in one second, then -BQ: the
        // .deltafs sorts before the .fs of its stamp and ends the old chain.
        let l = Listing::from_names([
            "2026-01-01-00-00-00.deltafs",
            "2026-01-01-00-00-00.fs",
            "2026-01-01-00-00-00.dat",
            "2026-01-01-00-00-00.index",
            "2026-01-02-00-00-00.deltafs",
            "2026-01-02-00-00-00.index",
            "2026-01-03-00-00-00.fs",
            "2026-01-03-00-00-00.dat",
            "2026-01-03-00-00-00.index",
        ]);
        let p = plan(&l, &policy(2, 0, 0, 0));
        let removed: Vec<&String> = p.chains.iter().flat_map(|c| &c.remove).collect();
        assert_eq!(removed, vec!["2026-01-01-00-00-00.deltafs"], "{p:?}");
    }

    fn with_meta(data: &[&str]) -> Listing {
        let mut names: Vec<String> = Vec::new();
        for d in data {
            names.push(d.to_string());
            names.push(format!("{}.index", &d[..19]));
            if repo::is_full(d) {
                names.push(format!("{}.dat", &d[..19]));
            }
        }
        Listing::from_names(names)
    }

    #[test]
    fn keep_n_keeps_the_n_newest_chains_whole() {
        let l = with_meta(&[
            "2026-01-01-00-00-00.fs",
            "2026-01-02-00-00-00.deltafs",
            "2026-01-03-00-00-00.fsz",
            "2026-01-04-00-00-00.deltafsz",
            "2026-01-05-00-00-00.fs",
        ]);
        let p = plan(&l, &policy(2, 0, 0, 0));
        assert_eq!(
            kept_stamps(&p),
            vec!["2026-01-03-00-00-00", "2026-01-05-00-00-00"]
        );
        assert_eq!(
            p.chains[0].remove,
            vec![
                "2026-01-02-00-00-00.index",
                "2026-01-02-00-00-00.deltafs",
                "2026-01-01-00-00-00.index",
                "2026-01-01-00-00-00.fs",
                "2026-01-01-00-00-00.dat",
            ]
        );
        assert_eq!(p.chains[2].keep, vec![Reason::Newest, Reason::Last(2)]);
    }

    #[test]
    fn a_kept_pack_delta_keeps_the_chains_it_is_based_on_and_chains_go_newest_first() {
        // B is a pack delta on A's chain, C on B's; D is a plain full.
        let l = with_meta(&[
            "2026-01-01-00-00-00.fs",
            "2026-01-02-00-00-00.deltafs",
            "2026-01-03-00-00-00.fsz",
            "2026-01-04-00-00-00.deltafsz",
            "2026-01-05-00-00-00.fsz",
            "2026-01-06-00-00-00.fs",
        ]);
        let mut bases = |first: &str| -> Result<Option<Vec<String>>> {
            Ok(match first {
                "2026-01-03-00-00-00.fsz" => Some(vec![
                    "2026-01-01-00-00-00.fs".into(),
                    "2026-01-02-00-00-00.deltafs".into(),
                ]),
                "2026-01-05-00-00-00.fsz" => Some(vec![
                    "2026-01-03-00-00-00.fsz".into(),
                    "2026-01-04-00-00-00.deltafsz".into(),
                ]),
                _ => None,
            })
        };
        // --keep=2 keeps C and D; C needs B, which needs A.
        let p = plan_with_bases(&l, &policy(2, 0, 0, 0), &mut bases).unwrap();
        assert_eq!(p.kept_chains(), 4);
        assert_eq!(
            p.chains[1].keep,
            vec![Reason::NeededBy("2026-01-05-00-00-00.fsz".into())]
        );
        assert_eq!(
            p.chains[0].keep,
            vec![Reason::NeededBy("2026-01-03-00-00-00.fsz".into())]
        );
        assert_eq!(
            p.chains[0].keep[0].to_string(),
            "needed by 2026-01-03-00-00-00.fsz (a kept pack delta based on this chain)"
        );
        assert_eq!(p.removals().count(), 0);
        // --keep=1 keeps D alone, a plain full: everything older goes, the
        // newest chain first, so no delta is ever left without its base.
        let p = plan_with_bases(&l, &policy(1, 0, 0, 0), &mut bases).unwrap();
        assert_eq!(p.kept_chains(), 1);
        let data: Vec<&str> = p.removals().filter(|n| repo::is_data_file(n)).collect();
        assert_eq!(
            data,
            vec![
                "2026-01-05-00-00-00.fsz",
                "2026-01-04-00-00-00.deltafsz",
                "2026-01-03-00-00-00.fsz",
                "2026-01-02-00-00-00.deltafs",
                "2026-01-01-00-00-00.fs",
            ]
        );
        // Without pack deltas it is the plan by names.
        let p = plan_with_bases(&l, &policy(2, 0, 0, 0), &mut |_| Ok(None)).unwrap();
        assert_eq!(p, plan(&l, &policy(2, 0, 0, 0)));
    }

    #[test]
    fn keep_daily_counts_only_days_that_have_backups() {
        // Days 1, 5 and 9 have backups; --keep-daily=2 keeps days 9 and 5
        // (their newest points), not "the last two calendar days".
        let l = with_meta(&[
            "2026-03-01-10-00-00.fs",
            "2026-03-05-01-00-00.fs",
            "2026-03-05-23-00-00.deltafs",
            "2026-03-09-02-00-00.fs",
        ]);
        let p = plan(&l, &policy(0, 2, 0, 0));
        assert_eq!(
            kept_stamps(&p),
            vec!["2026-03-05-01-00-00", "2026-03-09-02-00-00"]
        );
        assert_eq!(
            p.chains[1].keep,
            vec![Reason::Period {
                period: Period::Day,
                bucket: "2026-03-05".into(),
                point: "2026-03-05-23-00-00".into(),
                n: 2
            }]
        );
    }

    #[test]
    fn the_newest_point_of_a_period_decides_not_an_older_one() {
        // Chain A's point and chain B's full share a day; B is newer, so
        // the day keeps B, and A goes.
        let l = with_meta(&["2026-03-01-01-00-00.fs", "2026-03-01-02-00-00.fs"]);
        let p = plan(&l, &policy(0, 1, 0, 0));
        assert_eq!(kept_stamps(&p), vec!["2026-03-01-02-00-00"]);
    }

    #[test]
    fn weeks_are_iso_weeks_and_months_are_calendar_months() {
        let l = with_meta(&[
            "2026-11-01-00-00-00.fs", // Sunday, week 44, November
            "2026-11-29-00-00-00.fs", // Sunday, week 48
            "2026-11-30-00-00-00.fs", // Monday, week 49, November
            "2026-12-01-00-00-00.fs", // week 49, December
        ]);
        let p = plan(&l, &policy(0, 0, 2, 0));
        assert_eq!(
            kept_stamps(&p),
            vec!["2026-11-29-00-00-00", "2026-12-01-00-00-00"]
        );
        let p = plan(&l, &policy(0, 0, 0, 2));
        assert_eq!(
            kept_stamps(&p),
            vec!["2026-11-30-00-00-00", "2026-12-01-00-00-00"]
        );
        let p = plan(&l, &policy(0, 0, 3, 0));
        assert_eq!(p.kept_chains(), 3);
    }

    #[test]
    fn names_that_are_not_ours_are_never_planned_for_removal() {
        let l = Listing::from_names([
            "2026-01-01-00-00-00.fs",
            "2026-01-01-00-00-00.dat",
            "2026-01-02-00-00-00.fs",
            "notes.txt",
            "tmp.tmp",
            "unrelated.dat",
            "2026-01-01-00-00-00.fs.tmp-1-2",
            // A leftover older than the newest chain goes; one newer (a
            // backup of ZODB's repozo under way writes its .index first)
            // stays, as does one of a kept data file.
            "2025-12-31-00-00-00.dat",
            "2026-01-09-00-00-00.index",
            "2026-01-02-00-00-00.index",
        ]);
        let p = plan(&l, &policy(1, 0, 0, 0));
        let removed: Vec<&str> = p.removals().collect();
        assert_eq!(
            removed,
            vec![
                "2026-01-01-00-00-00.fs",
                "2026-01-01-00-00-00.dat",
                "2025-12-31-00-00-00.dat"
            ]
        );
    }

    #[test]
    fn a_dry_run_removes_nothing_and_a_real_run_removes_the_plan() {
        let d = tempfile::tempdir().unwrap();
        let names = [
            "2026-01-01-00-00-00.fs",
            "2026-01-01-00-00-00.dat",
            "2026-01-01-00-00-00.index",
            "2026-01-02-00-00-00.deltafs",
            "2026-01-03-00-00-00.fs",
            "notes.txt",
        ];
        for n in names {
            std::fs::write(d.path().join(n), n).unwrap();
        }
        let repo = Repository::new(d.path().to_str().unwrap());
        let ctx = Ctx {
            clock: &crate::SystemClock,
            report: &crate::Silent,
        };
        let mut r = Retention {
            policy: policy(1, 0, 0, 0),
            dry_run: true,
        };
        let dry = retain_locked(&repo, &r, ctx).unwrap();
        assert_eq!(dry.files.len(), 4);
        assert_eq!(dry.bytes(), 22 + 23 + 25 + 27);
        assert_eq!(repo.list().unwrap().data_files().len(), 3);
        r.dry_run = false;
        let done = retain_locked(&repo, &r, ctx).unwrap();
        assert_eq!(done.files, dry.files);
        let mut left: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec!["2026-01-03-00-00-00.fs", "notes.txt"]);
    }

    /// A random repository: data files over ~4 months (several per day at
    /// times), some fulls, most with `.index`, fulls with `.dat`, and
    /// names that are not data files.
    fn arb_listing() -> impl Strategy<Value = Listing> {
        let point = (any::<bool>(), any::<bool>(), 0u8..4);
        (
            // One data file per stamp, as in a real repository.
            proptest::collection::btree_map(0u64..120 * 24, point, 0..40),
            proptest::collection::vec(0u64..120 * 24, 0..4),
        )
            .prop_map(|(points, orphans)| {
                let base = Stamp::parse("2026-09-01-00-00-00").unwrap();
                let mut names = vec![
                    "notes.txt".to_string(),
                    "tmp.tmp".to_string(),
                    "unrelated.dat".to_string(),
                ];
                for (hour, (gzip, index, kind)) in points {
                    let stamp = base.plus_seconds(hour * 3600 + 17);
                    let full = kind == 0;
                    let ext = match (full, gzip) {
                        (true, false) => ".fs",
                        (true, true) => ".fsz",
                        (false, false) => ".deltafs",
                        (false, true) => ".deltafsz",
                    };
                    names.push(format!("{stamp}{ext}"));
                    if index {
                        names.push(format!("{stamp}.index"));
                    }
                    if full {
                        names.push(format!("{stamp}.dat"));
                    }
                }
                for hour in orphans {
                    names.push(format!("{}.index", base.plus_seconds(hour * 3600 + 59)));
                }
                Listing::from_names(names)
            })
    }

    fn arb_policy() -> impl Strategy<Value = Policy> {
        let n = proptest::option::of(1u32..6);
        (n.clone(), n.clone(), n.clone(), n).prop_map(|(last, daily, weekly, monthly)| Policy {
            last,
            daily,
            weekly,
            monthly,
        })
    }

    /// The listing after removing `names`.
    fn without(listing: &Listing, names: &[&str]) -> Listing {
        Listing::from_names(
            listing
                .data_files()
                .iter()
                .chain(listing.meta_files())
                .filter(|n| !names.contains(&n.as_str()))
                .cloned(),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("REPOZO_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
        ))]

        #[test]
        fn the_kept_set_is_closed_under_pack_delta_dependencies(
            l in arb_listing(), p in arb_policy(), picks in proptest::collection::vec(any::<prop::sample::Index>(), 40)
        ) {
            // Some `.fsz` fulls are pack deltas on a prefix of an earlier
            // chain (its first file up to a random file of it).
            let chains = l.chains();
            let mut deps: std::collections::HashMap<String, Vec<String>> = Default::default();
            for (i, c) in chains.iter().enumerate() {
                let pick = picks[i % picks.len()];
                if i == 0 || !c[0].ends_with(".fsz") || pick.index(3) == 0 {
                    continue;
                }
                let base = chains[pick.index(i)];
                let upto = 1 + pick.index(base.len());
                deps.insert(c[0].clone(), base[..upto].to_vec());
            }
            let mut asked = 0;
            let with = plan_with_bases(&l, &p, &mut |first| {
                asked += 1;
                Ok(deps.get(first).cloned())
            }).unwrap();
            let by_names = plan(&l, &p);
            let kept_file = |f: &String| with.chains.iter().any(|c| c.kept() && c.files.contains(f));
            for (i, c) in with.chains.iter().enumerate() {
                // Kept by the rules as before, only more.
                prop_assert!(!by_names.chains[i].kept() || c.kept());
                if c.kept() {
                    for b in deps.get(&c.files[0]).into_iter().flatten() {
                        prop_assert!(kept_file(b), "{} needs {}, which goes", c.files[0], b);
                    }
                }
                // And only what a kept delta needs.
                for r in &c.keep {
                    if let Reason::NeededBy(delta) = r {
                        prop_assert!(kept_file(delta));
                        prop_assert!(deps[delta].iter().any(|b| c.files.contains(b)));
                        prop_assert!(!by_names.chains[i].kept());
                    }
                }
            }
            prop_assert!(asked <= with.kept_chains());
        }

        #[test]
        fn the_newest_chain_is_always_kept(l in arb_listing(), p in arb_policy()) {
            let plan = plan(&l, &p);
            if let Some(last) = plan.chains.last() {
                prop_assert!(last.kept());
                prop_assert_eq!(&last.keep[0], &Reason::Newest);
            }
        }

        #[test]
        fn chains_are_kept_or_removed_whole(l in arb_listing(), p in arb_policy()) {
            let plan = plan(&l, &p);
            let removed: std::collections::HashSet<&str> = plan.removals().collect();
            for chain in &plan.chains {
                for f in &chain.files {
                    prop_assert_eq!(removed.contains(f.as_str()), !chain.kept(), "{}", f);
                }
            }
        }

        #[test]
        fn every_kept_restore_point_keeps_its_chain(l in arb_listing(), p in arb_policy()) {
            // Reference model of the period rules: the newest point of each
            // of the last n periods that have points.
            let plan = plan(&l, &p);
            let chain_of = |stamp: &str| plan.chains.iter().find(|c| {
                c.files.iter().any(|f| repo::stamp_of(f) == stamp)
            });
            for (period, n) in [(Period::Day, p.daily), (Period::Week, p.weekly),
                                (Period::Month, p.monthly)] {
                let Some(n) = n else { continue };
                let mut newest: Vec<(String, String)> = Vec::new();
                for f in l.data_files().iter().rev() {
                    let stamp = repo::stamp_of(f).to_string();
                    let bucket = period.bucket(&stamp).unwrap();
                    if !newest.iter().any(|(b, _)| *b == bucket) {
                        newest.push((bucket, stamp));
                    }
                }
                for (_, stamp) in newest.iter().take(n as usize) {
                    prop_assert!(chain_of(stamp).unwrap().kept(), "{} not kept", stamp);
                }
            }
            if let Some(n) = p.last {
                for chain in plan.chains.iter().rev().take(n as usize) {
                    prop_assert!(chain.kept());
                }
            }
            // And nothing else is kept.
            for chain in &plan.chains {
                for r in &chain.keep {
                    if let Reason::Period { point, .. } = r {
                        prop_assert!(chain.files.iter().any(|f| repo::stamp_of(f) == point));
                    }
                }
            }
        }

        #[test]
        fn nothing_outside_the_listing_or_the_removed_stamps_is_touched(
            l in arb_listing(), p in arb_policy()
        ) {
            let plan = plan(&l, &p);
            let stamps = |kept: bool| -> HashSet<&str> {
                plan.chains.iter()
                    .filter(|c| c.kept() == kept)
                    .flat_map(|c| c.files.iter().map(|f| repo::stamp_of(f)))
                    .collect()
            };
            let (removed_stamps, kept_stamps) = (stamps(false), stamps(true));
            let newest = plan.chains.last().map(|c| c.stamp.as_str());
            for name in plan.removals() {
                let listed = l.data_files().iter().chain(l.meta_files()).any(|n| n == name);
                prop_assert!(listed, "{} is not in the listing", name);
                prop_assert!(repo::is_data_file(name) || repo::is_meta_file(name));
                let stamp = repo::stamp_of(name);
                prop_assert!(!kept_stamps.contains(stamp), "{} is a kept chain's", name);
                if !removed_stamps.contains(stamp) {
                    // Only a leftover: a .dat/.index of no data file, older
                    // than the newest chain.
                    prop_assert!(repo::is_meta_file(name), "{}", name);
                    prop_assert!(l.data_files().iter().all(|d| repo::stamp_of(d) != stamp));
                    prop_assert!(newest.is_some_and(|n| stamp < n), "{}", name);
                }
            }
        }

        #[test]
        fn within_a_chain_removal_goes_from_the_newest_file_back_to_the_full_then_the_dat(
            l in arb_listing(), p in arb_policy()
        ) {
            let plan = plan(&l, &p);
            for chain in plan.chains.iter().filter(|c| !c.kept()) {
                let data: Vec<&String> =
                    chain.remove.iter().filter(|n| repo::is_data_file(n)).collect();
                let expected: Vec<&String> = chain.files.iter().rev().collect();
                prop_assert_eq!(data, expected);
                let chain_dat = format!("{}.dat", chain.stamp);
                for (i, name) in chain.remove.iter().enumerate() {
                    if *name == chain_dat {
                        // The chain's .dat goes last.
                        prop_assert_eq!(i, chain.remove.len() - 1);
                    } else if repo::is_meta_file(name) {
                        // Any other .index or .dat just before its data file.
                        let next_data = chain.remove[i..].iter()
                            .find(|n| repo::is_data_file(n)).unwrap();
                        prop_assert_eq!(repo::stamp_of(next_data), repo::stamp_of(name));
                    }
                }
            }
        }

        #[test]
        fn after_a_crash_midway_planning_again_removes_exactly_the_rest(
            l in arb_listing(), p in arb_policy(), cut in any::<prop::sample::Index>()
        ) {
            let first = plan(&l, &p);
            let order: Vec<&str> = first.removals().collect();
            let done = if order.is_empty() { 0 } else { cut.index(order.len() + 1) };
            let after = without(&l, &order[..done]);
            for names in after.chains() {
                // Every chain still there is a full followed by its first
                // incrementals (or untouched) ...
                let original = l.chains().into_iter().find(|c| c[0] == names[0]);
                prop_assert!(
                    original.is_some_and(|o| o.starts_with(names)),
                    "{:?} is not the start of a chain of the repository", names
                );
                // ... and still has its .dat, so recover can verify it.
                let dat = format!("{}.dat", repo::stamp_of(&names[0]));
                prop_assert_eq!(after.has_meta(&dat), l.has_meta(&dat), "{}", dat);
            }
            let again = plan(&after, &p);
            let kept = |pl: &Plan| pl.chains.iter().filter(|c| c.kept())
                .map(|c| c.stamp.clone()).collect::<Vec<_>>();
            prop_assert_eq!(kept(&again), kept(&first));
            // The rest, as a set: a .dat whose full went is now a leftover,
            // removed with the others at the end.
            let mut rest: Vec<&str> = again.removals().collect();
            let mut expected = order[done..].to_vec();
            rest.sort_unstable();
            expected.sort_unstable();
            prop_assert_eq!(rest, expected);
        }
    }
}
