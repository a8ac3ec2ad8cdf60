#!/usr/bin/env python3
"""s3bench.py -- time our repozo against a local S3 server (moto): a
repository on S3 against the same operation on a local directory and
against `aws s3 cp` of the same bytes.

The documented way to run it is

    bash scripts/bench-s3.sh [SIZE_MB]        # default 512

which provisions the test venv (moto), a separate venv with the AWS CLI
(bench/requirements-s3.txt), builds target/release/repozo with the cargo
feature s3 and runs this script with the test venv's python:

    .venv/bin/python bench/s3bench.py --size-mb 512 [--profile cms]
        [--runs 3] [--ops full,incr,recover,verify]
        [--aws target/bench-cache/awscli-venv/bin/aws]
        [--cache-dir target/bench-cache] [--ours target/release/repozo]

Data
----
The Data.fs files of bench/bench.py (base.fs, and grown.fs = base.fs plus
2.5% more transactions), generated through ZODB once per profile and size
and cached in CACHE_DIR/<profile>-size-<N>mb (CACHE_DIR/size-<N>mb for the
profile hex) by bench.py's own code.  Nothing cached is modified.

The server
----------
moto_server from the test venv (the server tests/it/common/s3.rs starts), on
a free loopback port, one bucket.  moto is an S3 implementation in Python,
run as one process: every request goes through Werkzeug and Python code,
on the same 2 cores as the client; it keeps objects above about 5 MB in
temporary files but reads a whole object into memory for every GET.  So the
figures measure the client's work plus a slow, CPU-hungry server sharing
the machine; they say how we compare with the AWS CLI against the same
server, not what a real S3 endpoint over a network gives.  moto answers a
ranged GET by reading (and copying) the whole object, then slicing it: the
CLI downloads large objects as parallel 8 MB ranged GETs, which costs moto
a whole-object read per range, so the recover scenario also times the CLI
with one GET per object (multipart_threshold raised in a config file given
by AWS_CONFIG_FILE); we read each data file with one streaming GET.  The
server's peak resident memory is reported.  Objects written by a run are
deleted before the next one.

Scenarios (--ops)
-----------------
  full     -B -F -f base.fs into an empty repository: s3://BUCKET/PREFIX
           against a local directory; against `aws s3 cp base.fs
           s3://BUCKET/...` (the same bytes; the CLI's default 8 MB parts,
           10 requests at once; we send 8 MiB parts, 4 at once, and also
           write the .index and the .dat)
  incr     -B -f grown.fs into a repository holding a full backup of
           base.fs (reset before every run): the default mode reads the
           whole chain back to compare it with the Data.fs; `incr-q` is
           -B -Q (md5 of the last file's range only).  Against `aws s3 cp`
           of the increment's bytes (a file of the same size)
  recover  -R -o OUT of the chain full(base.fs) + incremental(grown.fs),
           from S3 and from a local directory, against `aws s3 cp
           --recursive` of the chain's two data objects down to a directory
           (as the CLI does by default, and with one GET per object)
  verify   -V of that chain, from S3 and from a local directory

Each command runs once untimed (warm-up, checked), then --runs times,
alternating the order of the tools; the report gives medians and the
ratios S3/local and ours/aws (above 1: slower).  Checks: the backup's
objects hold exactly the expected bytes (size, md5 recorded in the .dat),
every recovered file equals grown.fs, -V succeeds.  Inputs are warm in
the page cache.  The load average (the machine may be shared) is printed
at the start and the end.
"""

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'bench'))
import bench as benchdata  # noqa: E402  (the cached Data.fs files)

BUCKET = 'repozo-bench'
MB = 2 ** 20


class BenchError(Exception):
    """A failed step: printed as one error message, exit status 1."""


def log(msg):
    print('s3bench: ' + msg, file=sys.stderr, flush=True)


def loadavg():
    try:
        return ' '.join(Path('/proc/loadavg').read_text().split()[:3])
    except OSError:
        return '?'


def same_file(a, b):
    if Path(a).stat().st_size != Path(b).stat().st_size:
        return False
    return benchdata.md5_file(a) == benchdata.md5_file(b)


def sleep_to_next_second():
    """Backups are named by the second: never two in one."""
    now = time.time()
    time.sleep(1.02 - (now - int(now)))


class Moto:
    """moto_server on a free loopback port; stopped by stop()."""

    def __init__(self, venv, work):
        s = socket.socket()
        s.bind(('127.0.0.1', 0))
        self.port = s.getsockname()[1]
        s.close()
        self.endpoint = 'http://127.0.0.1:%d' % self.port
        self.log = open(work / 'moto.log', 'wb')
        self.proc = subprocess.Popen(
            [str(venv / 'bin' / 'moto_server'), '-H', '127.0.0.1', '-p',
             str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.endpoint + '/', timeout=2).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchError('moto_server did not start; see %s'
                                     % (work / 'moto.log'))
                time.sleep(0.1)
        req = urllib.request.Request(self.endpoint + '/' + BUCKET,
                                     method='PUT')
        urllib.request.urlopen(req, timeout=10).read()

    def env(self):
        return {
            'AWS_ENDPOINT_URL': self.endpoint,
            'AWS_ALLOW_HTTP': 'true',
            'AWS_REGION': 'us-east-1',
            'AWS_DEFAULT_REGION': 'us-east-1',
            'AWS_ACCESS_KEY_ID': 'bench',
            'AWS_SECRET_ACCESS_KEY': 'bench',
        }

    def rss_mib(self):
        """(current, peak) resident memory of the server, MiB."""
        cur = peak = 0
        for line in Path('/proc/%d/status' % self.proc.pid).read_text().splitlines():
            if line.startswith('VmRSS:'):
                cur = int(line.split()[1]) // 1024
            if line.startswith('VmHWM:'):
                peak = int(line.split()[1]) // 1024
        return cur, peak

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Bench:
    def __init__(self, args, data, moto, work):
        self.args = args
        self.data = data
        self.moto = moto
        self.work = work
        self.env = {k: v for k, v in os.environ.items()
                    if k != 'REPOZO_TEST_NOW' and not k.startswith('AWS_')}
        self.env.update(moto.env())
        import boto3
        self.s3 = boto3.client('s3', endpoint_url=moto.endpoint,
                               region_name='us-east-1',
                               aws_access_key_id='bench',
                               aws_secret_access_key='bench')
        self.n = 0
        self.results = {}     # op -> {tool: [seconds]}
        self.peak_rss = 0

    # -- helpers -----------------------------------------------------------

    def fresh(self, what):
        self.n += 1
        return '%s-%d' % (what, self.n)

    def url(self, prefix):
        return 's3://%s/%s' % (BUCKET, prefix)

    def run(self, cmd, env=None):
        """Runs cmd; returns its wall time. Fails on a non-zero exit."""
        env = dict(self.env, **(env or {}))
        t0 = time.monotonic()
        p = subprocess.run(cmd, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t = time.monotonic() - t0
        if p.returncode != 0:
            raise BenchError('%s exited %d: %s' % (
                ' '.join(map(str, cmd)), p.returncode,
                p.stderr.decode(errors='replace')[-2000:]))
        self.peak_rss = max(self.peak_rss, self.moto.rss_mib()[1])
        return t

    def keys(self, prefix):
        out = {}
        for page in self.s3.get_paginator('list_objects_v2').paginate(
                Bucket=BUCKET, Prefix=prefix + '/'):
            for o in page.get('Contents', []):
                out[o['Key'][len(prefix) + 1:]] = o['Size']
        return out

    def delete_prefix(self, prefix):
        for name in self.keys(prefix):
            self.s3.delete_object(Bucket=BUCKET, Key=prefix + '/' + name)

    def record(self, op, tool, seconds):
        self.results.setdefault(op, {}).setdefault(tool, []).append(seconds)
        log('%-8s %-10s %7.2f s' % (op, tool, seconds))

    def rounds(self, op, tools):
        """Runs each tool's (prepare, timed, check) once untimed, then
        --runs times timed, alternating the order."""
        for name, prepare, timed, check in tools:
            prepare()
            timed()
            check()
        for i in range(self.args.runs):
            order = tools if i % 2 == 0 else list(reversed(tools))
            for name, prepare, timed, check in order:
                prepare()
                self.record(op, name, timed())
                check()

    # -- scenarios ---------------------------------------------------------

    def full(self):
        base = self.data.fs('base')
        size = base.stat().st_size
        md5 = benchdata.md5_file(base)
        st = {}

        def prep_s3():
            if 'prefix' in st:
                self.delete_prefix(st['prefix'])
            st['prefix'] = self.fresh('full')
            sleep_to_next_second()

        def run_s3():
            return self.run([self.args.ours, '-B', '-F', '-r',
                             self.url(st['prefix']), '-f', str(base)])

        def check_s3():
            keys = self.keys(st['prefix'])
            data = [k for k in keys if k.endswith('.fs')]
            dat = [k for k in keys if k.endswith('.dat')]
            if len(data) != 1 or keys[data[0]] != size or len(dat) != 1:
                raise BenchError('full to S3: unexpected objects %r' % keys)
            line = self.s3.get_object(Bucket=BUCKET, Key=st['prefix'] + '/' + dat[0])['Body'].read().decode()
            if line.split()[-1] != md5:
                raise BenchError('full to S3: the .dat records %r' % line)

        def prep_local():
            shutil.rmtree(self.work / 'full-local', ignore_errors=True)
            (self.work / 'full-local').mkdir()
            sleep_to_next_second()

        def run_local():
            return self.run([self.args.ours, '-B', '-F', '-r',
                             str(self.work / 'full-local'), '-f', str(base)])

        def check_local():
            files = list((self.work / 'full-local').glob('*.fs'))
            if len(files) != 1 or files[0].stat().st_size != size:
                raise BenchError('full to a directory: %r' % files)

        def prep_aws():
            if 'aws' in st:
                self.delete_prefix(st['aws'])
            st['aws'] = self.fresh('cp')

        def run_aws():
            return self.run([self.args.aws, 's3', 'cp', '--only-show-errors',
                             '--endpoint-url', self.moto.endpoint, str(base),
                             '%s/base.fs' % self.url(st['aws'])])

        def check_aws():
            if self.keys(st['aws']) != {'base.fs': size}:
                raise BenchError('aws s3 cp: %r' % self.keys(st['aws']))

        self.rounds('full', [('ours-s3', prep_s3, run_s3, check_s3),
                             ('ours-local', prep_local, run_local, check_local),
                             ('aws-cp', prep_aws, run_aws, check_aws)])
        self.delete_prefix(st['prefix'])
        self.delete_prefix(st['aws'])
        shutil.rmtree(self.work / 'full-local', ignore_errors=True)

    def setup_chain(self):
        """A full backup of base.fs on S3 and in a directory (untimed),
        and the increment's bytes as a file, for incr; then the
        incremental of grown.fs in both, for recover and verify."""
        if hasattr(self, 'chain'):
            return
        prefix = self.fresh('chain')
        local = self.work / 'chain-local'
        shutil.rmtree(local, ignore_errors=True)
        local.mkdir()
        base = self.data.fs('base')
        sleep_to_next_second()
        for repo in (self.url(prefix), str(local)):
            self.run([self.args.ours, '-B', '-F', '-r', repo, '-f', str(base)])
        self.chain = (prefix, local)
        self.base_keys = self.keys(prefix)
        self.base_dat = {k: self.s3.get_object(
            Bucket=BUCKET, Key=prefix + '/' + k)['Body'].read()
            for k in self.base_keys if k.endswith('.dat')}
        self.base_files = set(p.name for p in local.iterdir())
        # The increment's bytes, for aws s3 cp.
        delta = self.work / 'increment.bin'
        with open(self.data.fs('grown'), 'rb') as f, open(delta, 'wb') as out:
            f.seek(base.stat().st_size)
            shutil.copyfileobj(f, out)
        self.delta = delta

    def reset_chain(self):
        """Back to the full backup alone (S3 and local)."""
        prefix, local = self.chain
        for k in self.keys(prefix):
            if k not in self.base_keys:
                self.s3.delete_object(Bucket=BUCKET, Key=prefix + '/' + k)
        for k, body in self.base_dat.items():
            self.s3.put_object(Bucket=BUCKET, Key=prefix + '/' + k, Body=body)
        for p in local.iterdir():
            if p.name not in self.base_files:
                p.unlink()
        for p in local.glob('*.dat'):
            lines = p.read_bytes().splitlines(keepends=True)
            p.write_bytes(lines[0])

    def incr(self):
        self.setup_chain()
        prefix, local = self.chain
        grown = self.data.fs('grown')
        base_size = self.data.fs('base').stat().st_size
        added = grown.stat().st_size - base_size
        st = {}

        def prep():
            self.reset_chain()
            sleep_to_next_second()

        def check_s3():
            new = [k for k in self.keys(prefix) if k.endswith('.deltafs')]
            if len(new) != 1 or self.keys(prefix)[new[0]] != added:
                raise BenchError('incremental to S3: %r' % self.keys(prefix))

        def check_local():
            new = list(local.glob('*.deltafs'))
            if len(new) != 1 or new[0].stat().st_size != added:
                raise BenchError('incremental to a directory: %r' % new)

        def ours(repo, quick):
            flags = ['-B', '-Q'] if quick else ['-B']
            return lambda: self.run([self.args.ours] + flags + ['-r', repo, '-f', str(grown)])

        def prep_aws():
            if 'aws' in st:
                self.delete_prefix(st['aws'])
            st['aws'] = self.fresh('cp-incr')

        def run_aws():
            return self.run([self.args.aws, 's3', 'cp', '--only-show-errors',
                             '--endpoint-url', self.moto.endpoint,
                             str(self.delta), '%s/x.deltafs' % self.url(st['aws'])])

        def check_aws():
            if self.keys(st['aws']) != {'x.deltafs': added}:
                raise BenchError('aws s3 cp: %r' % self.keys(st['aws']))

        self.rounds('incr', [
            ('ours-s3', prep, ours(self.url(prefix), False), check_s3),
            ('ours-local', prep, ours(str(local), False), check_local),
            ('aws-cp', prep_aws, run_aws, check_aws)])
        self.rounds('incr-q', [
            ('ours-s3', prep, ours(self.url(prefix), True), check_s3),
            ('ours-local', prep, ours(str(local), True), check_local)])
        self.delete_prefix(st['aws'])

    def ensure_grown_chain(self):
        """The chain full(base) + incremental(grown), S3 and local."""
        self.setup_chain()
        prefix, local = self.chain
        if any(k.endswith('.deltafs') for k in self.keys(prefix)):
            return
        self.reset_chain()
        sleep_to_next_second()
        for repo in (self.url(prefix), str(local)):
            self.run([self.args.ours, '-B', '-r', repo, '-f',
                      str(self.data.fs('grown'))])

    def recover(self):
        self.ensure_grown_chain()
        prefix, local = self.chain
        grown = self.data.fs('grown')
        out = self.work / 'out'
        down = self.work / 'down'

        def prep():
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(down, ignore_errors=True)
            out.mkdir()

        def ours(repo):
            return lambda: self.run([self.args.ours, '-R', '-r', repo, '-o',
                                     str(out / 'Data.fs')])

        def check():
            if not same_file(out / 'Data.fs', grown):
                raise BenchError('the recovered Data.fs is not grown.fs')

        def run_aws():
            return self.run([self.args.aws, 's3', 'cp', '--only-show-errors',
                             '--endpoint-url', self.moto.endpoint,
                             '--recursive', '--exclude', '*',
                             '--include', '*.fs', '--include', '*.deltafs',
                             self.url(prefix) + '/', str(down)])

        # The CLI's ranged GETs make moto read each whole object once per
        # 8 MB range (see the module doc): also one GET per object.
        one_get = self.work / 'aws-one-get.cfg'
        one_get.write_text('[default]\ns3 =\n    multipart_threshold = 64GB\n')

        def run_aws_one_get():
            return self.run([self.args.aws, 's3', 'cp', '--only-show-errors',
                             '--endpoint-url', self.moto.endpoint,
                             '--recursive', '--exclude', '*',
                             '--include', '*.fs', '--include', '*.deltafs',
                             self.url(prefix) + '/', str(down)],
                            env={'AWS_CONFIG_FILE': str(one_get)})

        def check_aws():
            got = sorted(p.stat().st_size for p in down.iterdir())
            base = self.data.fs('base').stat().st_size
            if got != sorted([base, grown.stat().st_size - base]):
                raise BenchError('aws s3 cp down: %r' % got)

        self.rounds('recover', [('ours-s3', prep, ours(self.url(prefix)), check),
                                ('ours-local', prep, ours(str(local)), check),
                                ('aws-cp', prep, run_aws, check_aws),
                                ('aws-cp-1', prep, run_aws_one_get, check_aws)])
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(down, ignore_errors=True)

    def verify(self):
        self.ensure_grown_chain()
        prefix, local = self.chain

        def nothing():
            pass

        def ours(repo):
            return lambda: self.run([self.args.ours, '-V', '-r', repo])

        self.rounds('verify', [('ours-s3', nothing, ours(self.url(prefix)), nothing),
                               ('ours-local', nothing, ours(str(local)), nothing)])

    # -- report ------------------------------------------------------------

    def report(self, started, ended, load_start, load_end):
        def med(op, tool):
            v = self.results.get(op, {}).get(tool)
            return statistics.median(v) if v else None

        def fmt(x):
            return '—' if x is None else '%.2f s' % x

        def ratio(a, b):
            return '—' if a is None or b is None else '%.2f×' % (a / b)

        base = self.data.fs('base').stat().st_size
        grown = self.data.fs('grown').stat().st_size
        label = {
            'full': '`-B -F` of base.fs (%.0f MB)' % (base / 1e6),
            'incr': '`-B` of grown.fs (+%.1f MB; reads the chain back)' % ((grown - base) / 1e6),
            'incr-q': '`-B -Q` of grown.fs (+%.1f MB; md5 of the full\'s range)' % ((grown - base) / 1e6),
            'recover': '`-R` of full + incremental (%.0f MB)' % (grown / 1e6),
            'verify': '`-V` of full + incremental',
        }
        print('| operation | ours, S3 (moto) | ours, local dir | `aws s3 cp`, same bytes | `aws s3 cp`, one GET per object | S3 / local | ours S3 / aws |')
        print('|---|---:|---:|---:|---:|---:|---:|')
        for op in ('full', 'incr', 'incr-q', 'recover', 'verify'):
            if op not in self.results:
                continue
            s3, loc, aws = med(op, 'ours-s3'), med(op, 'ours-local'), med(op, 'aws-cp')
            aws1 = med(op, 'aws-cp-1')
            vs_aws = ratio(s3, aws)
            if aws1 is not None:
                vs_aws += ' (%s)' % ratio(s3, aws1)
            print('| %s | %s | %s | %s | %s | %s | %s |' % (
                label[op], fmt(s3), fmt(loc), fmt(aws), fmt(aws1), ratio(s3, loc), vs_aws))
        print()
        cpu = '?'
        try:
            for line in subprocess.run(['lscpu'], stdout=subprocess.PIPE,
                                       text=True).stdout.splitlines():
                if line.startswith('Model name:'):
                    cpu = line.split(':', 1)[1].strip()
        except OSError:
            pass
        commit = subprocess.run(['git', '-C', str(ROOT), 'rev-parse', '--short', 'HEAD'],
                                stdout=subprocess.PIPE, text=True).stdout.strip()
        dirty = subprocess.run(['git', '-C', str(ROOT), 'status', '--porcelain', '--untracked-files=no'],
                               stdout=subprocess.PIPE, text=True).stdout.strip()
        aws_version = subprocess.run([self.args.aws, '--version'], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True).stdout.strip()
        import moto
        print('Medians of %d runs (after one untimed run each), profile %s, %s; '
              '`%s` at commit %s%s; %s; moto %s (peak RSS %d MiB). '
              'Machine: %s, %d CPUs, %s; load average at start %s, at end %s; %s to %s.'
              % (self.args.runs, self.data.meta.get('profile', 'hex'),
                 'base.fs %d bytes, grown.fs %d bytes' % (base, grown),
                 ' '.join(['bash scripts/bench-s3.sh', str(self.args.size_mb)] + self.args.passed),
                 commit, ' (with uncommitted changes)' if dirty else '',
                 aws_version.split()[0], moto.__version__, self.peak_rss,
                 cpu, os.cpu_count(), platform.platform(), load_start, load_end,
                 started, ended))
        raw = {op: {t: [round(x, 3) for x in v] for t, v in d.items()}
               for op, d in self.results.items()}
        print()
        print('Raw seconds: `%s`' % json.dumps(raw, sort_keys=True))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--size-mb', type=int, default=512)
    p.add_argument('--profile', default='cms', choices=benchdata.PROFILES)
    p.add_argument('--runs', type=int, default=3)
    p.add_argument('--ops', default='full,incr,recover,verify')
    p.add_argument('--cache-dir', type=Path, default=ROOT / 'target' / 'bench-cache')
    p.add_argument('--ours', default=str(ROOT / 'target' / 'release' / 'repozo'))
    p.add_argument('--aws', default=str(ROOT / 'target' / 'bench-cache' / 'awscli-venv' / 'bin' / 'aws'))
    p.add_argument('--keep-work', action='store_true')
    args = p.parse_args(argv)
    # The options as given to scripts/bench-s3.sh (which adds --size-mb
    # and --aws), for the report.
    given = list(argv if argv is not None else sys.argv[1:])
    args.passed = []
    while given:
        a = given.pop(0)
        if a in ('--size-mb', '--aws'):
            given = given[1:]
        elif not a.startswith(('--size-mb=', '--aws=')):
            args.passed.append(a)
    ops = [o for o in args.ops.split(',') if o]
    for o in ops:
        if o not in ('full', 'incr', 'recover', 'verify'):
            p.error('unknown op %r' % o)
    venv = Path(sys.executable).parent.parent
    work = args.cache_dir / 'work-s3'
    try:
        data = benchdata.ensure_data(args.cache_dir, args.size_mb, False, args.profile)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        # Inputs warm in the page cache.
        for which in ('base', 'grown'):
            benchdata.md5_file(data.fs(which))
        moto = Moto(venv, work)
        try:
            started = benchdata.utc_now()
            load_start = loadavg()
            log('moto at %s (pid %d); load average %s' % (moto.endpoint, moto.proc.pid, load_start))
            b = Bench(args, data, moto, work)
            for o in ops:
                getattr(b, o)()
            log('moto resident memory now %d MiB, peak %d MiB' % moto.rss_mib())
            b.report(started, benchdata.utc_now(), load_start, loadavg())
        finally:
            moto.stop()
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    except (BenchError, benchdata.BenchError) as e:
        print('s3bench: ERROR: %s' % e, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
