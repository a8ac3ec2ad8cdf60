#!/usr/bin/env python3
"""gen_fixtures.py -- (re)generate the committed FileStorage fixtures.

Run with the project venv's interpreter from the repository root:

    bash scripts/setup-venv.sh
    .venv/bin/python tests/py/gen_fixtures.py            # -> tests/data/
    .venv/bin/python tests/py/gen_fixtures.py --out DIR  # elsewhere

Every file is written by real ZODB 6.4 (through tests/py/zodbtool.py), with
fixed seeds.  The *content* is deterministic, but transaction ids are
timestamps, so each regeneration produces different bytes (tids, and hence
md5 sums).  Tests must not hard-code md5s of these files; compute them.

Fixtures (each kept under MAX_BYTES):
  small.fs, small.fs.index  plain history, no pack, no undo; the .index is
                            the one FileStorage wrote on close
  packed.fs                 packed once (old txns rewritten with status 'p'),
                            then two more ordinary commits; no .index
  undo.fs                   ordinary commits, two undone transactions (undo
                            records = data records with plen 0 and a
                            backpointer, including backpointer 0 for an
                            undone object creation), then one more commit;
                            no .index
"""

import argparse
import os
import shutil
import struct
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import zodbtool  # noqa: E402  (sibling module, needs the sys.path entry)

DEFAULT_OUT = os.path.join(os.path.dirname(HERE), 'data')
MAX_BYTES = 50 * 1024

# Common "small" growth parameters: few keys, few ops, values capped at 3 KB.
SMALL = ['--objects', '24', '--max-ops', '4', '--max-value', '3000']


def tool(*argv):
    rc = zodbtool.main([str(a) for a in argv])
    if rc:
        raise SystemExit('zodbtool %s failed with %s' % (argv, rc))


def statuses_and_backpointers(path):
    """(list of txn status chars, number of plen==0 records, end pos)."""
    with open(path, 'rb') as f:
        data = f.read()
    assert data[:4] == b'FS30', path
    pos, statuses, backs = 4, [], 0
    while pos < len(data):
        _tid, tlen, status, ul, dl, el = struct.unpack_from('>8sQcHHH', data,
                                                            pos)
        statuses.append(status.decode('latin-1'))
        p, tend = pos + 23 + ul + dl + el, pos + tlen
        while p < tend:
            plen, = struct.unpack_from('>Q', data, p + 34)
            if plen == 0:
                backs += 1
            p += 42 + (plen or 8)
        assert p == tend, (path, pos)
        pos = tend + 8
    return statuses, backs, pos


def make_small(work):
    path = os.path.join(work, 'small.fs')
    tool('grow', path, '--txns', 7, '--seed', 101, *SMALL)
    return {'small.fs': path, 'small.fs.index': path + '.index'}


def make_packed(work):
    path = os.path.join(work, 'packed.fs')
    tool('grow', path, '--txns', 8, '--seed', 202, *SMALL)
    tool('pack', path)
    tool('grow', path, '--txns', 2, '--seed', 203, *SMALL)
    return {'packed.fs': path}


def make_undo(work):
    path = os.path.join(work, 'undo.fs')
    tool('grow', path, '--txns', 4, '--seed', 303, *SMALL)
    tool('undo', path, '--count', 2)
    tool('grow', path, '--txns', 1, '--seed', 304, *SMALL)
    return {'undo.fs': path}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default=DEFAULT_OUT,
                        help='output directory (default: tests/data)')
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix='repozo-fixtures-') as work:
        produced = {}
        for make in (make_small, make_packed, make_undo):
            produced.update(make(work))

        # Sanity checks, so a ZODB upgrade that changes behaviour is noticed.
        st, backs, end = statuses_and_backpointers(produced['small.fs'])
        assert set(st) == {' '} and backs == 0, (st, backs)
        st, backs, end = statuses_and_backpointers(produced['packed.fs'])
        assert 'p' in st and st[-1] == ' ', st
        st, backs, end = statuses_and_backpointers(produced['undo.fs'])
        assert set(st) == {' '} and backs >= 4, (st, backs)

        for name, src in sorted(produced.items()):
            size = os.path.getsize(src)
            if size > MAX_BYTES:
                raise SystemExit('%s is %d bytes (> %d); shrink the '
                                 'parameters' % (name, size, MAX_BYTES))
            shutil.copyfile(src, os.path.join(args.out, name))
            print('%-16s %6d bytes' % (name, size))
        for name in ('small.fs', 'packed.fs', 'undo.fs'):
            st, backs, end = statuses_and_backpointers(
                os.path.join(args.out, name))
            print('%-16s txns=%d statuses=%s backpointer-records=%d' % (
                name, len(st), ''.join(sorted(set(st))), backs))
    return 0


if __name__ == '__main__':
    sys.exit(main())
