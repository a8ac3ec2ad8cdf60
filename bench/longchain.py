#!/usr/bin/env python3
"""longchain.py -- our repozo against ZODB 6.4's on long backup chains.

A site running `repozo -BQz` every hour has thousands of chain files; the
cost of an operation is then per-file set-up, not bytes.  This builds (once,
cached) a Data.fs of N small page-edit transactions and two repositories
written by ZODB's own repozo after each one (tests/py/zodbtool.py `chain`):
a gzip chain (`-BQz`: one .fsz + N-1 .deltafsz) and a plain one (`-BQ`).
Then it times, for both chains, each tool's

  recover    -R -o OUT              (outputs compared byte for byte)
  verify     -V
  verify-q   -V -Q
  backup     -B   (no new transaction: compares the whole chain's md5
                   with the Data.fs, then has nothing to do)
  backup-q   -B -Q

as the median of --runs runs after one warm-up (inputs in the page cache),
with the peak RSS (bench.py's launcher, rss_spawn), and prints speed-up =
theirs / ours.

Usage (scripts/bench-long-chain.sh runs it with the venv's python):
    longchain.py --ours target/release/repozo --theirs .venv/bin/repozo
                 [--len 2000] [--runs 5] [--cache DIR] [--markdown]
"""

import argparse
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'bench'))
from bench import Runner  # noqa: E402  (the launcher that measures RSS)

OPS = [
    ('recover', 'recover (-R)', ['-R', '-o', '{out}']),
    ('verify', 'verify (-V)', ['-V']),
    ('verify-q', 'verify -Q (-V -Q)', ['-V', '-Q']),
    ('backup', 'backup, nothing new (-B)', ['-B', '-f', '{data}']),
    ('backup-q', 'backup -Q, nothing new (-B -Q)', ['-B', '-Q', '-f', '{data}']),
]


def cpu_model():
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith('Model name:'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


def build(cache, length, python):
    """The Data.fs and both repositories, written by ZODB's repozo."""
    done = os.path.join(cache, 'complete')
    if os.path.exists(done):
        return
    if os.path.exists(cache):
        shutil.rmtree(cache)
    os.makedirs(os.path.join(cache, 'gz'))
    os.makedirs(os.path.join(cache, 'plain'))
    t0 = time.time()
    print('longchain: ZODB writes %d transactions and 2 x %d backups ...'
          % (length, length), file=sys.stderr)
    subprocess.run([python, os.path.join(ROOT, 'tests', 'py', 'zodbtool.py'),
                    'chain', os.path.join(cache, 'Data.fs'),
                    '--count', str(length), '--start', '2021-03-01-09-00-00',
                    '--seed', '8',
                    '--gzip-repo', os.path.join(cache, 'gz'),
                    '--plain-repo', os.path.join(cache, 'plain')],
                   check=True)
    print('longchain: built in %.1f s' % (time.time() - t0), file=sys.stderr)
    open(done, 'w').close()


def measure(runner, argv, runs):
    """Median wall seconds and the largest peak RSS (MiB) of `runs` runs
    after a warm-up; fails on a non-zero exit."""
    samples = []
    for i in range(runs + 1):
        r = runner.run(argv)
        if r.rc != 0:
            raise SystemExit('longchain: %s exited %d: %s'
                             % (' '.join(argv), r.rc, r.output))
        if i > 0:  # the first is the warm-up
            samples.append((r.seconds, r.rss_kib / 1024.0))
    return (statistics.median(s[0] for s in samples),
            max(s[1] for s in samples))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--ours', required=True)
    ap.add_argument('--theirs', required=True)
    ap.add_argument('--python', default=sys.executable)
    ap.add_argument('--len', type=int, default=2000)
    ap.add_argument('--runs', type=int, default=5)
    ap.add_argument('--cache')
    ap.add_argument('--ops', default=','.join(o[0] for o in OPS))
    ap.add_argument('--markdown', action='store_true')
    a = ap.parse_args()
    a.ours, a.theirs = os.path.abspath(a.ours), os.path.abspath(a.theirs)
    cache = a.cache or os.path.join(ROOT, 'target', 'bench-cache',
                                    'longchain-%d' % a.len)
    build(cache, a.len, a.python)
    # bench.py's launcher: a child of this Python process would report
    # Python's RSS as its own peak (see bench.py's Runner).
    runner = Runner(pathlib.Path(ROOT) / 'target' / 'bench-cache' / 'tools',
                    pathlib.Path(cache) / 'run.out')
    wanted = a.ops.split(',')
    rows = []
    for kind in ('gz', 'plain'):
        for name, label, args in OPS:
            if name not in wanted:
                continue
            times = {}
            for tool, exe in (('theirs', a.theirs), ('ours', a.ours)):
                out = os.path.join(cache, 'out-%s.fs' % tool)
                argv = [exe] + [x.format(out=out, data=os.path.join(cache, 'Data.fs'))
                                for x in args] + ['-r', os.path.join(cache, kind)]
                times[tool] = measure(runner, argv, a.runs)
            if name == 'recover':
                with open(os.path.join(cache, 'out-theirs.fs'), 'rb') as f1, \
                        open(os.path.join(cache, 'out-ours.fs'), 'rb') as f2:
                    if f1.read() != f2.read():
                        raise SystemExit('longchain: the recovered files differ')
            rows.append(('%s chain: %s' % ('gzip' if kind == 'gz' else 'plain', label),
                         times['theirs'], times['ours']))
    load = os.getloadavg()
    head = ('%d-file chains written by ZODB\'s repozo; %s; median of %d runs; '
            'load average %.2f %.2f %.2f at the end'
            % (a.len, cpu_model(), a.runs, *load))
    if a.markdown:
        print(head + '\n')
        print('| scenario | theirs s | ours s | speed-up | theirs peak RSS MB | ours peak RSS MB |')
        print('|---|---:|---:|---:|---:|---:|')
        for label, (tt, tr), (ot, orss) in rows:
            print('| %s | %.3f | %.3f | %.2fx | %.1f | %.1f |'
                  % (label, tt, ot, tt / ot, tr, orss))
    else:
        print(head)
        for label, (tt, tr), (ot, orss) in rows:
            print('%-44s theirs %7.3f s  ours %7.3f s  %6.2fx  RSS %5.1f / %5.1f MB'
                  % (label, tt, ot, tt / ot, tr, orss))


if __name__ == '__main__':
    main()
