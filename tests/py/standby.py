#!/usr/bin/env python3
"""standby.py -- ZODB side of tests/it/incremental_recover.rs.

Run with the interpreter of the project's venv (tests/it/common/py.rs does).

Subcommands:

  recover REPO OUTDIR DATE [DATE ...]
      The oracle: for every DATE, in one process, ZODB 6.4's own
      repozo.main(['-R', '-r', REPO, '-D', DATE, '-o', OUTDIR/DATE.fs]),
      i.e. a full recover as of DATE (OUTDIR/DATE.fs.index is copied from
      the chain when the chain has one).  One process instead of one per
      date only saves interpreter start-ups; every byte comes from repozo's
      do_recover().
  small DATA_FS [--count N] [--tag T]
      Commit N tiny transactions through ZODB.DB that change only the root
      mapping (a few dozen bytes each, unlike `zodbtool.py grow`, whose
      transactions rewrite OOBTree buckets full of large values).  Used to
      end a backup with small transactions, and as "a local commit into a
      standby Data.fs".  Closes cleanly (DATA_FS.index is rewritten).
  hold DATA_FS
      A live ZODB process: open FileStorage(DATA_FS) read-write (which
      takes the flock on DATA_FS.lock), print "ready", wait until standard
      input is closed, then close the storage (which rewrites
      DATA_FS.index) and print "closed".

Exit codes: 0 success, 2 usage error, 1 any other failure (traceback).
"""

import argparse
import os
import sys


def cmd_recover(args):
    from ZODB.scripts import repozo

    for date in args.dates:
        out = os.path.join(args.outdir, date + '.fs')
        # main() returns None on success and leaves by sys.exit() on errors,
        # which propagates and fails this command.
        if repozo.main(['-R', '-r', args.repo, '-D', date, '-o', out]):
            raise SystemExit('repozo -R -D %s failed' % date)
        if not os.path.exists(out):
            raise SystemExit('repozo -R -D %s wrote no %s' % (date, out))
    return 0


def cmd_small(args):
    import transaction
    import ZODB
    from ZODB.FileStorage import FileStorage

    db = ZODB.DB(FileStorage(args.data_fs))
    try:
        conn = db.open()
        root = conn.root()
        for i in range(args.count):
            txn = transaction.begin()
            txn.note('standby small %s %d' % (args.tag, i))
            key = 'small-%s' % args.tag
            root[key] = root.get(key, 0) + 1
            txn.commit()
        conn.close()
    finally:
        db.close()
    return 0


def cmd_hold(args):
    from ZODB.FileStorage import FileStorage

    fs = FileStorage(args.data_fs)
    try:
        sys.stdout.write('ready\n')
        sys.stdout.flush()
        sys.stdin.read()
    finally:
        fs.close()
    sys.stdout.write('closed\n')
    sys.stdout.flush()
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog='standby.py')
    sub = parser.add_subparsers(dest='command', required=True)

    p = sub.add_parser('recover', help="ZODB's repozo -R for each date")
    p.add_argument('repo')
    p.add_argument('outdir')
    p.add_argument('dates', nargs='+')
    p.set_defaults(func=cmd_recover)

    p = sub.add_parser('small', help='tiny root-only transactions')
    p.add_argument('data_fs')
    p.add_argument('--count', type=int, default=1)
    p.add_argument('--tag', default='x')
    p.set_defaults(func=cmd_small)

    p = sub.add_parser('hold', help='keep a FileStorage open')
    p.add_argument('data_fs')
    p.set_defaults(func=cmd_hold)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
