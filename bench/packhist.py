#!/usr/bin/env python3
"""packhist.py -- a history of Data.fs states across packs, through real ZODB.

Run with the interpreter of the project's venv (scripts/setup-venv.sh):

    .venv/bin/python bench/packhist.py OUT_DIR --size-mb N --seed S
        [--scenario plain|keep-old|no-keep-old|nogc|undo]
        [--step-cmd 'shell command'] [--kept 0.90] [--stop-after STEP_NAME]
        [--keep-states NAME,...]

Builds OUT_DIR/Data.fs, a content-management site (bench/gendata.py's `cms`
profile, whose functions it reuses), and takes it through the steps below.
After every step the storage is closed (Data.fs.index written, no lock
held) and, with --step-cmd, the command runs through `sh -c` with these
environment variables:

  STEP        1, 2, ...            STEP_NAME  grow, pack0, edit1, ...
  STEP_KIND   grow|pack|edit|undo  DATA_FS    OUT_DIR/Data.fs (absolute)
  OUT_DIR     absolute             SCENARIO   the --scenario
  PACK_KEPT   with kind pack: bytes after / bytes before (e.g. 0.9012)
  PACK_TIME   with kind pack: the pack time, seconds since the epoch

A command that fails (exit status not 0) stops the history (exit 1).  That
is the hook for running backups between steps.  OUT_DIR/history.json
describes the steps done so far (rewritten after every step, before its
hook): size, md5, seconds, and for packs the kept ratio.

Steps
-----
  1 grow   (grow)  gendata's cms profile until a pack would keep about
                   LIVE = SIZE * (kept - yield) / (1 - yield) bytes, where
                   yield is the share of edit bytes that stay live (~0.10).
                   A cms file is mostly old revisions (every edit rewrites
                   catalog buckets of up to 60 brains): a pack keeps only
                   ~16% of what cms transactions write (20-30% at a few MB),
                   so this writes ~5.5 x SIZE, in rounds of 2 x SIZE each
                   followed by a pack (a site packed weekly; bounds the disk
                   used to ~3 x SIZE), then a last round left unpacked.
  2 pack0  (pack)  the site's previous pack, at the time of the last commit.
                   (Its Data.fs.old, the big unpacked file, is deleted after
                   the hook.)
  3 edit1  (edit)  a week of editing: gendata's cms transactions, plus now
                   and then (5%) the replacement of 1-10 documents by new
                   objects, which leaves the old ones unreachable (so that
                   a pack with GC drops more than one without), until a pack
                   now would keep about --kept (default 0.90) of the bytes
                   (estimated from the index without packing: the live
                   records and their transaction headers).
     undo1 (undo)  scenario undo only: db.undo() of the latest undoable
                   transaction, before the pack time (its backpointers are
                   resolved into data records by the pack).
  4 late1  (edit)  the pack time is set (60 s after the last commit), then
                   0.5% of SIZE more cms transactions are committed: a pack
                   `days=N` leaves the recent history, which the pack copies
                   with rewritten prev/tloc and backpointers.
     undo2 (undo)  scenario undo only: an undo after the pack time (its
                   backpointers survive the pack, rewritten).
  5 pack1  (pack)  DB.pack(t=pack time): the pack the benchmark measures.
                   The state before it (after late1/undo2) is ~SIZE bytes.
  6 edit2  (edit)  commit more: 2% of SIZE.
  7 pack2  (pack)  pack again, at the time of the last commit.

Scenarios (--scenario): how FileStorage is opened for the packs
  plain        ZODB's defaults: pack_gc=True, pack_keep_old=True (the old
               file is left as Data.fs.old until the next pack)
  keep-old     the same as plain (pack_keep_old=True is ZODB's default)
  no-keep-old  pack_keep_old=False: Data.fs.old is deleted by the pack
  nogc         pack_gc=False: unreachable objects keep their last revision
  undo         as plain, with the two undo steps

Determinism: the same --size-mb, --seed, --scenario and --kept give the same
Data.fs bytes at every step, across runs and machines with the same Python
and ZODB.  gendata's transactions are deterministic for a seed; the
transaction ids, which ZODB takes from the wall clock, come here from a
fake clock (ZODB.BaseStorage's `time` is replaced by one that starts on
2020-01-01 and advances a seeded 1-30 s per call) and so do the pack times.

--keep-states NAME,... copies Data.fs and Data.fs.index after the named
steps to OUT_DIR/states/NAME.fs and NAME.fs.index (before the hook runs).

Small and fast, for tests (~2 s of CPU, ~3 MB states: the site after its
previous pack, before pack1 and after it):

    .venv/bin/python bench/packhist.py OUT_DIR --size-mb 3 --seed 1 \
        --stop-after pack1 --keep-states pack0,late1,pack1

Progress goes to stderr; nothing is printed on stdout.
"""

import argparse
import calendar
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import bench  # noqa: E402  (after the path is set; md5_file)
import gendata  # noqa: E402

MB = 2 ** 20

SCENARIOS = {
    'plain': dict(gc=True, keep_old=True, undo=False),
    'keep-old': dict(gc=True, keep_old=True, undo=False),
    'no-keep-old': dict(gc=True, keep_old=False, undo=False),
    'nogc': dict(gc=False, keep_old=True, undo=False),
    'undo': dict(gc=True, keep_old=True, undo=True),
}

STEP_NAMES = ['grow', 'pack0', 'edit1', 'undo1', 'late1', 'undo2', 'pack1',
              'edit2', 'pack2']

# The grow step packs after every GROW_ROUND x SIZE bytes; its first guess
# of the live bytes a pack keeps per byte of cms transactions.
GROW_ROUND = 2.0
GROW_YIELD_GUESS = 0.16

# Share of edit transactions that replace documents by new objects.
REPLACE_SHARE = 0.05
# Share of the bytes written by cms edits that stay live after a pack,
# the first guess before it is measured.
EDIT_YIELD_GUESS = 0.10


def log(msg):
    print('packhist: ' + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# A deterministic clock for ZODB's transaction ids
# ---------------------------------------------------------------------------

class FakeClock:
    """Replaces the `time` module inside ZODB.BaseStorage, where tpc_begin
    takes a new transaction id from time.time().  Every call advances the
    clock by a seeded 1-30 s; everything else is the real time module."""

    def __init__(self, seed):
        self.now = float(calendar.timegm((2020, 1, 1, 0, 0, 0)))
        self._rng = random.Random('packhist clock %d' % seed)

    def time(self):
        self.now += round(self._rng.uniform(1, 30), 3)
        return self.now

    def advance(self, seconds):
        self.now += seconds
        return self.now

    def __getattr__(self, name):
        return getattr(time, name)


def install_clock(seed):
    import ZODB.BaseStorage
    clock = FakeClock(seed)
    ZODB.BaseStorage.time = clock
    return clock


# ---------------------------------------------------------------------------
# Estimating what a pack keeps, without packing
# ---------------------------------------------------------------------------

def estimate_kept_bytes(path):
    """Bytes a pack at the time of the last commit, without GC, would keep:
    the magic, every current data record (backpointers resolved into data,
    uncreated objects dropped) and the header and trailer of every
    transaction that holds one.  Reads the data headers of the index only:
    about a second per 300,000 objects."""
    from ZODB.FileStorage import FileStorage
    st = FileStorage(str(path), read_only=True)
    try:
        total = 4
        txns = {}
        for _oid, pos in st._index.items():
            h = st._read_data_header(pos)
            plen, back = h.plen, h.back
            while not plen and back:
                b = st._read_data_header(back)
                plen, back = b.plen, b.back
            if not plen and not h.back:
                continue                # an uncreated object: dropped
            total += 42 + (plen or 8)
            if h.tloc not in txns:
                txns[h.tloc] = st._read_txn_header(h.tloc).headerlen() + 8
        return total + sum(txns.values())
    finally:
        st.close()


# ---------------------------------------------------------------------------
# The edit profile: gendata's cms transactions plus document replacements
# ---------------------------------------------------------------------------

def cms_edit_profile(rng, root):
    """gendata.cms_profile's step, and in REPLACE_SHARE of the transactions
    the replacement of 1-10 documents by new objects with the same id, path,
    catalog entry and texts (a re-creation, a migration): the old Document
    and its parts become unreachable.  Registered in gendata.PROFILES as
    'cms-edit' so that gendata.grow drives it."""
    from benchmodel import Document, Metadata, TextPart
    cms_step = gendata.cms_profile(rng, root)
    paras = gendata.corpus()
    site = root['site']
    cat = root['catalog']

    def replace():
        old = site['doc-%07d' % rng.randrange(root['cms_next'])]
        m = old.meta
        meta = Metadata(
            creator=m.creator, created=m.created, effective=m.effective,
            expires=m.expires, language=m.language,
            subjects=list(m.subjects), description=m.description,
            rights=m.rights, contributors=m.contributors)
        body = gendata.corpus_text(rng, paras, len(old.body.text) or 1)
        new = Document(old.uid, old.path, old.portal_type,
                       TextPart(old.title.text, old.title.mime),
                       TextPart(body, old.body.mime), meta, None)
        new.rid = old.rid
        new.workflow_state = old.workflow_state
        new.modified = old.modified + rng.randint(1, 600)
        new.history = (old.history + ((new.modified, 'admin',
                                       'replace'),))[-5:]
        site[old.path.rsplit('/', 1)[1]] = new
        rid = new.rid
        cat['modified'][rid] = new.modified
        cat['metadata'][rid] = (
            new.title.text, meta.description, new.workflow_state,
            new.modified, tuple(meta.subjects), new.path, new.portal_type,
            meta.creator, len(new.body.text), False)

    def step(txn):
        if root['cms_next'] and rng.random() < REPLACE_SHARE:
            txn.setUser('admin')
            n = rng.randint(1, 10)
            for _ in range(n):
                replace()
            return n * 6, 0
        return cms_step(txn)

    return step


gendata.PROFILES['cms-edit'] = cms_edit_profile


# ---------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------

def open_db(path, opts):
    import ZODB
    from ZODB.FileStorage import FileStorage
    st = FileStorage(str(path), pack_gc=opts['gc'],
                     pack_keep_old=opts['keep_old'])
    return ZODB.DB(st, cache_size=2000)


def do_pack(path, opts, pack_time):
    """DB.pack(t=pack_time) through a FileStorage opened with the scenario's
    pack_gc and pack_keep_old; returns (bytes before, bytes after)."""
    before = os.path.getsize(path)
    db = open_db(path, opts)
    try:
        db.pack(t=pack_time)
    finally:
        db.close()
    return before, os.path.getsize(path)


def do_undo(path, opts):
    """db.undo() of the latest transaction that can be undone; returns its
    description."""
    import transaction
    from ZODB.POSException import UndoError
    db = open_db(path, opts)
    try:
        for entry in db.undoLog(0, 50):
            try:
                db.undo(entry['id'])
                txn = transaction.get()
                txn.note('packhist undo of %r' % entry['description'])
                txn.commit()
                return entry['description']
            except UndoError:
                transaction.abort()
        raise SystemExit('packhist: no undoable transaction among the last 50')
    finally:
        db.close()


def grow_to_live(path, live_target, seed, label, first_target, start):
    """gendata.grow (cms) until a pack would keep about live_target bytes:
    grows to first_target, estimates, and grows on to what a line through
    the last two estimates extrapolates (the first from `start`, a (size,
    live bytes) point), until within 2%."""
    points = [start]
    target = first_target
    rounds = 0
    while True:
        rounds += 1
        gendata.grow(str(path), target, seed * 1000 + rounds,
                     '%s round %d' % (label, rounds), 'cms')
        size = os.path.getsize(path)
        live = estimate_kept_bytes(path)
        log('%s: %.1f MB, a pack would keep ~%.1f MB (%.1f%%)'
            % (label, size / MB, live / MB, 100.0 * live / size))
        if live >= live_target * 0.98 or rounds >= 8:
            return
        (s0, l0), (s1, l1) = points[-1], (size, live)
        points.append((size, live))
        slope = max((l1 - l0) / max(s1 - s0, 1), 0.02)
        target = max(int(s1 + (live_target - l1) / slope * 1.02),
                     s1 + 16 * 1024)


def edit_to_kept(path, start_live, kept_target, seed, label):
    """cms-edit transactions until a pack at the end would keep about
    kept_target of the file: a first chunk (2% of the file) measures the
    yield (live bytes per written byte so far), each later round goes 70%
    of the way the yield extrapolates to, the last one all of it."""
    p0 = os.path.getsize(path)
    rounds = 0
    target = p0 + max(int(p0 * 0.02), 64 * 1024)
    while True:
        rounds += 1
        gendata.grow(str(path), target, seed * 1000 + rounds,
                     '%s round %d' % (label, rounds), 'cms-edit')
        size = os.path.getsize(path)
        live = estimate_kept_bytes(path)
        ratio = live / size
        log('%s: %.1f MB, a pack would keep ~%.1f%%'
            % (label, size / MB, 100.0 * ratio))
        if ratio <= kept_target + 0.01 or rounds >= 12:
            return
        # live(s) ~ start_live + y * (s - p0); solve live(s) / s = target.
        y = min(max((live - start_live) / max(size - p0, 1), 0.0),
                kept_target - 0.05)
        s = (start_live - y * p0) / (kept_target - y)
        step = (s - size) * (0.7 if ratio > kept_target + 0.02 else 0.85)
        target = max(int(size + step), size + 16 * 1024)


class StopHistory(Exception):
    """--stop-after: the named step is done (and its hook has run)."""


class History:
    def __init__(self, args):
        self.args = args
        self.out = Path(args.out_dir).resolve()
        self.datafs = self.out / 'Data.fs'
        self.opts = SCENARIOS[args.scenario]
        self.steps = []
        self.keep_states = set(filter(None, (args.keep_states or '').split(',')))
        unknown = self.keep_states - set(STEP_NAMES)
        if unknown:
            raise SystemExit('packhist: --keep-states: unknown step %s'
                             % ', '.join(sorted(unknown)))
        self.clock = install_clock(args.seed)
        self.t_start = time.monotonic()

    def done(self, kind, name, t0, **extra):
        for leftover in ('Data.fs.lock', 'Data.fs.tmp'):
            p = self.out / leftover
            if p.exists():
                p.unlink()
        size = self.datafs.stat().st_size
        info = dict(step=len(self.steps) + 1, kind=kind, name=name,
                    size=size, md5=bench.md5_file(self.datafs),
                    seconds=round(time.monotonic() - t0, 2),
                    data_fs_old=(self.out / 'Data.fs.old').exists(), **extra)
        self.steps.append(info)
        self.write_history()
        log('step %d %s (%s): %.2f MB in %.1f s%s'
            % (info['step'], name, kind, size / MB, info['seconds'],
               ', kept %.4f (%d -> %d bytes)' % (extra['kept'],
                                                 extra['before'], size)
               if kind == 'pack' else ''))
        if name in self.keep_states:
            states = self.out / 'states'
            states.mkdir(exist_ok=True)
            for src, dst in ((self.datafs, name + '.fs'),
                             (Path(str(self.datafs) + '.index'),
                              name + '.fs.index')):
                shutil.copyfile(src, states / (dst + '.tmp'))
                os.replace(states / (dst + '.tmp'), states / dst)
        if self.args.step_cmd:
            env = dict(os.environ, STEP=str(info['step']), STEP_KIND=kind,
                       STEP_NAME=name, DATA_FS=str(self.datafs),
                       OUT_DIR=str(self.out), SCENARIO=self.args.scenario)
            if kind == 'pack':
                env['PACK_KEPT'] = '%.6f' % extra['kept']
                env['PACK_TIME'] = '%.3f' % extra['pack_time']
            rc = subprocess.run(['sh', '-c', self.args.step_cmd],
                                env=env).returncode
            if rc != 0:
                raise SystemExit('packhist: --step-cmd failed after step %d '
                                 '%s (exit %d)' % (info['step'], name, rc))
        if name == self.args.stop_after:
            raise StopHistory()

    def write_history(self):
        a = self.args
        doc = dict(size_mb=a.size_mb, seed=a.seed, scenario=a.scenario,
                   kept_target=a.kept, options=self.opts,
                   seconds=round(time.monotonic() - self.t_start, 1),
                   steps=self.steps)
        tmp = self.out / 'history.json.tmp'
        tmp.write_text(json.dumps(doc, indent=1) + '\n')
        os.replace(tmp, self.out / 'history.json')

    def pack(self, name, pack_time):
        t0 = time.monotonic()
        before, after = do_pack(self.datafs, self.opts, pack_time)
        self.done('pack', name, t0, before=before, kept=after / before,
                  pack_time=pack_time)
        old = self.out / 'Data.fs.old'
        if name == 'pack0' and old.exists():
            # The unpacked file is ~4 x SIZE and no use to anyone; ZODB
            # would delete it at the next pack anyway.
            old.unlink()

    def undo(self, name):
        t0 = time.monotonic()
        what = do_undo(self.datafs, self.opts)
        self.done('undo', name, t0, undone=what)

    def grow(self, live_target, size):
        """Step grow: gendata's cms transactions, in rounds of at most
        GROW_ROUND x SIZE bytes each followed by a pack (the site's weekly
        packs; they bound the disk used), then a last round, not packed,
        after which a pack would keep about live_target bytes."""
        cap = max(int(GROW_ROUND * size), 4 * MB)
        yield_ = GROW_YIELD_GUESS
        self.grow_packs = []
        rounds = 0
        while True:
            cur = os.path.getsize(self.datafs) if self.datafs.exists() else 0
            need = (live_target - cur) / yield_
            if need <= cap * 1.25 or rounds >= 20:
                break
            rounds += 1
            gendata.grow(str(self.datafs), cur + cap,
                         self.args.seed * 1000 + 100 + rounds,
                         'grow round %d' % rounds, 'cms')
            grown = os.path.getsize(self.datafs) - cur
            before, after = do_pack(self.datafs, self.opts,
                                    self.clock.advance(60))
            (self.out / 'Data.fs.old').unlink(missing_ok=True)
            yield_ = max((after - cur) / grown, 0.02)
            self.grow_packs.append(dict(before=before, after=after))
            log('grow round %d: %.1f MB, packed to %.1f MB (kept %.4f); '
                'live bytes per byte grown %.3f'
                % (rounds, before / MB, after / MB, after / before, yield_))
        grow_to_live(self.datafs, live_target, self.args.seed, 'grow',
                     int(cur + need * 1.02), (cur, cur))

    def run(self):
        a = self.args
        size = int(a.size_mb * MB)
        seed = a.seed
        if self.datafs.exists():
            raise SystemExit('packhist: %s exists; start in an empty '
                             'directory' % self.datafs)
        self.out.mkdir(parents=True, exist_ok=True)
        yield_ = EDIT_YIELD_GUESS
        live_target = int(size * (a.kept - yield_) / (1 - yield_))

        t0 = time.monotonic()
        self.grow(live_target, size)
        self.done('grow', 'grow', t0, packs=self.grow_packs)

        self.pack('pack0', self.clock.advance(60))
        live = os.path.getsize(self.datafs)

        t0 = time.monotonic()
        edit_to_kept(self.datafs, live, a.kept, seed + 1, 'edit1')
        self.done('edit', 'edit1', t0)
        if self.opts['undo']:
            self.undo('undo1')

        pack_time = self.clock.advance(60)
        t0 = time.monotonic()
        gendata.grow(str(self.datafs),
                     os.path.getsize(self.datafs) + max(size // 200, 16384),
                     seed * 1000 + 501, 'late1', 'cms-edit')
        self.done('edit', 'late1', t0)
        if self.opts['undo']:
            self.undo('undo2')

        self.pack('pack1', pack_time)

        t0 = time.monotonic()
        gendata.grow(str(self.datafs),
                     os.path.getsize(self.datafs) + max(size // 50, 32768),
                     seed * 1000 + 601, 'edit2', 'cms-edit')
        self.done('edit', 'edit2', t0)
        self.pack('pack2', self.clock.advance(60))
        log('history done in %.1f s: %s'
            % (time.monotonic() - self.t_start,
               ', '.join('%s kept %.4f' % (s['name'], s['kept'])
                         for s in self.steps if s['kind'] == 'pack')))


def main(argv=None):
    p = argparse.ArgumentParser(
        description='Build a history of Data.fs states across packs (cms '
                    'profile, real ZODB); see the module docstring.')
    p.add_argument('out_dir', help='directory for Data.fs and history.json '
                   '(created; must not hold a Data.fs)')
    p.add_argument('--size-mb', type=float, required=True,
                   help='size of the state before the measured pack (pack1)')
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--scenario', choices=sorted(SCENARIOS), default='plain')
    p.add_argument('--kept', type=float, default=0.90,
                   help='share of the bytes pack1 should keep (default 0.90;'
                        ' reached within about a percent)')
    p.add_argument('--step-cmd', default=None,
                   help='shell command run after every step (see the module '
                        'docstring for its environment)')
    p.add_argument('--keep-states', metavar='NAME,...', default=None,
                   help='copy Data.fs and its index after these steps to '
                        'OUT_DIR/states/NAME.fs(.index), before the hook; '
                        'e.g. pack0,late1,pack1')
    p.add_argument('--stop-after', metavar='STEP_NAME', default=None,
                   choices=STEP_NAMES,
                   help='end after this step and its hook (e.g. pack1)')
    args = p.parse_args(argv)
    if not 0.5 <= args.kept < 0.99 or args.size_mb <= 0:
        p.error('--kept must be in [0.5, 0.99) and --size-mb positive')
    h = History(args)
    try:
        h.run()
    except StopHistory:
        log('stopped after step %s (--stop-after), %.1f s'
            % (args.stop_after, time.monotonic() - h.t_start))
    return 0


if __name__ == '__main__':
    sys.exit(main())
