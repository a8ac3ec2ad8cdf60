#!/usr/bin/env python3
"""blobbench.py -- time our blob backup (-B/-R --blob-dir) against the
copies operators run today (cp -a, rsync --link-dest).

The documented way to run it is

    bash scripts/bench-blobs.sh [N_BLOBS]        # default 50000 (~3 GB)

which provisions the venv, installs rsync if missing, builds
target/release/repozo and runs this script with the venv's python:

    .venv/bin/python bench/blobbench.py --blobs 50000 [--runs 3]
        [--ops full,incr,restore,datafs] [--cache-dir target/bench-cache]
        [--ours target/release/repozo] [--theirs .venv/bin/repozo]
        [--keep-work] [--regenerate]

Data (generated once, cached in CACHE_DIR/blobs-<N>)
----------------------------------------------------
bench/blobgen.py writes through real ZODB 6.4 a FileStorage with a bushy
blob directory of N blob files (~3 GB for 50,000; log-normal sizes, text-
and image-like contents, 200 blobs a transaction plus small edits):

  base/Data.fs, base/blobs      the site at the time of last night's backup
  grown/Data.fs, grown/blobs    a real copy of base plus 100 new blobs (one
                                upload transaction and a catalog edit)
  meta.json                     counts, sizes, the digest of each tree;
                                written last, so a half-built cache is
                                never used

Scenarios (--ops)
-----------------
  full     ours: repozo -B -F -r REPO -f base/Data.fs --blob-dir base/blobs
           into an empty repository; against cp -a base/blobs DEST, and
           cp -a base/blobs DEST && sync (ours makes everything durable with
           syncfs before it returns; cp -a alone leaves it in the page cache)
  incr     ours: repozo -B -r REPO -f grown/Data.fs --blob-dir grown/blobs,
           REPO holding a full backup of base (restored before every run);
           against rsync -a --delete --link-dest=PREV grown/blobs/ NEW/ where
           PREV is an rsync copy of base/blobs (what collective.recipe.backup
           runs every night)
  restore  ours: repozo -R -r REPO -o OUT/Data.fs --blob-dir OUT/blobs of the
           chain full(base) + incremental(grown); against cp -a grown/blobs
           DEST, and cp -a && sync
  datafs   context: -B -F of the Data.fs alone, ours and ZODB's repozo

Every run starts from a synced filesystem (outputs of the previous run
removed, then `sync`, untimed) with the inputs in the page cache (read
once, untimed).  Each command runs --runs times, tools alternating, after
one untimed warm-up; the report gives medians and ours/baseline ratios
(below 1: we are faster).  Checks: every restore gives grown/Data.fs byte
for byte and the same *.blob files with the same bytes as grown/blobs (a
sha256 over the sorted listing of relative path and sha256 of each file);
the cp and rsync copies are checked the same way once.  A failed check
aborts with exit 1, keeping the working directory.  Progress goes to
stderr, the markdown table to stdout.
"""

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOBGEN = ROOT / 'bench' / 'blobgen.py'
DATA_VERSION = 1
NEW_BLOBS = 100
MB = 2 ** 20


class BenchError(Exception):
    pass


def log(msg):
    print('blobbench: ' + msg, file=sys.stderr, flush=True)


def run(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, **kw)
    if r.returncode != 0:
        raise BenchError('%s failed (exit %d): %s%s' % (
            ' '.join(map(str, cmd)), r.returncode, r.stdout[-2000:], r.stderr[-2000:]))
    return r


def timed(cmd):
    t0 = time.monotonic()
    run(cmd)
    return time.monotonic() - t0


def rmtree(p):
    p = Path(p)
    if p.is_symlink() or p.is_file():
        p.unlink()
    elif p.exists():
        # blob files and store objects are read-only; rm -rf does not care
        run(['rm', '-rf', str(p)])


def sync():
    os.sync()


def tree_digest(top):
    """(count, bytes, sha256 of the sorted 'relpath sha256' lines) of the
    *.blob files under top."""
    top = Path(top)
    lines, n, size = [], 0, 0
    for dirpath, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d != 'tmp' or dirpath != str(top)]
        for f in files:
            if not f.endswith('.blob'):
                continue
            p = os.path.join(dirpath, f)
            h = hashlib.sha256()
            with open(p, 'rb') as fh:
                while True:
                    b = fh.read(1 << 20)
                    if not b:
                        break
                    h.update(b)
                    size += len(b)
            lines.append('%s %s\n' % (os.path.relpath(p, top), h.hexdigest()))
            n += 1
    lines.sort()
    return n, size, hashlib.sha256(''.join(lines).encode()).hexdigest()


def file_sha(p):
    h = hashlib.sha256()
    with open(p, 'rb') as fh:
        while True:
            b = fh.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


def warm(*paths):
    """Read every file once (untimed), so inputs are in the page cache."""
    for top in paths:
        top = str(top)
        if os.path.isfile(top):
            with open(top, 'rb') as fh:
                while fh.read(1 << 22):
                    pass
            continue
        for dirpath, _, files in os.walk(top):
            for f in files:
                try:
                    with open(os.path.join(dirpath, f), 'rb') as fh:
                        while fh.read(1 << 22):
                            pass
                except OSError:
                    pass


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

def ensure_data(cache, n, regenerate):
    d = cache / ('blobs-%d' % n)
    meta_path = d / 'meta.json'
    if not regenerate:
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get('version') == DATA_VERSION and meta.get('blobs') == n:
                log('using cached data in %s' % d)
                return d, meta
        except (OSError, ValueError):
            pass
    rmtree(d)
    (d / 'base').mkdir(parents=True)
    t0 = time.monotonic()
    log('generating %d blobs through ZODB into %s (once)' % (n, d))
    r = subprocess.run([sys.executable, str(BLOBGEN), str(d / 'base' / 'Data.fs'),
                        str(d / 'base' / 'blobs'), '--blobs', str(n)])
    if r.returncode:
        raise BenchError('blobgen.py failed')
    log('copying base to grown and adding %d blobs' % NEW_BLOBS)
    (d / 'grown').mkdir()
    run(['cp', '-a', str(d / 'base' / 'blobs'), str(d / 'grown' / 'blobs')])
    for name in ('Data.fs', 'Data.fs.index'):
        shutil.copy2(d / 'base' / name, d / 'grown' / name)
    r = subprocess.run([sys.executable, str(BLOBGEN), str(d / 'grown' / 'Data.fs'),
                        str(d / 'grown' / 'blobs'), '--add', str(NEW_BLOBS)])
    if r.returncode:
        raise BenchError('blobgen.py --add failed')
    log('computing tree digests')
    meta = {'version': DATA_VERSION, 'blobs': n,
            'generation_s': round(time.monotonic() - t0, 1)}
    for which in ('base', 'grown'):
        cnt, size, dig = tree_digest(d / which / 'blobs')
        meta[which] = {'files': cnt, 'bytes': size, 'digest': dig,
                       'datafs_bytes': (d / which / 'Data.fs').stat().st_size,
                       'datafs_sha256': file_sha(d / which / 'Data.fs')}
    meta_path.write_text(json.dumps(meta, indent=1))
    log('data ready: %s' % json.dumps(meta))
    return d, meta


# ---------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------

class Bench:
    def __init__(self, args, data, meta):
        self.args, self.data, self.meta = args, data, meta
        self.work = Path(args.cache_dir) / 'blobwork'
        self.ours, self.theirs = args.ours, args.theirs
        self.results = {}   # key -> list of seconds

    def p(self, *parts):
        return self.work.joinpath(*parts)

    def src(self, which, name):
        return str(self.data / which / name)

    def record(self, key, secs):
        self.results.setdefault(key, []).append(secs)
        log('  %-24s %8.2f s' % (key, secs))

    def check_tree(self, tree, which, what):
        cnt, size, dig = tree_digest(tree)
        want = self.meta[which]
        if (cnt, size, dig) != (want['files'], want['bytes'], want['digest']):
            raise BenchError('%s: %s has %d blob files, %d bytes, digest %s; %s/blobs '
                             'has %d, %d, %s' % (what, tree, cnt, size, dig, which,
                                                 want['files'], want['bytes'],
                                                 want['digest']))
        log('  check: %s == %s/blobs (%d files, %.0f MB)' % (tree, which, cnt, size / MB))

    def fresh(self, *paths, inputs=()):
        for p in paths:
            rmtree(p)
        sync()
        warm(*inputs)

    def rounds(self, variants):
        """variants: list of (key, prepare(), command list or callable,
        check(i) or None); warm-up then --runs alternating rounds."""
        for i in range(self.args.runs + 1):
            order = variants if i % 2 == 0 else list(reversed(variants))
            for key, prepare, cmd, check in order:
                prepare()
                secs = timed(cmd)
                if i == 0:
                    log('  %-24s %8.2f s (warm-up)' % (key, secs))
                else:
                    self.record(key, secs)
                if check:
                    check(i)

    # -- full ---------------------------------------------------------------

    def full(self):
        log('full: -B -F --blob-dir vs cp -a')
        base_blobs, base_fs = self.src('base', 'blobs'), self.src('base', 'Data.fs')
        repo, dest = self.p('repo-full'), self.p('cp-dest')
        inputs = (base_blobs, base_fs)

        def prep_ours():
            self.fresh(repo, inputs=inputs)
            repo.mkdir(parents=True)

        def prep_cp():
            self.fresh(dest, inputs=inputs)

        def check_cp(i):
            if i == 0:
                self.check_tree(dest, 'base', 'cp -a')

        self.rounds([
            ('full ours', prep_ours,
             [self.ours, '-B', '-F', '-r', str(repo), '-f', base_fs,
              '--blob-dir', base_blobs], None),
            ('full cp -a', prep_cp, ['cp', '-a', base_blobs, str(dest)], check_cp),
            ('full cp -a && sync', prep_cp,
             ['sh', '-c', 'cp -a "$1" "$2" && sync', 'sh', base_blobs, str(dest)], None),
        ])
        rmtree(dest)
        rmtree(repo)

    # -- incremental ----------------------------------------------------------

    def incr(self):
        log('incr: -B --blob-dir (after a full) vs rsync --link-dest')
        base_blobs, base_fs = self.src('base', 'blobs'), self.src('base', 'Data.fs')
        grown_blobs, grown_fs = self.src('grown', 'blobs'), self.src('grown', 'Data.fs')
        repo, snap = self.p('repo-incr'), self.p('repo-incr.snap')
        prev, new = self.p('rsync-prev'), self.p('rsync-new')
        log('  preparing: full backup of base, rsync copy of base/blobs (untimed)')
        for p in (repo, snap, prev, new):
            rmtree(p)
        repo.mkdir(parents=True)
        run([self.ours, '-B', '-F', '-r', str(repo), '-f', base_fs,
             '--blob-dir', base_blobs])
        repo.rename(snap)
        run(['rsync', '-a', base_blobs + '/', str(prev) + '/'])
        time.sleep(1.1)  # the incremental's stamp is later than the full's
        inputs = (grown_blobs, grown_fs)

        def prep_ours():
            # the repository as the full left it, at the same path (the .dat
            # names its files); store objects are never rewritten: hardlinks
            self.fresh(repo)
            run(['cp', '-a', str(snap), str(repo)]) if self.args.copy_snap else \
                self._link_copy(snap, repo)
            warm(*inputs)

        def prep_rsync():
            self.fresh(new, inputs=inputs)

        def check_rsync(i):
            if i == 0:
                self.check_tree(new, 'grown', 'rsync --link-dest')

        def check_ours(i):
            got = sorted(x.name for x in repo.iterdir() if x.name.endswith('.blobs'))
            if len(got) != 2:
                raise BenchError('incremental: expected 2 manifests in %s, got %s'
                                 % (repo, got))

        self.rounds([
            ('incr ours', prep_ours,
             [self.ours, '-B', '-r', str(repo), '-f', grown_fs,
              '--blob-dir', grown_blobs], check_ours),
            ('incr rsync --link-dest', prep_rsync,
             ['rsync', '-a', '--delete', '--link-dest=' + str(prev),
              grown_blobs + '/', str(new) + '/'], check_rsync),
        ])
        for p in (repo, snap, prev, new):
            rmtree(p)

    @staticmethod
    def _link_copy(src, dst):
        """Copy src to dst, hardlinking files under blobs/objects."""
        for dirpath, dirs, files in os.walk(src):
            rel = os.path.relpath(dirpath, src)
            out = os.path.join(dst, rel)
            os.makedirs(out, exist_ok=True)
            objects = rel.split(os.sep)[:2] == ['blobs', 'objects']
            for f in files:
                s, d = os.path.join(dirpath, f), os.path.join(out, f)
                if objects:
                    os.link(s, d)
                else:
                    shutil.copy2(s, d)

    # -- restore --------------------------------------------------------------

    def restore(self):
        log('restore: -R --blob-dir vs cp -a')
        base_blobs, base_fs = self.src('base', 'blobs'), self.src('base', 'Data.fs')
        grown_blobs, grown_fs = self.src('grown', 'blobs'), self.src('grown', 'Data.fs')
        repo, out, dest = self.p('repo-chain'), self.p('out'), self.p('cp-dest')
        log('  preparing: full backup of base + incremental of grown (untimed)')
        rmtree(repo)
        repo.mkdir(parents=True)
        run([self.ours, '-B', '-F', '-r', str(repo), '-f', base_fs,
             '--blob-dir', base_blobs])
        time.sleep(1.1)
        run([self.ours, '-B', '-r', str(repo), '-f', grown_fs, '--blob-dir', grown_blobs])
        store = str(repo / 'blobs')

        def prep_ours():
            self.fresh(out, inputs=(store, str(repo)))
            out.mkdir(parents=True)

        def check_ours(i):
            if i in (0, self.args.runs):
                if file_sha(out / 'Data.fs') != self.meta['grown']['datafs_sha256']:
                    raise BenchError('restore: %s/Data.fs differs from grown/Data.fs' % out)
                self.check_tree(out / 'blobs', 'grown', 'restore')

        def prep_cp():
            self.fresh(dest, inputs=(grown_blobs,))

        self.rounds([
            ('restore ours', prep_ours,
             [self.ours, '-R', '-r', str(repo), '-o', str(out / 'Data.fs'),
              '--blob-dir', str(out / 'blobs')], check_ours),
            ('restore cp -a', prep_cp, ['cp', '-a', grown_blobs, str(dest)], None),
            ('restore cp -a && sync', prep_cp,
             ['sh', '-c', 'cp -a "$1" "$2" && sync', 'sh', grown_blobs, str(dest)], None),
        ])
        for p in (repo, out, dest):
            rmtree(p)

    # -- Data.fs alone -------------------------------------------------------

    def datafs(self):
        log('datafs: -B -F of the Data.fs alone (context)')
        base_fs = self.src('base', 'Data.fs')
        ro, rt = self.p('repo-dfs-ours'), self.p('repo-dfs-theirs')

        def prep(repo):
            def f():
                self.fresh(repo, inputs=(base_fs,))
                repo.mkdir(parents=True)
            return f

        variants = [('Data.fs ours', prep(ro),
                     [self.ours, '-B', '-F', '-r', str(ro), '-f', base_fs], None)]
        if self.theirs:
            variants.append(('Data.fs ZODB repozo', prep(rt),
                             [self.theirs, '-B', '-F', '-r', str(rt), '-f', base_fs], None))
        self.rounds(variants)
        rmtree(ro)
        rmtree(rt)

    # -- report ---------------------------------------------------------------

    def med(self, key):
        v = self.results.get(key)
        return statistics.median(v) if v else None

    def report(self, started_load, ended_load):
        def row(name, ours, base):
            o, b = self.med(ours), self.med(base)
            if o is None or b is None:
                return
            print('| %s | %.2f | %s | %.2f | %.2f |' % (name, o, base.split(' ', 1)[1], b, o / b))

        m = self.meta
        print('Blob benchmark: %d blob files, %.2f GB (grown: +%d files); Data.fs %.0f MB; '
              'median of %d runs, warm page cache, ours = %s.'
              % (m['base']['files'], m['base']['bytes'] / 2 ** 30,
                 m['grown']['files'] - m['base']['files'],
                 m['base']['datafs_bytes'] / MB, self.args.runs, self.args.ours))
        print()
        print('| scenario | ours (s) | baseline | baseline (s) | ours / baseline |')
        print('|---|---:|---|---:|---:|')
        row('full backup (-B -F, Data.fs + blobs, synced)', 'full ours', 'full cp -a')
        row('', 'full ours', 'full cp -a && sync')
        row('incremental, +%d blobs (-B)' % NEW_BLOBS, 'incr ours',
            'incr rsync --link-dest')
        row('restore (-R, Data.fs + blobs, verified, synced)', 'restore ours',
            'restore cp -a')
        row('', 'restore ours', 'restore cp -a && sync')
        row('Data.fs alone (-B -F), context', 'Data.fs ours', 'Data.fs ZODB repozo')
        print()
        print('All runs (s): ' + '; '.join(
            '%s: %s' % (k, ' '.join('%.2f' % x for x in v)) for k, v in self.results.items()))
        print()
        cpu = 'unknown CPU'
        try:
            for line in subprocess.run(['lscpu'], stdout=subprocess.PIPE, text=True).stdout.splitlines():
                if line.startswith('Model name:'):
                    cpu = line.split(':', 1)[1].strip()
        except OSError:
            pass
        print('Machine: %s, %d CPUs, %s; load average at start %s, at end %s.'
              % (cpu, os.cpu_count(), platform.platform(), started_load, ended_load))


def loadavg():
    try:
        return ' '.join(Path('/proc/loadavg').read_text().split()[:3])
    except OSError:
        return '?'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--blobs', type=int, default=50_000)
    p.add_argument('--runs', type=int, default=3)
    p.add_argument('--ops', default='full,incr,restore,datafs')
    p.add_argument('--cache-dir', default=str(ROOT / 'target' / 'bench-cache'))
    p.add_argument('--ours', default=str(ROOT / 'target' / 'release' / 'repozo'))
    p.add_argument('--theirs', default=str(Path(sys.executable).parent / 'repozo'))
    p.add_argument('--regenerate', action='store_true')
    p.add_argument('--keep-work', action='store_true')
    p.add_argument('--copy-snap', action='store_true',
                   help='incr: copy the full repository before each run instead of '
                        'hardlinking its store objects')
    args = p.parse_args(argv)
    if args.theirs and not os.path.exists(args.theirs):
        args.theirs = None
    ops = [o.strip() for o in args.ops.split(',') if o.strip()]
    for o in ops:
        if o not in ('full', 'incr', 'restore', 'datafs'):
            p.error('unknown op %r' % o)
    for tool in ('rsync', 'cp'):
        if shutil.which(tool) is None:
            p.error('%s is not installed' % tool)
    try:
        data, meta = ensure_data(Path(args.cache_dir), args.blobs, args.regenerate)
        b = Bench(args, data, meta)
        b.work.mkdir(parents=True, exist_ok=True)
        start = loadavg()
        log('load average: %s' % start)
        for o in ops:
            getattr(b, o)()
        b.report(start, loadavg())
        if not args.keep_work:
            rmtree(b.work)
    except BenchError as e:
        print('blobbench: ERROR: %s' % e, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
