#!/usr/bin/env python3
"""zodbtool.py -- test tooling that drives the *real* ZODB (6.4).

The Rust port of repozo is tested against files written by genuine ZODB code,
not by a hand-rolled imitation.  This helper is run with the interpreter of
the project's venv (see scripts/setup-venv.sh; from Rust use
tests/it/common/py.rs), e.g.:

    .venv/bin/python tests/py/zodbtool.py grow /tmp/x/Data.fs --txns 20 --seed 7

Subcommands (all paths are plain file system paths):

  grow DATA_FS --txns N --seed S [--pack-every K] [--objects M]
       [--max-ops P] [--blobby] [--max-value BYTES]
      Open (or create) a FileStorage through ZODB.DB and commit N
      transactions of random inserts/updates/deletes, optionally packing
      every K transactions.  Closes cleanly, so DATA_FS.index is written.
  pack DATA_FS [--at FRACTION] [--no-gc] [--no-keep-old]
      Pack the storage through DB.pack(t): as of "now" (everything
      non-current goes away), or with --at as of the time of the
      transaction that far through the file (0.5: the middle one), so the
      history after it survives.  --no-gc opens the FileStorage with
      pack_gc=False (unreachable objects stay), --no-keep-old with
      pack_keep_old=False (no Data.fs.old is left).
  undo DATA_FS [--count C]
      Commit C small transactions and undo each of them through db.undo(),
      so the file contains undo records (plen == 0 backpointers).
  getsize DATA_FS [--ignore-index]
      Print FileStorage(DATA_FS, read_only=True).getSize().  On any exception
      print "ERROR <ExceptionClassName>" and exit 3.
  saveindex DATA_FS OUT_PATH
      Open read-only and write fs._index.save(fs.getSize(), OUT_PATH) --
      exactly what repozo writes as <stamp>.index.  Prints the pos.
  dumpindex INDEX_PATH
      Load an fsIndex file and print "pos <n>", then "<oid hex16> <pos>" per
      oid, sorted by oid.  Handy for semantic comparisons of .index files.
  copy-index DATA_FS OUT
      Copy DATA_FS.index to OUT (to keep a soon-to-be-stale index aside).
  scan DATA_FS
      Independent, read-only structural listing of a FileStorage file
      (one line per transaction and per data record).  Debugging aid only;
      it does not use ZODB at all.
  chain DATA_FS --count N --start STAMP --seed S [--gzip-repo DIR]
        [--plain-repo DIR]
      In ONE process, N times: commit one small transaction (a wiki-like
      site of PersistentMapping pages in an OOBTree, a few sentences of
      text each), then run ZODB's own repozo.main() with -BQz into
      --gzip-repo and/or -BQ into --plain-repo, its clock pinned to STAMP
      (YYYY-MM-DD-HH-MM-SS, UTC) plus i minutes.  The first backup into an
      empty repository is the full one, every later one an incremental, so
      each repository ends with a chain of N files named a minute apart.
      Without a repository it only commits N transactions.

Exit codes: 0 success, 2 usage error (argparse), 3 "getsize" failure,
1 any other failure (traceback on stderr).
"""

import argparse
import os
import random
import shutil
import struct
import sys
import time


# ---------------------------------------------------------------------------
# ZODB imports are done lazily inside the subcommands, so that `--help` and
# `scan` work even with a plain python3, and so that import failures surface
# as a clear traceback from the subcommand that needed them.
# ---------------------------------------------------------------------------


def _open_db(path, **options):
    """Open (creating if needed) a writable FileStorage wrapped in a DB;
    `options` go to FileStorage (pack_gc, pack_keep_old).

    Creating a fresh DB makes ZODB commit one extra transaction of its own
    ("initial database creation", which stores the root PersistentMapping)
    before any of ours.
    """
    import ZODB
    from ZODB.FileStorage import FileStorage

    storage = FileStorage(path, **options)
    return ZODB.DB(storage)


def _ensure_tree(root):
    """Return root['tree'] (an OOBTree), creating it in the current txn."""
    from BTrees.OOBTree import OOBTree

    tree = root.get('tree')
    if tree is None:
        tree = root['tree'] = OOBTree()
    return tree


def _random_text(rng, size):
    """Deterministic pseudo-random ASCII text of exactly `size` characters.

    hex of random bytes compresses about 2:1 under gzip, which is realistic
    enough for the -z code paths and cheap to produce.
    """
    return rng.randbytes((size + 1) // 2).hex()[:size]


def _random_size(rng, blobby):
    """Size of a value: mostly small, sometimes several KB.

    With --blobby the values are mostly tens of KB, so that a few
    transactions already exceed repozo's 16 KiB READCHUNK several times.
    (This is *not* ZODB blob support: repozo ignores blob directories.)
    """
    if blobby:
        r = rng.random()
        if r < 0.3:
            return rng.randint(10, 500)
        return rng.randint(16 * 1024, 64 * 1024)
    r = rng.random()
    if r < 0.75:
        return rng.randint(5, 200)
    if r < 0.95:
        return rng.randint(1024, 4 * 1024)
    return rng.randint(6 * 1024, 12 * 1024)


def _mutate_once(rng, root, nkeys, max_ops, blobby, max_value=None):
    """Apply 1..max_ops random mutations inside the current transaction.

    Data model: root['tree'] is an OOBTree mapping keys "k0000".. to either
    a str, or (about 1 in 4 inserts) a PersistentMapping {'v': str} -- the
    latter are separate persistent objects with their own oids, so the
    storage gets a varied oid population, in-place updates of non-tree
    objects, and garbage for pack to collect when such keys are deleted.
    """
    from persistent.mapping import PersistentMapping

    tree = _ensure_tree(root)
    for _ in range(rng.randint(1, max_ops)):
        key = 'k%04d' % rng.randrange(nkeys)
        op = rng.random()
        if key in tree and op < 0.3:
            del tree[key]
            continue
        size = _random_size(rng, blobby)
        if max_value is not None:
            size = min(size, max_value)
        value = _random_text(rng, size)
        old = tree.get(key)
        if isinstance(old, PersistentMapping) and rng.random() < 0.7:
            # Update the sub-object only; the tree bucket stays untouched.
            old['v'] = value
        elif rng.random() < 0.25:
            tree[key] = PersistentMapping({'v': value})
        else:
            tree[key] = value


def _pack(db):
    """Pack as of one second in the future.

    All transactions committed so far have tids <= now, so with this pack
    time every non-current revision and every unreachable object is removed,
    and the surviving old transactions are rewritten with status 'p'.
    """
    db.pack(time.time() + 1)


def cmd_grow(args):
    import transaction

    rng = random.Random(args.seed)
    db = _open_db(args.data_fs)
    try:
        conn = db.open()
        root = conn.root()
        for i in range(args.txns):
            txn = transaction.begin()
            txn.note('zodbtool grow seed=%d txn=%d' % (args.seed, i))
            # Vary ulen too: some transactions carry a user, some don't.
            if rng.random() < 0.5:
                txn.setUser('tester%d' % rng.randrange(3))
            _mutate_once(rng, root, args.objects, args.max_ops, args.blobby,
                         args.max_value)
            txn.commit()
            if args.pack_every and (i + 1) % args.pack_every == 0:
                _pack(db)
        conn.close()
    finally:
        # db.close() closes the storage, which writes DATA_FS.index.
        db.close()
    return 0


def cmd_pack(args):
    options = {}
    if args.no_gc:
        options['pack_gc'] = False
    if args.no_keep_old:
        options['pack_keep_old'] = False
    db = _open_db(args.data_fs, **options)
    try:
        if args.at is None:
            _pack(db)
        else:
            from persistent.TimeStamp import TimeStamp

            tids = [t.tid for t in db.storage.iterator()]
            tid = tids[min(int(len(tids) * args.at), len(tids) - 1)]
            db.pack(TimeStamp(tid).timeTime())
    finally:
        db.close()
    return 0


def cmd_undo(args):
    """Commit and undo `count` transactions.

    Each victim transaction (a) rewrites an existing tree entry or creates
    one, and (b) creates a brand-new PersistentMapping.  Undoing it makes
    ZODB write a new transaction whose data records have plen == 0 and a
    backpointer: to the previous revision for the modified objects, and
    backpointer 0 ("creation undone") for the newly created object.
    Modern FileStorage never marks the undone transaction itself with
    status 'u'; it stays ' '.
    """
    import transaction
    from persistent.mapping import PersistentMapping

    db = _open_db(args.data_fs)
    try:
        conn = db.open()
        root = conn.root()
        for i in range(args.count):
            txn = transaction.begin()
            txn.note('zodbtool undo victim %d' % i)
            tree = _ensure_tree(root)
            tree['undo-victim'] = 'value %d %s' % (i, 'x' * 50)
            root['undo-new-%d' % i] = PersistentMapping({'n': i})
            txn.commit()

            # The most recent undoable transaction is the one just made.
            info = db.undoLog(0, 1)[0]
            txn = transaction.begin()
            txn.note('zodbtool undo of victim %d' % i)
            db.undo(info['id'])
            txn.commit()
            # Pick up the undone state before the next round.
            conn.sync()
        conn.close()
    finally:
        db.close()
    return 0


def cmd_getsize(args):
    from ZODB.FileStorage import FileStorage

    cls = FileStorage
    if args.ignore_index:
        class _NoIndexFileStorage(FileStorage):
            # Skip Data.fs.index entirely: getSize() then comes from a
            # full scan starting at offset 4.
            def _restore_index(self):
                return None
        cls = _NoIndexFileStorage

    try:
        fs = cls(args.data_fs, read_only=True)
        try:
            size = fs.getSize()
        finally:
            fs.close()
    except Exception as e:  # any failure is a result the test compares
        print('ERROR %s' % type(e).__name__)
        print('%s: %s' % (type(e).__name__, e), file=sys.stderr)
        return 3
    print(size)
    return 0


def cmd_saveindex(args):
    from ZODB.FileStorage import FileStorage

    fs = FileStorage(args.data_fs, read_only=True)
    try:
        pos = fs.getSize()
        fs._index.save(pos, args.out_path)
    finally:
        fs.close()
    print(pos)
    return 0


def cmd_dumpindex(args):
    from ZODB.fsIndex import fsIndex
    from ZODB.utils import u64

    loaded = fsIndex.load(args.index_path)
    print('pos %d' % loaded['pos'])
    index = loaded['index']
    # Old (pre-2010) indexes come back as a dict with a plain-dict 'index';
    # normalise through fsIndex().update() as FileStorage itself does.
    if not isinstance(index, fsIndex):
        normalised = fsIndex()
        normalised.update(index)
        index = normalised
    for oid, pos in sorted(index.items()):
        print('%016x %d' % (u64(oid), pos))
    return 0


def cmd_copy_index(args):
    src = args.data_fs + '.index'
    if not os.path.exists(src):
        print('zodbtool: %s does not exist' % src, file=sys.stderr)
        return 1
    shutil.copyfile(src, args.out)
    return 0


# -- scan: a tiny independent reader of the FileStorage layout --------------

_TRANS_HDR = '>8sQcHHH'   # tid, tlen, status, ulen, dlen, elen  (23 bytes)
_DATA_HDR = '>8s8sQQHQ'   # oid, tid, prev, tloc, vlen, plen     (42 bytes)


def cmd_scan(args):
    """List transactions and data records; stops quietly at the first
    structural problem, reporting where.  Does not touch ZODB."""
    with open(args.data_fs, 'rb') as f:
        data = f.read()
    print('magic %r size %d' % (data[:4], len(data)))
    pos = 4
    while pos < len(data):
        if pos + 23 > len(data):
            print('partial txn header at %d' % pos)
            break
        tid, tlen, status, ul, dl, el = struct.unpack_from(_TRANS_HDR, data,
                                                           pos)
        tend = pos + tlen
        if tend + 8 > len(data):
            print('truncated txn at %d (tlen %d)' % (pos, tlen))
            break
        hdr = 23 + ul + dl + el
        print('txn %d tid %s tlen %d status %r user %r desc %r elen %d' % (
            pos, tid.hex(), tlen, status.decode('latin-1'),
            data[pos + 23:pos + 23 + ul], data[pos + 23 + ul:pos + 23 + ul +
                                                dl], el))
        p = pos + hdr
        while p < tend:
            oid, dtid, prev, tloc, vlen, plen = struct.unpack_from(
                _DATA_HDR, data, p)
            if plen:
                extra = 'plen %d' % plen
                rlen = 42 + plen
            else:
                back, = struct.unpack_from('>Q', data, p + 42)
                extra = 'backpointer %d' % back
                rlen = 50
            print('  data %d oid %016x prev %d tloc %d %s' % (
                p, int.from_bytes(oid, 'big'), prev, tloc, extra))
            p += rlen
        redundant, = struct.unpack_from('>Q', data, tend)
        if p != tend or redundant != tlen:
            print('  BAD: records end %d, tend %d, redundant tlen %d' % (
                p, tend, redundant))
            break
        pos = tend + 8
    print('end %d' % pos)
    return 0


# -- chain: a long backup chain written by ZODB's own repozo ---------------

_WORDS = (
    'the order was shipped to our customer in time and the invoice '
    'followed two days later please review the attached report before '
    'friday meeting notes budget approved for next quarter draft page '
    'updated by the editor with new photos from the spring garden party '
    'minutes of the board agenda item closed ticket reopened because the '
    'printer on floor three is out of toner again'
).split()
_USERS = ('alice', 'bob', 'carol', 'dave')


def _sentence(rng):
    words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 18))]
    return ' '.join(words).capitalize() + '.'


def _commit_page_edit(rng, conn, serial):
    """One small transaction: create or edit one or two pages of the site
    and bump the site's edit counter."""
    import transaction
    from BTrees.OOBTree import OOBTree
    from persistent.mapping import PersistentMapping

    root = conn.root()
    txn = transaction.begin()
    site = root.get('site')
    if site is None:
        site = root['site'] = OOBTree()
        root['stats'] = PersistentMapping({'edits': 0})
    user = rng.choice(_USERS)
    txn.setUser(user)
    names = []
    for _ in range(rng.randint(1, 2)):
        name = 'page-%04d' % rng.randrange(400)
        page = site.get(name)
        if page is None:
            page = site[name] = PersistentMapping(
                {'title': _sentence(rng)[:40], 'created': serial})
        page['body'] = ' '.join(_sentence(rng)
                                for _ in range(rng.randint(1, 4)))
        page['modified'] = serial
        page['author'] = user
        names.append(name)
    root['stats']['edits'] += 1
    txn.note('edit %s (#%d)' % (', '.join(names), serial))
    txn.commit()


def cmd_chain(args):
    import calendar
    from ZODB.scripts import repozo

    # Durability is not what these fixtures are about, and thousands of
    # fsyncs (by FileStorage and by repozo) would dominate the run time.
    # No byte written differs.
    sys.modules['ZODB.FileStorage.FileStorage'].fsync = None
    os.fsync = lambda fd: None

    # repozo's find_files() lists and sorts the whole repository and walks
    # the chain back to its full backup on every run: quadratic over a long
    # chain (most of the run time).  Serve the same answer from a running
    # list instead, and check it against the real find_files() every 100
    # backups and at the end.  Everything repozo writes is still written by
    # repozo's own do_backup().
    real_find_files = repozo.find_files
    chains = {}

    def find_files(options):
        if options.date:
            return real_find_files(options)
        return list(chains.setdefault(options.repository, []))

    def check_chain(options_argv):
        options = repozo.parseargs(list(options_argv))
        real = real_find_files(options)
        if real != chains.get(options.repository, []):
            raise SystemExit('zodbtool chain: cached chain of %s differs '
                             'from find_files()' % options.repository)

    repozo.find_files = find_files

    start = calendar.timegm(time.strptime(args.start, '%Y-%m-%d-%H-%M-%S'))
    rng = random.Random(args.seed)
    runs = []
    if args.gzip_repo:
        runs.append((['-BQz', '-r', args.gzip_repo, '-f', args.data_fs],
                     args.gzip_repo, 'z'))
    if args.plain_repo:
        runs.append((['-BQ', '-r', args.plain_repo, '-f', args.data_fs],
                     args.plain_repo, ''))

    db = _open_db(args.data_fs)
    storage = db.storage
    try:
        conn = db.open()
        for i in range(args.count):
            _commit_page_edit(rng, conn, args.seed * 1000000 + i)
            if not runs:
                continue
            # repozo opens the Data.fs read-only and loads Data.fs.index;
            # keep it current so it does not rescan the whole file.
            storage._save_index()
            now = tuple(time.gmtime(start + 60 * i)[:6])
            repozo.gen_filedate = lambda options, _now=now: _now
            for argv, repo, z in runs:
                chain = chains.setdefault(repo, [])
                # main() returns None on success; errors leave by
                # sys.exit(), which propagates and fails this command.
                if repozo.main(list(argv)) is not None:
                    raise SystemExit('repozo %r failed at backup %d'
                                     % (argv, i))
                ext = ('.deltafs' if chain else '.fs') + z
                made = os.path.join(
                    repo, '%04d-%02d-%02d-%02d-%02d-%02d' % now + ext)
                if not os.path.exists(made):
                    raise SystemExit('zodbtool chain: repozo %r did not '
                                     'write %s' % (argv, made))
                chain.append(made)
                if (i + 1) % 100 == 0 or i + 1 == args.count:
                    check_chain(argv)
        conn.close()
    finally:
        db.close()
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog='zodbtool.py',
        description='Fixture/oracle helper driving real ZODB for the '
                    'repozo Rust port tests.')
    sub = parser.add_subparsers(dest='command', required=True)

    p = sub.add_parser('grow', help='commit N random transactions')
    p.add_argument('data_fs')
    p.add_argument('--txns', type=int, required=True,
                   help='number of transactions to commit')
    p.add_argument('--seed', type=int, required=True,
                   help='seed for random.Random; same seed => same data')
    p.add_argument('--pack-every', type=int, default=0, metavar='K',
                   help='pack after every K-th transaction (0 = never)')
    p.add_argument('--objects', type=int, default=60, metavar='M',
                   help='size of the key space (default 60: a few '
                        'OOBTree buckets)')
    p.add_argument('--max-ops', type=int, default=8, metavar='P',
                   help='max mutations per transaction (default 8)')
    p.add_argument('--blobby', action='store_true',
                   help='mostly 16-64 KB values (large files quickly)')
    p.add_argument('--max-value', type=int, default=None, metavar='BYTES',
                   help='cap every value at BYTES characters (keeps '
                        'committed fixtures small)')
    p.set_defaults(func=cmd_grow)

    p = sub.add_parser('pack', help='pack as of now')
    p.add_argument('data_fs')
    p.add_argument('--at', type=float, default=None, metavar='FRACTION',
                   help='pack as of the transaction this far through the '
                        'file (0..1) instead of now')
    p.add_argument('--no-gc', action='store_true',
                   help='FileStorage(pack_gc=False)')
    p.add_argument('--no-keep-old', action='store_true',
                   help='FileStorage(pack_keep_old=False)')
    p.set_defaults(func=cmd_pack)

    p = sub.add_parser('undo', help='commit and undo transaction(s)')
    p.add_argument('data_fs')
    p.add_argument('--count', type=int, default=1)
    p.set_defaults(func=cmd_undo)

    p = sub.add_parser('getsize', help='print read-only getSize()')
    p.add_argument('data_fs')
    p.add_argument('--ignore-index', action='store_true',
                   help='do not load DATA_FS.index (full scan from 4)')
    p.set_defaults(func=cmd_getsize)

    p = sub.add_parser('saveindex', help='write fsIndex as repozo does')
    p.add_argument('data_fs')
    p.add_argument('out_path')
    p.set_defaults(func=cmd_saveindex)

    p = sub.add_parser('dumpindex', help='print an fsIndex file')
    p.add_argument('index_path')
    p.set_defaults(func=cmd_dumpindex)

    p = sub.add_parser('copy-index', help='copy DATA_FS.index to OUT')
    p.add_argument('data_fs')
    p.add_argument('out')
    p.set_defaults(func=cmd_copy_index)

    p = sub.add_parser('chain', help='N commits, each backed up by '
                                     "ZODB's repozo -BQ[z]")
    p.add_argument('data_fs')
    p.add_argument('--count', type=int, required=True,
                   help='number of transactions (and backups per repo)')
    p.add_argument('--start', default='2021-03-01-09-00-00',
                   help='clock of the first backup, YYYY-MM-DD-HH-MM-SS UTC')
    p.add_argument('--seed', type=int, required=True)
    p.add_argument('--gzip-repo', metavar='DIR',
                   help='repository for repozo -BQz after each commit')
    p.add_argument('--plain-repo', metavar='DIR',
                   help='repository for repozo -BQ after each commit')
    p.set_defaults(func=cmd_chain)

    p = sub.add_parser('scan', help='list txns/records (no ZODB)')
    p.add_argument('data_fs')
    p.set_defaults(func=cmd_scan)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
