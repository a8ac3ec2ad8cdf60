#!/usr/bin/env python3
"""gendata.py -- grow a FileStorage Data.fs through real ZODB, for bench.py.

Run with the interpreter of the project's venv (scripts/setup-venv.sh):

    .venv/bin/python bench/gendata.py DATA_FS --until-bytes N --seed S

Opens (or creates) DATA_FS as a ZODB.FileStorage, commits transactions
until the storage is at least N bytes long, and closes it cleanly, so that
DATA_FS.index is written exactly as a ZODB server writes it at shutdown.
Growing the same file in several calls therefore leaves an index behind
after each call -- bench.py relies on that to keep a *stale* index aside.

Why not tests/py/zodbtool.py?  Its data model is made for tests: 60 keys
whose values live inside the buckets of one OOBTree, so even a 2 GB file
has a few dozen oids and ~50 KB records.  Repozo's costs depend on what a
real Data.fs looks like -- the number of oids (size of the .index that every
backup writes) and the number of records (what FileStorage scans when
Data.fs.index is stale) -- so this generator builds a more typical
population, still through ZODB's own commit machinery:

  * root['docs'] is an IOBTree of int -> PersistentMapping "documents";
    every document is its own persistent object (its own oid and record);
  * each transaction either inserts new documents (40%) or rewrites the
    'body' of existing ones (60%), so the file holds many revisions, as a
    long-lived unpacked database does;
  * document bodies are mostly small: 55% 50-500 B, 35% 0.5-4 KB,
    9% 4-32 KB, 1% 32-128 KB (mean about 3.4 KB);
  * transactions are mostly small (80%: 1-5 objects), some large
    (20%: 20-200 objects) -- the large ones keep generation fast.

A 256 MB file has about 3,000 transactions, 75,000 data records and 30,000
oids; generation runs at roughly 25 MB/s (under a minute and a half per GB).

Bodies are hex text of random bytes, which gzip compresses about 2:1 (as
zodbtool's values do).  The same --seed on the same starting file gives the
same transactions, although the bytes differ between runs because ZODB
writes wall-clock transaction ids.

Progress goes to stderr; nothing is printed on stdout.
"""

import argparse
import os
import random
import sys
import time


def body_size(rng):
    """Size in characters of one document body (see the module docstring)."""
    r = rng.random()
    if r < 0.55:
        return rng.randint(50, 500)
    if r < 0.90:
        return rng.randint(500, 4096)
    if r < 0.99:
        return rng.randint(4096, 32 * 1024)
    return rng.randint(32 * 1024, 128 * 1024)


def objects_in_txn(rng):
    """Number of documents written by one transaction."""
    if rng.random() < 0.8:
        return rng.randint(1, 5)
    return rng.randint(20, 200)


def random_text(rng, size):
    """`size` characters of hex text (cheap to make, compresses ~2:1)."""
    return rng.randbytes((size + 1) // 2).hex()[:size]


def grow(path, until_bytes, seed, label):
    # Imported here so that --help works without ZODB installed.
    import transaction
    import ZODB
    from BTrees.IOBTree import IOBTree
    from persistent.mapping import PersistentMapping
    from ZODB.FileStorage import FileStorage

    rng = random.Random(seed)
    storage = FileStorage(path)
    # A small object cache: documents are written once and rarely reread,
    # and a 2 GB run must not keep 2 GB of bodies in memory.
    db = ZODB.DB(storage, cache_size=2000)
    t0 = time.monotonic()
    start = storage.getSize()
    txns = records = 0
    try:
        conn = db.open()
        root = conn.root()
        if 'docs' not in root:
            root['docs'] = IOBTree()
            transaction.commit()
        docs = root['docs']
        next_key = docs.maxKey() + 1 if len(docs) else 0
        last_report = t0
        while storage.getSize() < until_bytes:
            txn = transaction.begin()
            txn.note('bench %s seed=%d txn=%d' % (label, seed, txns))
            if rng.random() < 0.5:
                txn.setUser('editor%d' % rng.randrange(5))
            for _ in range(objects_in_txn(rng)):
                body = random_text(rng, body_size(rng))
                if next_key == 0 or rng.random() < 0.4:
                    docs[next_key] = PersistentMapping(
                        {'title': 'document %d' % next_key, 'body': body})
                    next_key += 1
                else:
                    docs[rng.randrange(next_key)]['body'] = body
                records += 1
            txn.commit()
            txns += 1
            now = time.monotonic()
            if now - last_report >= 5:
                last_report = now
                done = storage.getSize()
                print('gendata: %s: %.0f / %.0f MB, %.0f MB/s' % (
                    label, done / 2**20, until_bytes / 2**20,
                    (done - start) / 2**20 / (now - t0)),
                    file=sys.stderr, flush=True)
        conn.close()
    finally:
        # Closing the DB closes the storage, which writes DATA_FS.index.
        db.close()
    elapsed = time.monotonic() - t0
    print('gendata: %s: %d txns, ~%d object writes, %.1f MB in %.1f s'
          % (label, txns, records, (os.path.getsize(path) - start) / 2**20,
             elapsed), file=sys.stderr, flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(
        description='Grow a Data.fs through ZODB until it reaches a size.')
    p.add_argument('data_fs')
    p.add_argument('--until-bytes', type=int, required=True,
                   help='commit until the storage is at least this long')
    p.add_argument('--seed', type=int, required=True)
    p.add_argument('--label', default='grow',
                   help='name used in progress lines and transaction notes')
    args = p.parse_args(argv)
    grow(args.data_fs, args.until_bytes, args.seed, args.label)
    return 0


if __name__ == '__main__':
    sys.exit(main())
