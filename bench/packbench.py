#!/usr/bin/env python3
"""packbench.py -- backups across a pack: a plain full against --pack-delta.

The documented way to run it is

    bash scripts/bench-pack-delta.sh [SIZE_MB] [--runs N] [--markdown]

which provisions the venv, builds target/release/repozo and runs this script
with the venv's python:

    .venv/bin/python bench/packbench.py --size-mb 1024 [--runs 3]
        [--scenario plain] [--seed 1] [--markdown] [--cache-dir DIR]
        [--ours target/release/repozo] [--theirs .venv/bin/repozo]
        [--regenerate] [--generate-only] [--keep-work]

Data (generated once per scenario, size and seed; cached in
CACHE_DIR/packhist-<scenario>-<N>mb-seed<S>)
---------------------------------------------------------------------
bench/packhist.py builds a cms site through real ZODB and packs it; its
--step-cmd hook copies three states:

  base.fs     the site right after its previous pack (pack0)
  prepack.fs  base.fs + a week of edits and the commits after the pack time
              (~SIZE_MB; a prefix-extension of base.fs)
  packed.fs   prepack.fs packed (pack1: keeps ~90% of the bytes)

each with its Data.fs.index, and history.json (kept ratios, times);
meta.json is written last, so a half-generated cache is never used.

Repositories (untimed, once per benchmark, written by ours)
-----------------------------------------------------------
  chain    -BF of base.fs, then -B of prepack.fs (an incremental): what
           the repository holds when the pack happens
  chain-z  the same with -z

Measured (medians of --runs; each run on a fresh copy of the repository,
always at the same path WORK/repo; a backup starts after the next second)
-------------------------------------------------------------------------
  (a) ours  -B -F -f packed.fs       into chain: the plain full backup
      ours  -B -f packed.fs          (finds the pack, writes a full)
      ours  -B -Q -f packed.fs       (the same, deciding by the last file)
      ZODB  -B -F -f packed.fs       for reference
      ours  -B -F -z                 into chain-z
  (b) ours  -B --pack-delta          into chain; stored bytes / (a)'s;
                                     time / -B's (the same decision)
      ours  -B -Q --pack-delta       time / -B -Q's
      ours  -B --pack-delta -z       into chain-z; / the full -z
  (c) ours  -R of chain + the plain full, and of chain + the pack delta
      (and the same for -z)
  (d) a standby made by `-R --incremental -o standby/Data.fs` from chain
      (before the pack; untimed, every run), then after the backup
      `-R --incremental -o standby/Data.fs` (and with -Q): on the pack
      delta chain, and on the plain full chain (a full recover today,
      the "full recover" the pack-delta catch-up is compared with); also
      against (c)'s -R of the plain full chain into a new file.

Every result is checked: new backup files are of the expected kind, the
plain full holds exactly packed.fs (gunzipped for -z), the new .dat line is
`<file> 0 <size of packed.fs> <md5 of packed.fs>`, the pack delta starts
with `repozo-rs pack-delta 1\\n`, -V of each final repository is silent,
every recovered file and standby equals packed.fs byte for byte (and its
.index the chain's), a standby's repozo-state describes it.  Any failure
stops the benchmark with an error (exit 1), keeping the working directory.

While the binary has no --pack-delta (`repozo --help` does not mention it),
the (b) rows and those that need their repository print
"pack-delta: not built yet"; everything else runs.
"""

import argparse
import fcntl
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import bench as B  # noqa: E402  (bench/bench.py: runner, file helpers)

ROOT = B.ROOT
PACKHIST = BENCH / 'packhist.py'
MB = B.MB
DATA_VERSION = 1
MAGIC = b'repozo-rs pack-delta 1\n'
NOT_BUILT = 'pack-delta: not built yet'
BenchError = B.BenchError


def log(msg):
    print('packbench: ' + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

STATES = ('base', 'prepack', 'packed')

# The hook packhist runs after every step: keep the three states.
STEP_CMD = r'''
case "$STEP_NAME" in
  pack0) dst=base ;;
  late1|undo2) dst=prepack ;;
  pack1) dst=packed ;;
  *) exit 0 ;;
esac
cp "$DATA_FS" "$STATES_DIR/$dst.fs.tmp" &&
cp "$DATA_FS.index" "$STATES_DIR/$dst.fs.index" &&
mv "$STATES_DIR/$dst.fs.tmp" "$STATES_DIR/$dst.fs"
'''


def cached_meta(d, key):
    try:
        meta = json.loads((d / 'meta.json').read_text())
    except (OSError, ValueError):
        return None
    if meta.get('version') != DATA_VERSION or meta.get('key') != key:
        return None
    for name, size in meta['sizes'].items():
        try:
            if (d / name).stat().st_size != size:
                return None
        except OSError:
            return None
    return meta


def ensure_data(args):
    key = dict(scenario=args.scenario, size_mb=args.size_mb, seed=args.seed)
    name = 'packhist-%s-%dmb-seed%d' % (args.scenario, args.size_mb, args.seed)
    d = args.cache_dir / name
    meta = None if args.regenerate else cached_meta(d, key)
    if meta is not None:
        log('using cached data in %s (generated in %.0f s)'
            % (d, meta['generation_seconds']))
        meta['cached'] = True
        return d, meta
    tmp = args.cache_dir / (name + '.partial')
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log('generating the %s history at %d MB through ZODB in %s'
        % (args.scenario, args.size_mb, tmp))
    cmd = [sys.executable, str(PACKHIST), str(tmp / 'history'),
           '--size-mb', str(args.size_mb), '--seed', str(args.seed),
           '--scenario', args.scenario, '--stop-after', 'pack1',
           '--step-cmd', STEP_CMD]
    t0 = time.monotonic()
    env = dict(os.environ, STATES_DIR=str(tmp))
    if subprocess.run(cmd, env=env).returncode != 0:
        raise BenchError('data generation failed: %s' % ' '.join(
            shlex.quote(c) for c in cmd))
    elapsed = time.monotonic() - t0
    history = json.loads((tmp / 'history' / 'history.json').read_text())
    shutil.copyfile(tmp / 'history' / 'history.json', tmp / 'history.json')
    shutil.rmtree(tmp / 'history')
    names = [s + ext for s in STATES for ext in ('.fs', '.fs.index')]
    sizes = {n: (tmp / n).stat().st_size for n in names}
    pack1 = [s for s in history['steps'] if s['name'] == 'pack1'][0]
    if (sizes['prepack.fs'] != pack1['before']
            or sizes['packed.fs'] != pack1['size']
            or B.md5_file(tmp / 'packed.fs') != pack1['md5']):
        raise BenchError('the states copied by the hook do not match '
                         'history.json')
    meta = dict(version=DATA_VERSION, key=key, sizes=sizes,
                generation_seconds=round(elapsed, 1),
                generated_at=B.utc_now(),
                steps={s['name']: dict(kind=s['kind'], size=s['size'],
                                       seconds=s['seconds'],
                                       kept=s.get('kept'))
                       for s in history['steps']},
                packed_md5=pack1['md5'])
    (tmp / 'meta.json').write_text(json.dumps(meta, indent=1) + '\n')
    shutil.rmtree(d, ignore_errors=True)
    os.rename(tmp, d)
    log('generated in %.1f s' % elapsed)
    meta['cached'] = False
    return d, meta


# ---------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------

@dataclass
class Row:
    key: str
    label: str
    times: list = field(default_factory=list)
    stored: Optional[int] = None      # bytes of the new data file
    note: str = ''
    skipped: Optional[str] = None

    @property
    def median(self):
        return statistics.median(self.times) if self.times else None


def has_pack_delta(ours):
    out = subprocess.run([str(ours), '--help'], capture_output=True,
                         text=True, env=B.CHILD_ENV)
    return 'pack-delta' in out.stdout + out.stderr


class PackBench:
    def __init__(self, args, data_dir, meta, work):
        self.args = args
        self.data = data_dir
        self.meta = meta
        self.work = work
        self.ours = [str(args.ours)]
        self.theirs = [str(args.theirs)]
        self.delta = has_pack_delta(args.ours)
        self.runner = B.Runner(args.cache_dir / 'tools',
                               work / 'last-output.txt')
        self.fixtures = {}
        self.serial = 0
        self.packed = data_dir / 'packed.fs'
        self.packed_size = self.packed.stat().st_size
        self.packed_md5 = meta['packed_md5']
        (work / 'fixtures').mkdir()
        self.pristine = {p: B.Bench.stat_key(p)
                         for p in sorted(data_dir.iterdir())}

    # -- files ----------------------------------------------------------------

    def new_dir(self, tag):
        self.serial += 1
        d = self.work / ('%04d-%s' % (self.serial, tag))
        d.mkdir()
        return d

    def source(self, state):
        d = self.new_dir('src-' + state)
        fs = d / 'Data.fs'
        B.link_or_copy(self.data / (state + '.fs'), fs)
        shutil.copyfile(self.data / (state + '.fs.index'), d / 'Data.fs.index')
        return fs

    def repo(self, fixture=None):
        """WORK/repo, empty or a copy of a fixture (hardlinked data files)."""
        r = self.work / 'repo'
        if r.exists():
            shutil.rmtree(r)
        r.mkdir()
        if fixture is not None:
            B.copy_repo(self.fixtures[fixture], r)
        return r

    def keep(self, name, repo):
        dest = self.work / 'fixtures' / name
        shutil.rmtree(dest, ignore_errors=True)
        os.rename(repo, dest)
        self.fixtures[name] = dest

    def check_inputs(self):
        for p, k in self.pristine.items():
            if B.Bench.stat_key(p) != k:
                raise BenchError('cached input %s was modified' % p)

    # -- running --------------------------------------------------------------

    def run(self, argv, what, backup):
        os.sync()
        if backup:
            B.sleep_to_next_second()
        res = self.runner.run(argv)
        if res.rc != 0:
            raise BenchError('%s: exit status %d:\n  %s\n%s'
                             % (what, res.rc, ' '.join(argv), res.output))
        self.check_inputs()
        return res

    def backup(self, repo, src, flags, what):
        """Run a backup; return (result, new file names)."""
        before = set(os.listdir(repo))
        argv = list(flags) + ['-f', str(src), '-r', str(repo)]
        res = self.run(argv, what, backup=True)
        return res, sorted(set(os.listdir(repo)) - before)

    # -- checks ---------------------------------------------------------------

    def check_new_chain(self, repo, new, ext, what, tool='ours', delta=False):
        """A new chain: one <stamp>ext data file, its .dat (one line:
        the file, 0, packed.fs's size and md5) and .index (+ .blake3)."""
        data = [n for n in new if n.endswith(ext)]
        stems = {n.rsplit('.', 1)[0] for n in new}
        want = ['.dat', ext, '.index'] + (['.blake3'] if tool == 'ours' else [])
        got = sorted('.' + n.rsplit('.', 1)[1] for n in new)
        if delta and '.blake3' not in got:
            want.remove('.blake3')      # a sidecar for a delta: optional
        if len(data) != 1 or len(stems) != 1 or got != sorted(want):
            raise BenchError('%s: expected a new %s chain in %s, found new '
                             'files %s' % (what, ext, repo, new))
        stem = data[0][:-len(ext)]
        lines = (repo / (stem + '.dat')).read_text().splitlines()
        f = lines[-1].split() if lines else []
        if (len(lines) != 1 or len(f) != 4 or not f[0].endswith(data[0])
                or f[1:] != ['0', str(self.packed_size), self.packed_md5]):
            raise BenchError('%s: unexpected .dat %s: %r'
                             % (what, repo / (stem + '.dat'), lines))
        if not B.same_bytes(repo / (stem + '.index'), False,
                            self.data / 'packed.fs.index', 0):
            raise BenchError('%s: %s.index is not packed.fs.index'
                             % (what, stem))
        return repo / data[0]

    def check_same_as_packed(self, path, what):
        if (not path.exists() or path.stat().st_size != self.packed_size
                or not B.same_bytes(path, False, self.packed, 0)):
            raise BenchError('%s: %s differs from packed.fs %s'
                             % (what, path, self.packed))

    def verify_silent(self, fixture):
        repo = self.repo(fixture)
        res = self.run(self.ours + ['-V', '-r', str(repo)],
                       '-V of ' + fixture, backup=False)
        if res.output.strip():
            raise BenchError('-V of %s printed:\n%s' % (fixture, res.output))

    # -- fixtures -------------------------------------------------------------

    def build_chains(self):
        for name, z in (('chain', ''), ('chain-z', 'z')):
            repo = self.repo()
            t0 = time.monotonic()
            _, new = self.backup(repo, self.source('base'),
                                 self.ours + ['-BF' + z], 'building ' + name)
            if len([n for n in new if n.endswith('.fs' + z)]) != 1:
                raise BenchError('%s: no full backup: %s' % (name, new))
            _, new = self.backup(repo, self.source('prepack'),
                                 self.ours + ['-B' + z], 'building ' + name)
            if len([n for n in new if n.endswith('.deltafs' + z)]) != 1:
                raise BenchError('%s: prepack.fs did not give an incremental'
                                 ' backup: %s' % (name, new))
            self.keep(name, repo)
            log('built repository %s in %.1f s' % (name,
                                                    time.monotonic() - t0))

    # -- one run of every measurement ----------------------------------------

    def measure(self, rows, first):
        packed = self.source('packed')
        r = rows

        # (a) plain full backups of the packed file.
        for key, fixture, flags, tool, ext in (
                ('full', 'chain', ['-BF'], 'ours', '.fs'),
                ('auto', 'chain', ['-B'], 'ours', '.fs'),
                ('auto-q', 'chain', ['-BQ'], 'ours', '.fs'),
                ('full-zodb', 'chain', ['-BF'], 'theirs', '.fs'),
                ('full-z', 'chain-z', ['-BFz'], 'ours', '.fsz')):
            repo = self.repo(fixture)
            argv = (self.ours if tool == 'ours' else self.theirs) + flags
            res, new = self.backup(repo, packed, argv, key)
            data = self.check_new_chain(repo, new, ext, key, tool)
            if not B.same_bytes(data, ext == '.fsz', self.packed, 0):
                raise BenchError('%s: %s is not packed.fs' % (key, data))
            r[key].times.append(res.seconds)
            r[key].stored = data.stat().st_size
            if first and key in ('full', 'full-z'):
                self.keep('after-' + key, repo)

        # (b) pack deltas.
        if self.delta:
            for key, fixture, z in (('delta', 'chain', ''),
                                    ('delta-q', 'chain', 'Q'),
                                    ('delta-z', 'chain-z', 'z')):
                repo = self.repo(fixture)
                res, new = self.backup(
                    repo, packed, self.ours + ['-B' + z, '--pack-delta'], key)
                data = self.check_new_chain(repo, new, '.fsz', key,
                                            delta=True)
                with open(data, 'rb') as f:
                    head = f.read(len(MAGIC))
                if head != MAGIC:
                    raise BenchError('%s: %s starts with %r, not %r'
                                     % (key, data, head, MAGIC))
                r[key].times.append(res.seconds)
                r[key].stored = data.stat().st_size
                if first and key != 'delta-q':
                    self.keep('after-' + key, repo)
        if first:
            for f in self.fixtures:
                if f.startswith('after-'):
                    self.verify_silent(f)

        # (c) recover the chain that ends with the new file.
        for key, fixture in (('recover-full', 'after-full'),
                             ('recover-delta', 'after-delta'),
                             ('recover-full-z', 'after-full-z'),
                             ('recover-delta-z', 'after-delta-z')):
            if fixture not in self.fixtures:
                continue
            repo = self.repo(fixture)
            out = self.new_dir(key) / 'Data.fs'
            res = self.run(self.ours + ['-R', '-r', str(repo), '-o', str(out)],
                           key, backup=False)
            self.check_same_as_packed(out, key)
            r[key].times.append(res.seconds)
            shutil.rmtree(out.parent)

        # (d) a standby brought up to date after the pack.
        for key, fixture, quick in (('standby-full', 'after-full', False),
                                    ('standby-delta', 'after-delta', False),
                                    ('standby-delta-q', 'after-delta', True)):
            if fixture not in self.fixtures:
                continue
            out = self.standby()
            repo = self.repo(fixture)
            res = self.run(self.ours + ['-R', '-r', str(repo), '-o', str(out),
                                        '--incremental']
                           + (['-Q'] if quick else []), key, backup=False)
            self.check_same_as_packed(out, key)
            idx = sorted(repo.glob('*.index'))[-1]
            if not B.same_bytes(str(out) + '.index', False, idx, 0):
                raise BenchError('%s: %s.index is not %s' % (key, out, idx))
            B.Bench.check_state_file('ours', out)
            line = res.output.strip()
            if (key == 'standby-full'
                    and 'full recover because' not in line):
                raise BenchError('%s: expected a full recover, got %r'
                                 % (key, line))
            r[key].times.append(res.seconds)
            r[key].note = line.replace(str(out), 'standby').replace(
                str(self.work), 'WORK')
            if key != 'standby-full' and 'full recover' in line:
                r[key].note += ' (NOT a catch-up)'
            shutil.rmtree(out.parent)

    def standby(self):
        """WORK/standby/Data.fs as of prepack.fs: `-R --incremental` from
        chain (a full recover: the file does not exist), untimed."""
        d = self.work / 'standby'
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        out = d / 'Data.fs'
        repo = self.repo('chain')
        res = self.run(self.ours + ['-R', '-r', str(repo), '-o', str(out),
                                    '--incremental'],
                       'making the standby', backup=False)
        if (out.stat().st_size != (self.data / 'prepack.fs').stat().st_size
                or not B.same_bytes(out, False, self.data / 'prepack.fs', 0)):
            raise BenchError('standby %s is not prepack.fs (%s)'
                             % (out, res.output))
        B.Bench.check_state_file('ours', out)
        return out


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

ROWS = [
    ('full', '(a) ours -B -F (plain full of the packed file)'),
    ('auto', '(a) ours -B (finds the pack, writes a full)'),
    ('auto-q', '(a) ours -B -Q (finds the pack, writes a full)'),
    ('full-zodb', '(a) ZODB repozo -B -F (reference)'),
    ('full-z', '(a) ours -B -F -z'),
    ('delta', '(b) ours -B --pack-delta'),
    ('delta-q', '(b) ours -B -Q --pack-delta'),
    ('delta-z', '(b) ours -B --pack-delta -z'),
    ('recover-full', '(c) ours -R, chain ending in the plain full'),
    ('recover-delta', '(c) ours -R, chain ending in the pack delta'),
    ('recover-full-z', '(c) ours -R, -z chain ending in the full'),
    ('recover-delta-z', '(c) ours -R, -z chain ending in the pack delta'),
    ('standby-full', '(d) standby -R --incremental after the plain full'),
    ('standby-delta', '(d) standby -R --incremental after the pack delta'),
    ('standby-delta-q', '(d) standby -R --incremental -Q after the pack delta'),
]
NEEDS_DELTA = {'delta', 'delta-q', 'delta-z', 'recover-delta', 'recover-delta-z',
               'standby-delta', 'standby-delta-q'}


def targets(rows):
    """(row key -> (target text, ok or None))."""
    def med(k):
        return rows[k].median

    def ratio(a, b):
        return med(a) / med(b) if med(a) and med(b) else None
    t = {}
    # Time is compared with the plain backup that also finds the pack
    # (the same decision, then a full copy), and shown against -F too.
    for d, f, same in (('delta', 'full', 'auto'), ('delta-q', 'full', 'auto-q'),
                       ('delta-z', 'full-z', 'full-z')):
        if rows[d].stored is not None and rows[f].stored:
            s = rows[d].stored / rows[f].stored
            tm = ratio(d, same)
            extra = ('' if same == f
                     else '; %.2fx of %s' % (ratio(d, f), f))
            t[d] = ('stored %.2f%% of %s (<= 5%%: %s); time %.2fx of %s '
                    '(<= 1: %s)%s' % (100 * s, f, 'ok' if s <= 0.05 else 'MISSED',
                                      tm, same, 'ok' if tm <= 1 else 'MISSED',
                                      extra),
                    s <= 0.05 and tm <= 1)
    for d, f in (('recover-delta', 'recover-full'),
                 ('recover-delta-z', 'recover-full-z')):
        x = ratio(d, f)
        if x is not None:
            t[d] = ('%.2fx of %s (<= 2x: %s)' % (x, f, 'ok' if x <= 2
                                                 else 'MISSED'), x <= 2)
    # "A full recover": what the standby does today after a pack
    # (standby-full, a full recover over it); recover-full, a -R into a
    # new file, is shown too.
    for d in ('standby-delta', 'standby-delta-q'):
        x = ratio('standby-full', d)
        y = ratio('recover-full', d)
        if x is not None:
            t[d] = ('%.2fx faster than standby-full (>= 5x: %s); %.2fx of '
                    'recover-full\'s speed' % (x, 'ok' if x >= 5 else 'MISSED', y),
                    x >= 5)
    if med('standby-full') is not None:
        t['standby-full'] = ('%.2fx of recover-full (what happens today)'
                             % ratio('standby-full', 'recover-full'), None)
    if med('full-zodb') is not None and med('full') is not None:
        t['full-zodb'] = ('ours is %.2fx faster' % ratio('full-zodb', 'full'),
                          None)
    return t


def report(args, meta, rows, runs, started, machine_load):
    tg = targets(rows)
    header = ['row', 'median s', 'stored bytes', 'target / note']
    table = []
    for key, label in ROWS:
        row = rows[key]
        if row.skipped:
            table.append([label, '-', '-', row.skipped])
            continue
        note = tg.get(key, ('', None))[0]
        if row.note:
            note = (note + '; ' if note else '') + '"%s"' % row.note
        table.append([label, B.fmt_s(row.median),
                      '{:,}'.format(row.stored) if row.stored is not None
                      else '', note])
    st = meta['steps']
    sizes = meta['sizes']
    title = ('repozo across a pack: cms site, scenario %s, %d MB (prepack.fs '
             '%s bytes -> packed.fs %s bytes: the pack kept %.4f)'
             % (args.scenario, args.size_mb,
                '{:,}'.format(sizes['prepack.fs']),
                '{:,}'.format(sizes['packed.fs']), st['pack1']['kept']))
    lines = []
    if args.markdown:
        lines += ['**' + title + '**', '',
                  '| ' + ' | '.join(header) + ' |',
                  '|---|---:|---:|---|']
        lines += ['| ' + ' | '.join(c.replace('|', '\\|') for c in r) + ' |'
                  for r in table]
        lines.append('')
        bullet = '- '
    else:
        lines.append(title)
        w = [max(len(header[i]), *(len(r[i]) for r in table))
             for i in range(3)]
        fmt = '%-*s  %*s  %*s  %s'
        lines.append(fmt % (w[0], header[0], w[1], header[1], w[2], header[2],
                            header[3]))
        lines.append(fmt % (w[0], '-' * w[0], w[1], '-' * w[1], w[2],
                            '-' * w[2], '-' * len(header[3])))
        for r in table:
            lines.append(fmt % (w[0], r[0], w[1], r[1], w[2], r[2], r[3]))
        bullet = ''
    mi = B.machine_info()
    extra = [
        'median of %d run%s (fresh copy of the repository per run); stored '
        '= bytes of the new data file; repositories before the pack: a full '
        'of base.fs (%s bytes, right after the previous pack) + an '
        'incremental of prepack.fs' % (runs, '' if runs == 1 else 's',
                                       '{:,}'.format(sizes['base.fs'])),
        'packs of the history (bytes kept): pack0 %.4f (the previous pack, '
        'after the last round of growth), pack1 %.4f (the one measured: '
        'prepack.fs -> packed.fs)' % (st['pack0']['kept'], st['pack1']['kept']),
        'CPU: %s, %d CPUs, %s RAM, %s; files on %s, warm in page '
        'cache; load average before -> after: %s'
        % (mi['cpu'], mi['nproc'], mi['ram'], mi['kernel'],
           B.fs_type(args.cache_dir), machine_load),
        'ours: %s (git %s)%s; theirs: ZODB %s repozo, Python %s'
        % (B.short_path(args.ours), B.git_version(),
           '' if rows['delta'].skipped is None else ' without --pack-delta',
           importlib.metadata.version('ZODB'), platform.python_version()),
        'data generated through ZODB (bench/packhist.py) in %.0f s%s (grow '
        '%.0f s, pack0 %.0f s, edit1 %.0f s, pack1 %.0f s); benchmark '
        'started %s' % (meta['generation_seconds'],
                        ', cached' if meta.get('cached') else '',
                        st['grow']['seconds'], st['pack0']['seconds'],
                        st['edit1']['seconds'], st['pack1']['seconds'],
                        started),
        'command: %s' % os.environ.get(
            'PACKBENCH_COMMAND',
            ' '.join(shlex.quote(a) for a in [sys.executable] + sys.argv)),
    ]
    lines += [bullet + e for e in extra]
    return '\n'.join(lines)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def build_parser():
    p = argparse.ArgumentParser(
        description='Benchmark backups across a pack: a plain full against '
                    '--pack-delta (see the module docstring).')
    p.add_argument('--size-mb', type=int, default=1024)
    p.add_argument('--runs', type=int, default=3)
    p.add_argument('--scenario', default='plain',
                   choices=['plain', 'keep-old', 'no-keep-old', 'nogc',
                            'undo'])
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--cache-dir', type=Path,
                   default=ROOT / 'target' / 'bench-cache')
    p.add_argument('--ours', type=Path,
                   default=ROOT / 'target' / 'release' / 'repozo')
    p.add_argument('--theirs', type=Path,
                   default=Path(sys.executable).parent / 'repozo')
    p.add_argument('--markdown', action='store_true')
    p.add_argument('--regenerate', action='store_true')
    p.add_argument('--generate-only', action='store_true')
    p.add_argument('--keep-work', action='store_true')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except BenchError as e:
        print('packbench.py: ERROR: %s' % e, file=sys.stderr)
        return 1


def run(args):
    if args.size_mb < 1 or args.runs < 1:
        raise BenchError('--size-mb and --runs must be at least 1')
    for tool in (args.ours, args.theirs):
        if not os.access(tool, os.X_OK):
            raise BenchError('not an executable: %s' % tool)
    args.cache_dir = args.cache_dir.resolve()
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    lock = open(args.cache_dir / 'lock', 'w')
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise BenchError('another benchmark is using %s' % args.cache_dir)
    started = B.utc_now()
    data_dir, meta = ensure_data(args)
    if args.generate_only:
        return 0
    work = args.cache_dir / 'packwork'
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    b = PackBench(args, data_dir, meta, work)
    rows = {k: Row(k, label) for k, label in ROWS}
    if not b.delta:
        log(NOT_BUILT + ' (%s --help does not mention it)' % args.ours)
        for k in NEEDS_DELTA:
            rows[k].skipped = NOT_BUILT
    try:
        b.build_chains()
        load0 = os.getloadavg()
        for i in range(args.runs):
            log('run %d/%d' % (i + 1, args.runs))
            b.measure(rows, first=(i == 0))
            for k, _ in ROWS:
                if rows[k].times and len(rows[k].times) == i + 1:
                    log('  %-16s %8.3f s%s' % (
                        k, rows[k].times[-1],
                        '  %d bytes' % rows[k].stored
                        if rows[k].stored is not None else ''))
        load1 = os.getloadavg()
    except BenchError as e:
        raise BenchError('%s\n(working files kept in %s)' % (e, work))
    if not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    loads = '%s -> %s' % ('/'.join('%.2f' % x for x in load0),
                          '/'.join('%.2f' % x for x in load1))
    print(report(args, meta, rows, args.runs, started, loads))
    return 0


if __name__ == '__main__':
    sys.exit(main())
