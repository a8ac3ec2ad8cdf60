#!/usr/bin/env python3
"""bench.py -- time our repozo against ZODB 6.4's repozo on the same Data.fs.

The documented way to run it is

    bash scripts/bench.sh [SIZE_MB]          # default 512

which provisions the venv (scripts/setup-venv.sh), builds
target/release/repozo and runs this script with the venv's python:

    .venv/bin/python bench/bench.py --size-mb 512 [--profile hex|cms|bulk]
        [--runs 3]
        [--ops full,recover,...] [--op-runs full-z:theirs=1]
        [--cache-dir target/bench-cache] [--ours target/release/repozo]
        [--theirs .venv/bin/repozo] [--markdown] [--regenerate] [--keep-work]

Data (generated once per profile and size, cached in CACHE_DIR/size-<N>mb
for the default profile hex, CACHE_DIR/<profile>-size-<N>mb for the others)
--------------------------------------------------------------------------
bench/gendata.py grows a Data.fs through real ZODB, with one of its data
profiles (--profile): hex (the default: documents with hex-text bodies),
cms (a content-management site: documents made of several small persistent
parts, catalog BTrees rewritten by every edit, text from the standard
library's docstrings, ~2% incompressible image bytes) or bulk (an import of
millions of small objects in batches of a few thousand, so a large index):

  base.fs, base.fs.index   ~SIZE_MB, closed cleanly (fresh index)
  stale.index              base.fs.index as it was when base.fs was half
                           grown: what a live server leaves behind, since
                           FileStorage writes Data.fs.index only at shutdown
  mid.fs, mid.fs.index     base.fs + a small batch (0.25% of SIZE_MB)
  grown.fs, grown.fs.index mid.fs + a later batch, 2.5% of SIZE_MB in all
                           beyond base.fs (~51 MB per 2 GB)
  meta.json                sizes, generation time; written last, so a
                           half-generated cache is never used

Each file is a prefix of the next (FileStorage only appends).

Scenarios (--ops names)
-----------------------
  full          -BF  -f base.fs into an empty repository
  full-z        -BFz -f base.fs into an empty repository (ZODB: gzip level 9,
                ~1 min/GB, so by default only 1 timed run of theirs from 1 GB)
  incr          -B   -f grown.fs (fresh index); repository: full of base.fs
  incr-q-cron   -BQ  -f grown.fs with the *stale* index (from 50%); the
                repository: full of base.fs + a small incremental (mid.fs) --
                the nightly cron job of collective.recipe.backup
  q-after-full  -BQ  -f grown.fs (fresh index); repository: full of base.fs,
                so -Q has to checksum the whole full
  recover       -R   of a plain chain (full of base.fs + incremental grown.fs)
  recover-z     -R   of a gzip chain (-BFz base.fs, then -Bz grown.fs)
  recover-incr  ours: -R -o OUT --incremental of the plain chain, where OUT
                is a standby Data.fs our recover left as of the full
                backup (= base.fs), so only the incremental is appended
                (its prefix proved by the md5 of each .dat range read from
                OUT); theirs: the full -R of the same state into a new file,
                what operators run today
  recover-incr-q  the same with --incremental -Q (OUT proved by the state
                file OUT.repozo-state that our last recover wrote)
  verify        -V   of the plain chain
  verify-z      -V   of the gzip chain
  recover-zodb    -R of the plain chain written by ZODB's repozo (files
                without a sidecar: md5 and the copy overlapped)
  verify-zodb     -V of that chain, likewise
  recover-zodb-z  -R of the gzip chain written by ZODB's repozo (one deflate
                stream per file, as every existing repository holds until
                its next full): both tools read the same files, theirs in
                place, ours from a copy (hardlinks) in its own repository
  verify-zodb-z   -V of that chain, likewise

recover-z and verify-z measure each tool on the chain it wrote itself (ours:
members of 512 KiB that decompress on both cores); the -zodb-z scenarios
measure the same ZODB-written files for both tools.

Each tool works only on repositories it wrote itself (except in the
-zodb-z scenarios, where ours reads the chain ZODB's repozo wrote), always
at the same
path (CACHE_DIR/work/repo-<tool>, so that the paths in .dat files are
right).  Data files are hardlinked into fresh working directories (index
files and .dat files, which ZODB's repozo appends to, are copied), so
nothing shared is ever modified; the cached files are checked after every
run to prove it.  Every result is checked: new backup files must hold
exactly the expected bytes of the source (decompressed for -z), the .dat
must record the expected range, recovered files must equal grown.fs byte
for byte, -V must succeed silently; an incremental recover must print
`OUT: appended N bytes from 1 file` (not `full recover ...`), install the
chain's last .index and leave a state file that describes OUT.  Any
failure aborts the benchmark with an error (exit 1), keeping the working
directory for inspection.

Measurement
-----------
Each scenario runs once per tool untimed (warm-up; its result also serves as
a repository for later scenarios), then --runs times per tool, alternating
the tools and the order (theirs, ours / ours, theirs / ...).  Commands run
under bench/rss_spawn.rs, a tiny launcher (compiled with rustc on first use
into CACHE_DIR/tools) that reaps the child with wait4(): wall time is from
spawn to reap on a monotonic clock, peak RSS is the child's ru_maxrss.  (A
child of this Python process would inherit its ~20 MB RSS high-water mark
at exec; see Runner.)  Before every backup the script sleeps until the
next UTC second, so that consecutive backups never share a time stamp (the
wall clock is real: REPOZO_TEST_NOW is removed from the environment).
Preparing files, sleeping and checking are never timed; neither is the
recover that puts the standby Data.fs of recover-incr(-q) back as of the
full backup before every run of ours (`-D <full's date> --incremental -Q`:
a full recover the first time, then a truncation that keeps its inode, so
that the state file stays valid).  Nothing is dropped from the page cache:
all inputs are warm, as for a cron job on a server with enough memory.

The report gives per scenario the medians, the speed-up (theirs / ours) and
the largest peak RSS of each tool, the size of the -z outputs, the ratio of
our full backup to `cp` of the same file, and the machine.  --markdown
prints the same as markdown, for the README.
"""

import hashlib
import argparse
import datetime
import fcntl
import gzip
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
GENDATA = ROOT / 'bench' / 'gendata.py'

# Bump whenever the generated data changes, so that old caches are rebuilt.
DATA_VERSION = 1

MB = 2 ** 20
TOOLS = ('theirs', 'ours')
CHUNK = 1 << 20


class BenchError(Exception):
    """A failed step: printed as one error message, exit status 1."""


def log(msg):
    print('bench: ' + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Data generation (cached)
# ---------------------------------------------------------------------------

@dataclass
class Data:
    """The cached input files of one size."""
    dir: Path
    meta: dict

    def fs(self, which):
        """Path of base.fs, mid.fs or grown.fs."""
        return self.dir / (which + '.fs')

    def fresh_index(self, which):
        return self.dir / (which + '.fs.index')

    @property
    def stale_index(self):
        return self.dir / 'stale.index'

    def size(self, which):
        return self.meta['sizes'][which + '.fs']


PROFILES = ('hex', 'cms', 'bulk')


def data_dir_name(profile, size_mb):
    """Cache directory of one profile and size (hex keeps the old name)."""
    if profile == 'hex':
        return 'size-%dmb' % size_mb
    return '%s-size-%dmb' % (profile, size_mb)


def run_gendata(path, until_bytes, seed, label, profile):
    cmd = [sys.executable, str(GENDATA), str(path),
           '--until-bytes', str(until_bytes), '--seed', str(seed),
           '--label', label, '--profile', profile]
    if subprocess.run(cmd).returncode != 0:
        raise BenchError('data generation failed: ' + ' '.join(cmd))


def copy_storage(src, dst):
    """Copy a closed FileStorage and its index (untimed preparation)."""
    shutil.copyfile(src, dst)
    shutil.copyfile(str(src) + '.index', str(dst) + '.index')


def cached_data_ok(d, size_mb, profile):
    try:
        meta = json.loads((d / 'meta.json').read_text())
    except (OSError, ValueError):
        return None
    if (meta.get('version') != DATA_VERSION or meta.get('size_mb') != size_mb
            or meta.get('profile', 'hex') != profile):
        return None
    for name, size in meta['sizes'].items():
        try:
            if (d / name).stat().st_size != size:
                return None
        except OSError:
            return None
    return meta if sizes_sane(meta) else None


def sizes_sane(meta):
    """stale index < base.fs < mid.fs < grown.fs, as the scenarios need."""
    sz = meta['sizes']
    return (meta['stale_index_pos'] < sz['base.fs'] < sz['mid.fs']
            < sz['grown.fs'])


def ensure_data(cache_dir, size_mb, regenerate, profile='hex'):
    """Return the cached Data for size_mb and profile, generating it if
    needed."""
    name = data_dir_name(profile, size_mb)
    d = cache_dir / name
    meta = None if regenerate else cached_data_ok(d, size_mb, profile)
    if meta is not None:
        log('using cached %s data in %s (generated in %.0f s)'
            % (profile, d, meta['generation_seconds']))
        return Data(d, dict(meta, cached=True))

    target = size_mb * MB
    small = max(64 * 1024, target // 400)     # 0.25%: the cron's last backup
    batch = target // 40                      # 2.5%: the later batch
    tmp = cache_dir / (name + '.partial')
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log('generating a %d MB Data.fs (profile %s) through ZODB in %s'
        % (size_mb, profile, tmp))
    t0 = time.monotonic()

    base = tmp / 'base.fs'
    run_gendata(base, target // 2, 1, 'base.fs 1st half', profile)
    # The index of the half-grown file, as a server that last shut down
    # back then would have left it.
    shutil.copyfile(str(base) + '.index', tmp / 'stale.index')
    stale_pos = base.stat().st_size
    run_gendata(base, target, 2, 'base.fs 2nd half', profile)
    base_size = base.stat().st_size

    mid = tmp / 'mid.fs'
    copy_storage(base, mid)
    run_gendata(mid, base_size + small, 3, 'mid.fs (small batch)',
                profile)
    grown = tmp / 'grown.fs'
    copy_storage(mid, grown)
    # (At tiny sizes one transaction can exceed `small`: still grow.)
    grown_target = max(base_size + batch, mid.stat().st_size + batch // 2)
    run_gendata(grown, grown_target, 4, 'grown.fs (later batch)', profile)
    elapsed = time.monotonic() - t0

    for leftover in tmp.glob('*.fs.lock'):
        leftover.unlink()
    for leftover in tmp.glob('*.fs.tmp'):
        leftover.unlink()
    names = ['base.fs', 'base.fs.index', 'mid.fs', 'mid.fs.index',
             'grown.fs', 'grown.fs.index', 'stale.index']
    meta = {
        'version': DATA_VERSION,
        'size_mb': size_mb,
        'profile': profile,
        'sizes': {n: (tmp / n).stat().st_size for n in names},
        'stale_index_pos': stale_pos,
        'generation_seconds': round(elapsed, 1),
        'generated_at': utc_now(),
    }
    if not sizes_sane(meta):
        raise BenchError('generated files have unexpected sizes: %r' % meta)
    (tmp / 'meta.json').write_text(json.dumps(meta, indent=1) + '\n')
    shutil.rmtree(d, ignore_errors=True)
    os.rename(tmp, d)
    log('generated in %.1f s (%.1f s per GB of grown.fs, %.1f MB/s)'
        % (elapsed, elapsed / (meta['sizes']['grown.fs'] / 2 ** 30),
           meta['sizes']['grown.fs'] / MB / max(elapsed, 1e-9)))
    return Data(d, dict(meta, cached=False))


# ---------------------------------------------------------------------------
# Running and measuring one child process
# ---------------------------------------------------------------------------

# The children see the real clock: the test-only override must not leak in.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != 'REPOZO_TEST_NOW'}


@dataclass
class RunResult:
    seconds: float
    rss_kib: int      # ru_maxrss of the child alone (KiB on Linux)
    rc: int
    output: str       # stdout and stderr, interleaved


RSS_SPAWN_SRC = ROOT / 'bench' / 'rss_spawn.rs'


class Runner:
    """Runs commands under bench/rss_spawn.rs, a tiny launcher that
    reaps the child with wait4() and reports its wall time (monotonic clock,
    from spawn to reap) and ru_maxrss.

    Not os.wait4() from this process: at exec, Linux folds the RSS
    high-water mark of the replaced process image into the child's
    ru_maxrss, so any child of this ~20 MB Python process would report at
    least ~20 MB.  The launcher's own floor is measured (`floor_kib`: the
    peak RSS reported for /bin/true) and printed with the results.
    """

    def __init__(self, tools_dir, output_path):
        self.exe = tools_dir / 'rss_spawn'
        self.output_path = output_path
        self.report_path = output_path.with_suffix('.report')
        if (not self.exe.exists()
                or self.exe.stat().st_mtime < RSS_SPAWN_SRC.stat().st_mtime):
            tools_dir.mkdir(parents=True, exist_ok=True)
            cmd = ['rustc', '-O', '--edition', '2021', '-o', str(self.exe),
                   str(RSS_SPAWN_SRC)]
            try:
                ok = subprocess.run(cmd).returncode == 0
            except OSError:
                ok = False
            if not ok:
                raise BenchError('cannot build the launcher: ' + ' '.join(cmd))
        self.floor_kib = self.run(['true']).rss_kib

    def run(self, argv):
        """Run argv; return its wall time, peak RSS, exit code and output."""
        if self.report_path.exists():
            self.report_path.unlink()
        with open(self.output_path, 'wb') as out:
            rc = subprocess.run([str(self.exe), str(self.report_path)] + argv,
                                stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL,
                                env=CHILD_ENV).returncode
        output = self.output_path.read_text(errors='replace')
        if rc != 0 or not self.report_path.exists():
            raise BenchError('launcher failed on %s:\n%s'
                             % (' '.join(argv), output))
        seconds, rss_kib, code = self.report_path.read_text().split()
        return RunResult(float(seconds), int(rss_kib), int(code), output)


def sleep_to_next_second():
    """Sleep until just after the next UTC second starts."""
    now = time.time()
    time.sleep(int(now) + 1 - now + 0.002)


# ---------------------------------------------------------------------------
# File helpers
# ---------------------------------------------------------------------------

def link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


# Repository files that repozo never modifies once written: hardlinked.
# Everything else (.dat, which ZODB's repozo appends to, and .index) is
# copied, so a run cannot touch the repository it was copied from.
IMMUTABLE_SUFFIXES = ('.fs', '.fsz', '.deltafs', '.deltafsz')


def copy_repo(src, dst):
    for name in sorted(os.listdir(src)):
        if name.endswith(IMMUTABLE_SUFFIXES):
            link_or_copy(src / name, dst / name)
        else:
            shutil.copyfile(src / name, dst / name)


def read_exact(f, n):
    """Read n bytes (fewer only at EOF); gzip readers may return short."""
    parts = []
    while n > 0:
        b = f.read(n)
        if not b:
            break
        parts.append(b)
        n -= len(b)
    return b''.join(parts)


def md5_file(path):
    """md5 hex of a file's bytes (read in 1 MiB pieces)."""
    h = hashlib.md5()
    with open(path, 'rb') as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


def same_bytes(path, gz, ref, ref_start):
    """True if `path` (gunzipped if gz) equals ref[ref_start:] exactly."""
    opener = gzip.open if gz else open
    try:
        with opener(path, 'rb') as a, open(ref, 'rb') as b:
            b.seek(ref_start)
            while True:
                x = read_exact(a, CHUNK)
                y = read_exact(b, CHUNK)
                if x != y:
                    return False
                if not x:
                    return True
    except (OSError, EOFError, zlib.error) as e:   # e.g. a broken gzip
        log('cannot compare %s: %s' % (path, e))
        return False


# ---------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------

@dataclass
class Prepared:
    """One ready-to-run command of one tool, with its check."""
    argv: list
    check: Callable[[RunResult], None]   # raises BenchError
    dirs: list                           # working dirs to delete afterwards
    product: Optional[Path] = None       # repository worth keeping as fixture
    backup: bool = True                  # sleep to the next second first


@dataclass
class Op:
    name: str
    label: str
    prepare: Callable          # (bench, tool) -> Prepared
    makes_fixture: Optional[str] = None  # its product is this fixture


# Scenario table, in run order.  The prepare functions are Bench methods.
OPS = [
    Op('full', 'full (-BF)',
       lambda b, t: b.prep_full(t, gz=False), 'full'),
    Op('full-z', 'full -z (-BFz)',
       lambda b, t: b.prep_full(t, gz=True), 'full-z'),
    Op('incr', 'incremental (-B)',
       lambda b, t: b.prep_incr(t, 'full', 'grown', 'fresh'), 'chain'),
    Op('incr-q-cron', 'incremental -Q, cron (stale index)',
       lambda b, t: b.prep_incr(t, 'cron', 'grown', 'stale', quick=True)),
    Op('q-after-full', '-Q right after a full',
       lambda b, t: b.prep_incr(t, 'full', 'grown', 'fresh', quick=True)),
    Op('recover', 'recover (-R)',
       lambda b, t: b.prep_recover(t, 'chain')),
    Op('recover-z', 'recover, gzip chain (-R)',
       lambda b, t: b.prep_recover(t, 'chain-z')),
    Op('recover-incr', 'recover --incremental, md5 (theirs: -R)',
       lambda b, t: b.prep_recover_incr(t, quick=False)),
    Op('recover-incr-q', 'recover --incremental -Q (theirs: -R)',
       lambda b, t: b.prep_recover_incr(t, quick=True)),
    Op('verify', 'verify (-V)',
       lambda b, t: b.prep_verify(t, 'chain')),
    Op('verify-z', 'verify, gzip chain (-V)',
       lambda b, t: b.prep_verify(t, 'chain-z')),
    Op('recover-zodb', 'recover, plain chain written by ZODB (-R)',
       lambda b, t: b.prep_recover(t, 'chain', writer='theirs')),
    Op('verify-zodb', 'verify, plain chain written by ZODB (-V)',
       lambda b, t: b.prep_verify(t, 'chain', writer='theirs')),
    Op('recover-zodb-z', 'recover, gzip chain written by ZODB (-R)',
       lambda b, t: b.prep_recover(t, 'chain-z', writer='theirs')),
    Op('verify-zodb-z', 'verify, gzip chain written by ZODB (-V)',
       lambda b, t: b.prep_verify(t, 'chain-z', writer='theirs')),
]
OPS_BY_NAME = {op.name: op for op in OPS}

# Repositories used by the scenarios, one per tool, built on first use (or
# taken over from the warm-up run of the scenario that makes them):
#   name -> (how to build it, which source file its chain ends with)
FIXTURES = {
    'full': (lambda b, t: b.prep_full(t, gz=False), 'base'),
    'full-z': (lambda b, t: b.prep_full(t, gz=True), 'base'),
    'chain': (lambda b, t: b.prep_incr(t, 'full', 'grown', 'fresh'), 'grown'),
    'chain-z': (lambda b, t: b.prep_incr(t, 'full-z', 'grown', 'fresh',
                                         gz=True), 'grown'),
    'cron': (lambda b, t: b.prep_incr(t, 'full', 'mid', 'fresh'), 'mid'),
}


class Bench:
    def __init__(self, args, data, work):
        self.data = data
        self.work = work
        self.argv = {'theirs': [str(args.theirs)], 'ours': [str(args.ours)]}
        self.fixtures = {}          # (fixture name, tool) -> repository dir
        self.loads = {}             # op name -> (loadavg before, after)
        self.serial = 0
        self.runner = Runner(args.cache_dir / 'tools', work / 'last-output.txt')
        (work / 'fixtures').mkdir()
        # Identity of the cached inputs, re-checked after every run.
        self.pristine = {p: self.stat_key(p) for p in sorted(data.dir.iterdir())}

    # -- working directories ------------------------------------------------

    def new_dir(self, tag):
        self.serial += 1
        d = self.work / ('%04d-%s' % (self.serial, tag))
        d.mkdir()
        return d

    def repo_dir(self, tool, fixture=None):
        """The repository every command of `tool` works on: always the same
        path, WORK/repo-<tool>, so that the paths recorded in .dat files
        match the repository, as in real life.  Empty, or a copy of a
        fixture.  Deleted after each run (or moved away to become a
        fixture), so it is free again for the next one."""
        repo = self.work / ('repo-' + tool)
        repo.mkdir()
        if fixture is not None:
            copy_repo(fixture, repo)
        return repo

    def source(self, which, index):
        """A fresh Data.fs: <which>.fs hardlinked, with a copy of its fresh
        index or of the stale one."""
        d = self.new_dir('src-%s-%s-index' % (which, index))
        datafs = d / 'Data.fs'
        link_or_copy(self.data.fs(which), datafs)
        idx = (self.data.stale_index if index == 'stale'
               else self.data.fresh_index(which))
        shutil.copyfile(idx, d / 'Data.fs.index')
        return datafs

    @staticmethod
    def stat_key(p):
        st = p.stat()
        return (st.st_size, st.st_mtime_ns)

    def check_inputs_intact(self):
        for p, key in self.pristine.items():
            if self.stat_key(p) != key:
                raise BenchError('cached input %s was modified' % p)

    # -- preparing one run --------------------------------------------------

    def prep_full(self, tool, gz):
        src = self.source('base', 'fresh')
        repo = self.repo_dir(tool)
        argv = self.argv[tool] + ['-BFz' if gz else '-BF', '-f', str(src),
                                  '-r', str(repo)]

        def check(_res):
            self.check_backup(tool, repo, set(), gz, True, 'base', 0)
        return Prepared(argv, check, [src.parent, repo], product=repo)

    def prep_incr(self, tool, fixture, which, index, gz=False, quick=False):
        """A backup of <which>.fs into a copy of a fixture repository; it
        must write an incremental starting where the fixture's chain ends."""
        start = self.data.size(FIXTURES[fixture][1])
        # (Building the fixture uses repo_dir(tool) too: do it first.)
        repo = self.repo_dir(tool, self.fixture(fixture, tool))
        before = set(os.listdir(repo))
        src = self.source(which, index)
        flags = '-B' + ('Q' if quick else '') + ('z' if gz else '')
        argv = self.argv[tool] + [flags, '-f', str(src), '-r', str(repo)]

        def check(_res):
            self.check_backup(tool, repo, before, gz, False, which, start)
        return Prepared(argv, check, [src.parent, repo], product=repo)

    def prep_recover(self, tool, fixture, writer=None):
        """-R of the repository `fixture` as `writer` (default: `tool`)
        wrote it."""
        repo = self.repo_dir(tool, self.fixture(fixture, writer or tool))
        out_dir = self.new_dir('recover-%s' % tool)
        out = out_dir / 'Data.fs'
        argv = self.argv[tool] + ['-R', '-r', str(repo), '-o', str(out)]
        expected = self.data.fs(FIXTURES[fixture][1])

        def check(_res):
            if (not out.exists()
                    or out.stat().st_size != expected.stat().st_size
                    or not same_bytes(out, False, expected, 0)):
                raise BenchError('%s: recovered %s differs from %s'
                                 % (tool, out, expected))
        return Prepared(argv, check, [out_dir, repo], backup=False)

    def prep_recover_incr(self, tool, quick):
        """Bring a standby Data.fs up to the end of the plain chain.  Ours:
        `-R -o OUT --incremental [-Q]` on an OUT that our own recover left
        as of the chain's full backup (see standby()), so that only the
        incremental is appended.  Theirs: the full recover operators run
        today (ZODB's repozo has no such mode), as in 'recover'."""
        if tool != 'ours':
            return self.prep_recover(tool, 'chain')
        repo = self.repo_dir(tool, self.fixture('chain', tool))
        out = self.standby(tool, repo)
        argv = self.argv[tool] + ['-R', '-r', str(repo), '-o', str(out),
                                  '--incremental'] + (['-Q'] if quick else [])
        expected = self.data.fs('grown')
        deltas = sorted(repo.glob('*.deltafs'))
        if len(deltas) != 1:
            raise BenchError('%s: expected one .deltafs in %s, found %s'
                             % (tool, repo, [d.name for d in deltas]))
        # The one line this mode prints: what it did.
        want = ('%s: appended %d bytes from 1 file'
                % (out, self.data.size('grown') - self.data.size('base')))

        def check(res):
            if res.output.strip() != want:
                raise BenchError('%s: expected %r, got:\n%s'
                                 % (tool, want, res.output))
            if (out.stat().st_size != expected.stat().st_size
                    or not same_bytes(out, False, expected, 0)):
                raise BenchError('%s: recovered %s differs from %s'
                                 % (tool, out, expected))
            index = deltas[0].with_suffix('.index')
            if not same_bytes(str(out) + '.index', False, index, 0):
                raise BenchError('%s: %s.index differs from %s'
                                 % (tool, out, index))
            self.check_state_file(tool, out)
        return Prepared(argv, check, [repo], backup=False)

    def standby(self, tool, repo):
        """WORK/standby-<tool>/Data.fs as our recover leaves it as of the
        date of the chain's full backup (base.fs), with its .index and its
        state file: `-R -o OUT -D <full's date> --incremental -Q`, which
        recovers in full the first time (OUT is missing) and later cuts off
        what the last timed run appended (OUT keeps its inode, and the
        state file describes it, so that a timed -Q does not fall back to
        the md5 proof).  Untimed."""
        fulls = sorted(repo.glob('*.fs'))
        if len(fulls) != 1:
            raise BenchError('%s: expected one full backup in %s, found %s'
                             % (tool, repo, [f.name for f in fulls]))
        d = self.work / ('standby-' + tool)
        out = d / 'Data.fs'
        existed = out.exists()
        d.mkdir(exist_ok=True)
        argv = self.argv[tool] + ['-R', '-r', str(repo), '-o', str(out),
                                  '-D', fulls[0].stem, '--incremental', '-Q']
        size = self.data.size('base')
        want = ('%s: truncated to %d bytes' % (out, size) if existed
                else '%s: full recover because it does not exist' % out)

        def check(res):
            if res.output.strip() != want:
                raise BenchError('%s: expected %r, got:\n%s'
                                 % (tool, want, res.output))
            if out.stat().st_size != size:
                raise BenchError('%s: %s is not %d bytes long'
                                 % (tool, out, size))
            self.check_state_file(tool, out)
        self.execute(tool, Prepared(argv, check, [], backup=False),
                     'preparing the standby Data.fs')
        return out

    @staticmethod
    def check_state_file(tool, out):
        """OUT.repozo-state describes OUT as it is (device, inode, size,
        mtime; its last line ends at OUT's end), so -Q can use it."""
        path = Path(str(out) + '.repozo-state')
        try:
            text = path.read_text()
        except OSError as e:
            raise BenchError('%s: cannot read %s: %s' % (tool, path, e))
        fields, ends = {}, []
        for line in text.splitlines():
            if line.startswith('line '):
                ends.append(line.split()[3])
            elif line and not line.startswith('#'):
                key, _, value = line.partition(' ')
                fields[key] = value
        st = out.stat()
        now = {'dev': str(st.st_dev), 'ino': str(st.st_ino),
               'size': str(st.st_size), 'mtime_ns': str(st.st_mtime_ns)}
        if (any(fields.get(k) != v for k, v in now.items())
                or ends[-1:] != [str(st.st_size)]):
            raise BenchError('%s: %s does not describe %s (%r):\n%s'
                             % (tool, path, out, now, text))

    def prep_verify(self, tool, fixture, writer=None):
        """-V of the repository `fixture` as `writer` (default: `tool`)
        wrote it."""
        repo = self.repo_dir(tool, self.fixture(fixture, writer or tool))
        argv = self.argv[tool] + ['-V', '-r', str(repo)]

        def check(res):
            if res.output.strip():
                raise BenchError('%s: -V printed:\n%s' % (tool, res.output))
        return Prepared(argv, check, [repo], backup=False)

    # -- checks ---------------------------------------------------------------

    def check_backup(self, tool, repo, before, gz, full, which, start):
        """The run added exactly one backup of <which>.fs[start:] to repo."""
        ext = ('.fs' if full else '.deltafs') + ('z' if gz else '')
        new = sorted(set(os.listdir(repo)) - before)
        data_files = [n for n in new if n.endswith(ext)]
        stems = {n.rsplit('.', 1)[0] for n in new}
        expected_new = (['.dat', ext, '.index'] if full else [ext, '.index'])
        if tool == 'ours':
            # Our backups also write the data file's BLAKE3 sidecar.
            expected_new.append('.blake3')
        if (len(data_files) != 1 or len(stems) != 1
                or sorted('.' + n.rsplit('.', 1)[1] for n in new)
                != sorted(expected_new)):
            raise BenchError('%s: expected a new %s backup in %s, found new '
                             'files %s' % (tool, ext, repo, new))
        src = self.data.fs(which)
        if not same_bytes(repo / data_files[0], gz, src, start):
            raise BenchError('%s: %s is not %s[%d:]'
                             % (tool, repo / data_files[0], src, start))
        dats = sorted(repo.glob('*.dat'))
        last = dats[-1].read_text().splitlines()[-1].split() if dats else []
        if (len(last) != 4 or not last[0].endswith(data_files[0])
                or last[1:3] != [str(start), str(self.data.size(which))]):
            raise BenchError('%s: unexpected last .dat line in %s: %r'
                             % (tool, repo, last))

    # -- fixtures -------------------------------------------------------------

    def fixture(self, name, tool):
        """The repository `name` written by `tool`, built on first use."""
        if (name, tool) not in self.fixtures:
            prep = FIXTURES[name][0](self, tool)
            log('  building repository %r with %s' % (name, tool))
            self.execute(tool, prep, 'building %s' % name)
            self.adopt(name, tool, prep)
        return self.fixtures[(name, tool)]

    def adopt(self, name, tool, prep):
        """Keep prep's product as fixture `name`; clean up the rest."""
        dest = self.work / 'fixtures' / ('%s-%s' % (tool, name))
        os.rename(prep.product, dest)
        self.fixtures[(name, tool)] = dest
        self.cleanup(prep)

    @staticmethod
    def cleanup(prep):
        for d in prep.dirs:
            shutil.rmtree(d, ignore_errors=True)

    # -- running --------------------------------------------------------------

    def execute(self, tool, prep, what):
        # Write back what earlier steps left dirty (copies, deleted outputs),
        # so that it does not land in this measurement.  The page cache
        # itself is kept: inputs stay warm.
        os.sync()
        if prep.backup:
            sleep_to_next_second()
        res = self.runner.run(prep.argv)
        if res.rc != 0:
            raise BenchError('%s: %s exited with status %d:\n  %s\n%s'
                             % (what, tool, res.rc, ' '.join(prep.argv),
                                res.output))
        prep.check(res)
        self.check_inputs_intact()
        return res

    def run_op(self, op, runs):
        """Warm-up, then `runs[tool]` timed runs per tool, alternating.
        The load averages before the timed runs and after them are kept in
        self.loads[op.name]."""
        for tool in TOOLS:
            prep = op.prepare(self, tool)
            self.execute(tool, prep, op.name + ' (warm-up)')
            if op.makes_fixture and (op.makes_fixture, tool) not in self.fixtures:
                self.adopt(op.makes_fixture, tool, prep)
            else:
                self.cleanup(prep)
        results = {t: [] for t in TOOLS}
        load_before = os.getloadavg()
        for i in range(max(runs.values())):
            order = TOOLS if i % 2 == 0 else TOOLS[::-1]
            for tool in order:
                if i >= runs[tool]:
                    continue
                prep = op.prepare(self, tool)
                res = self.execute(tool, prep, op.name)
                self.cleanup(prep)
                results[tool].append(res)
                log('  %-12s %-6s run %d/%d: %8.3f s  %7.1f MB'
                    % (op.name, tool, i + 1, runs[tool], res.seconds,
                       res.rss_kib / 1024))
        self.loads[op.name] = (load_before, os.getloadavg())
        return results

    def full_z_sizes(self):
        """Bytes of the .fsz in each tool's 'full-z' repository."""
        sizes = {}
        for tool in TOOLS:
            repo = self.fixture('full-z', tool)
            sizes[tool] = sum(p.stat().st_size for p in repo.glob('*.fsz'))
        return sizes

    def measure_copy(self, runs):
        """Time `cp --reflink=never base.fs X` (plus, separately, the fsync
        that makes it as durable as a repozo backup) and `md5sum base.fs`."""
        base = self.data.fs('base')
        cp, cp_fsync, md5 = [], [], []
        for i in range(runs + 1):            # the first one is a warm-up
            d = self.new_dir('cp')
            os.sync()
            res = self.runner.run(['cp', '--reflink=never', str(base),
                                   str(d / 'copy.fs')])
            if res.rc != 0:
                raise BenchError('cp failed:\n' + res.output)
            t0 = time.perf_counter()
            fd = os.open(d / 'copy.fs', os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
            fsync_s = time.perf_counter() - t0
            shutil.rmtree(d)
            m = self.runner.run(['md5sum', str(base)])
            if m.rc != 0:
                raise BenchError('md5sum failed:\n' + m.output)
            if i:
                cp.append(res.seconds)
                cp_fsync.append(res.seconds + fsync_s)
                md5.append(m.seconds)
                log('  cp %.3f s, cp + fsync %.3f s, md5sum %.3f s'
                    % (res.seconds, res.seconds + fsync_s, m.seconds))
        return {'cp': statistics.median(cp),
                'cp_fsync': statistics.median(cp_fsync),
                'md5sum': statistics.median(md5)}


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------

def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime(
        '%Y-%m-%d %H:%M:%S UTC')


def machine_info():
    model = '?'
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                model = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    ram = '?'
    try:
        for line in Path('/proc/meminfo').read_text().splitlines():
            if line.startswith('MemTotal:'):
                ram = '%.1f GiB' % (int(line.split()[1]) / 2 ** 20)
                break
    except OSError:
        pass
    return {
        'nproc': len(os.sched_getaffinity(0)),
        'cpu': model,
        'ram': ram,
        'kernel': '%s %s' % (platform.system(), platform.release()),
    }


def fs_type(path):
    """File system type of the mount holding `path` (from /proc/mounts)."""
    best, kind = '', '?'
    path = os.path.realpath(path)
    try:
        for line in Path('/proc/mounts').read_text().splitlines():
            fields = line.split()
            mnt = fields[1]
            if ((path == mnt or path.startswith(mnt.rstrip('/') + '/'))
                    and len(mnt) >= len(best)):
                best, kind = mnt, fields[2]
    except OSError:
        pass
    return kind


def short_path(p):
    """p relative to the repository root when it is inside it."""
    try:
        return str(Path(p).resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def git_version():
    try:
        out = subprocess.run(['git', '-C', str(ROOT), 'describe', '--always',
                              '--dirty'], capture_output=True, text=True)
        return out.stdout.strip() or '?'
    except OSError:
        return '?'


def fmt_s(s):
    return '%.3f' % s if s < 10 else '%.2f' % s if s < 100 else '%.1f' % s


def report(args, data, results, runs, zsizes, copy, markdown, started,
           rss_floor_kib, loads):
    rows = []
    notes = []
    for op in OPS:
        if op.name not in results:
            continue
        r = results[op.name]
        med = {t: statistics.median(x.seconds for x in r[t]) for t in TOOLS}
        rss = {t: max(x.rss_kib for x in r[t]) / 1024 for t in TOOLS}
        rows.append([op.label, fmt_s(med['theirs']), fmt_s(med['ours']),
                     '%.2fx' % (med['theirs'] / med['ours']),
                     '%.1f' % rss['theirs'], '%.1f' % rss['ours']])
        if runs[op.name]['theirs'] != runs[op.name]['ours']:
            notes.append('%s: %s' % (op.label, ', '.join(
                '%s %d run%s' % (t, runs[op.name][t],
                                 '' if runs[op.name][t] == 1 else 's')
                for t in TOOLS)))
    header = ['scenario', 'theirs s', 'ours s', 'speed-up',
              'theirs peak RSS MB', 'ours peak RSS MB']

    lines = []
    m = data.meta
    title = ('repozo benchmark: Data.fs of %d MB, profile %s (base.fs %d '
             'bytes, grown.fs +%.1f MB, stale index at %d)'
             % (args.size_mb, m.get('profile', 'hex'), data.size('base'),
                (data.size('grown') - data.size('base')) / MB,
                m['stale_index_pos']))
    if markdown:
        lines.append('**' + title + '**')
        lines.append('')
        lines.append('| ' + ' | '.join(header) + ' |')
        lines.append('|' + '|'.join(['---'] + ['---:'] * 5) + '|')
        for row in rows:
            lines.append('| ' + ' | '.join(row) + ' |')
        lines.append('')
        bullet = '- '
    else:
        lines.append(title)
        widths = [max([len(header[i])] + [len(r[i]) for r in rows])
                  for i in range(len(header))]
        fmt = '  '.join(['%-*s'] + ['%*s'] * 5)

        def line(cells):
            return fmt % tuple(x for pair in zip(widths, cells) for x in pair)
        lines.append(line(header))
        lines.append(line(['-' * w for w in widths]))
        for row in rows:
            lines.append(line(row))
        bullet = ''

    extra = []
    extra.append('median of %d timed run%s per tool (after one untimed '
                 'warm-up); speed-up = theirs / ours; peak RSS = largest '
                 'ru_maxrss of the command (launcher floor: %.1f MB)'
                 % (args.runs, '' if args.runs == 1 else 's',
                    rss_floor_kib / 1024))
    for n in notes:
        extra.append('other number of runs: ' + n)
    if loads:
        extra.append('load average (1/5/15 min) before -> after the timed '
                     'runs: ' + '; '.join(
                         '%s %s -> %s' % (name, '/'.join('%.2f' % x for x in a),
                                          '/'.join('%.2f' % x for x in z))
                         for name, (a, z) in loads.items()))
    if zsizes:
        extra.append('full -z output: theirs %.1f MB (gzip level 9), ours '
                     '%.1f MB; ours / theirs = %.3f'
                     % (zsizes['theirs'] / MB, zsizes['ours'] / MB,
                        zsizes['ours'] / zsizes['theirs']))
    if copy and 'full' in results:
        ours_full = statistics.median(x.seconds for x in results['full']['ours'])
        extra.append('our full / cp = %.2f  (cp %s s, cp + fsync %s s, '
                     'md5sum %s s of base.fs; our full fsyncs, cp does not)'
                     % (ours_full / copy['cp'], fmt_s(copy['cp']),
                        fmt_s(copy['cp_fsync']), fmt_s(copy['md5sum'])))
    mi = machine_info()
    extra.append('machine: %d CPUs (nproc), %s, %s RAM, %s; files on %s, '
                 'all warm in page cache' % (mi['nproc'], mi['cpu'], mi['ram'],
                                             mi['kernel'],
                                             fs_type(data.dir)))
    extra.append('ours: %s (git %s); theirs: ZODB %s repozo, Python %s'
                 % (short_path(args.ours), git_version(),
                    importlib.metadata.version('ZODB'),
                    platform.python_version()))
    extra.append('data (profile %s) generated through ZODB in %.0f s '
                 '(%.0f s per GB)%s; benchmark started %s'
                 % (m.get('profile', 'hex'), m['generation_seconds'],
                    m['generation_seconds']
                    / (data.size('grown') / 2 ** 30),
                    ', cached' if m.get('cached') else '', started))
    lines.extend(bullet + e for e in extra)
    return '\n'.join(lines)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def parse_op_runs(specs, ops):
    """--op-runs OP[:TOOL]=N -> {(op, tool): N}."""
    out = {}
    for spec in specs:
        try:
            key, n = spec.split('=')
            op, _, tool = key.partition(':')
            n = int(n)
        except ValueError:
            raise BenchError('bad --op-runs %r (want OP[:TOOL]=N)' % spec)
        if op not in OPS_BY_NAME or tool not in ('',) + TOOLS or n < 1:
            raise BenchError('bad --op-runs %r' % spec)
        for t in ([tool] if tool else TOOLS):
            out[(op, t)] = n
    return out


def build_parser():
    p = argparse.ArgumentParser(
        description='Benchmark our repozo against ZODB 6.4\'s repozo.',
        epilog='Scenarios: ' + ', '.join(op.name for op in OPS))
    p.add_argument('--size-mb', type=int, default=512,
                   help='size of the generated Data.fs (default 512)')
    p.add_argument('--profile', choices=PROFILES, default='hex',
                   help='kind of generated data: hex (default: hex text '
                        'bodies), cms (content edits, catalog BTrees, '
                        'docstring text, a few %% image bytes) or bulk '
                        '(millions of small objects); see bench/gendata.py')
    p.add_argument('--runs', type=int, default=3,
                   help='timed runs per tool and scenario (default 3)')
    p.add_argument('--op-runs', action='append', default=[],
                   metavar='OP[:TOOL]=N',
                   help='other number of runs for one scenario (and tool); '
                        'repeatable.  Default: full-z:theirs=1 from 1024 MB')
    p.add_argument('--ops', default=','.join(op.name for op in OPS),
                   help='comma-separated subset of the scenarios')
    p.add_argument('--cache-dir', type=Path,
                   default=ROOT / 'target' / 'bench-cache',
                   help='where generated data is kept (default '
                        'target/bench-cache)')
    p.add_argument('--ours', type=Path,
                   default=ROOT / 'target' / 'release' / 'repozo',
                   help='our binary (default target/release/repozo)')
    p.add_argument('--theirs', type=Path,
                   default=Path(sys.executable).parent / 'repozo',
                   help="ZODB's repozo (default: the venv's bin/repozo)")
    p.add_argument('--markdown', action='store_true',
                   help='print the results as markdown (for the README)')
    p.add_argument('--regenerate', action='store_true',
                   help='generate the data again even if cached')
    p.add_argument('--generate-only', action='store_true',
                   help='only make sure the data of --size-mb is cached')
    p.add_argument('--keep-work', action='store_true',
                   help='keep the working directory (repositories) at the end')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return bench(args)
    except BenchError as e:
        print('bench.py: ERROR: %s' % e, file=sys.stderr)
        return 1


def bench(args):
    ops = [o.strip() for o in args.ops.split(',') if o.strip()]
    for o in ops:
        if o not in OPS_BY_NAME:
            raise BenchError('unknown scenario %r (known: %s)'
                             % (o, ', '.join(OPS_BY_NAME)))
    if args.size_mb < 1 or args.runs < 1:
        raise BenchError('--size-mb and --runs must be at least 1')
    for tool in (args.ours, args.theirs):
        if not os.access(tool, os.X_OK):
            raise BenchError('not an executable: %s' % tool)
    overrides = parse_op_runs(args.op_runs, ops)
    if args.size_mb >= 1024:
        # ZODB's -z is gzip level 9: about a minute per GB.
        overrides.setdefault(('full-z', 'theirs'), 1)
    runs = {o: {t: overrides.get((o, t), args.runs) for t in TOOLS}
            for o in ops}

    args.cache_dir = args.cache_dir.resolve()
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    # One benchmark at a time per cache directory.
    lock = open(args.cache_dir / 'lock', 'w')
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise BenchError('another benchmark is using %s' % args.cache_dir)

    started = utc_now()
    data = ensure_data(args.cache_dir, args.size_mb, args.regenerate,
                       args.profile)
    if args.generate_only:
        return 0

    # The working directory is on the same file system as the cache, so
    # that inputs can be hardlinked.
    work = args.cache_dir / 'work'
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    b = Bench(args, data, work)

    results = {}
    try:
        for name in ops:
            log('scenario %s (%s)' % (name, OPS_BY_NAME[name].label))
            results[name] = b.run_op(OPS_BY_NAME[name], runs[name])
        zsizes = b.full_z_sizes() if 'full-z' in results else None
        copy = None
        if 'full' in results:
            log('cp and md5sum of base.fs')
            copy = b.measure_copy(args.runs)
    except BenchError as e:
        raise BenchError('%s\n(working files kept in %s)' % (e, work))

    if not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    print(report(args, data, results, runs, zsizes, copy, args.markdown,
                 started, b.runner.floor_kib, b.loads))
    return 0


if __name__ == '__main__':
    sys.exit(main())
