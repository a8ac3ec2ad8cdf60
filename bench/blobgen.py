#!/usr/bin/env python3
"""blobgen.py -- grow a FileStorage with a blob directory through real ZODB,
for bench/blobbench.py.

Run with the interpreter of the project's venv (scripts/setup-venv.sh):

    .venv/bin/python bench/blobgen.py DATA_FS BLOB_DIR --blobs N
        [--total-mb M] [--per-txn 200] [--seed S]
    .venv/bin/python bench/blobgen.py DATA_FS BLOB_DIR --add 100

The first form creates DATA_FS with the (bushy) blob directory BLOB_DIR and
commits blob revisions until N blob files exist (default total size
N * 3072 MB / 50,000, so 50,000 blobs make ~3 GB).  The second form opens an
existing storage and adds --add new blobs in one transaction (plus a small
catalog transaction), the "100 new uploads since last night" of the
incremental scenario.

What it looks like (a Plone site's files and images, kept as plain
PersistentMappings since repozo never unpickles anything but the Blob
class name it looks for):

  * root['site'] is an OOBTree id -> item (a PersistentMapping with a title,
    a description of 0.2-2 KB of text, a content type, and 'file': a
    ZODB.blob.Blob); root['catalog'] an IOBTree rid -> metadata tuple and
    root['paths'] an OOBTree path -> rid, updated with every item;
  * blob sizes are log-normal (median ~16 KB, sigma 1.6, clipped to
    2 KB - 16 MB, then scaled so the total is --total-mb): mostly a few
    KB to a few hundred KB, a long tail of multi-MB files;
  * 55% of the blobs are text-like (words from a fixed vocabulary, like
    extracted documents; every file distinct), 45% image-like
    (incompressible random bytes);
  * a blob transaction writes --per-txn blobs (default 200); 5% of them
    are new revisions of an existing item's blob (same oid, new tid: the
    old revision file stays, nothing is packed), the rest new items;
    after each blob transaction, 3 small transactions edit descriptions
    and titles of random items (no blob), so the Data.fs has many
    transactions and non-blob records.

FileStorage's fsync at every commit is switched off (closing the storage
flushes it); the blob files are moved into place by ZODB itself.
Deterministic for a given --seed (sizes and contents; ZODB's tids are
wall-clock).  Progress goes to stderr.
"""

import argparse
import math
import os
import random
import sys
import time

MB = 2 ** 20
DEFAULT_BLOBS = 50_000
DEFAULT_TOTAL_MB_PER_50K = 3072
MIN_SIZE = 2 * 1024
MAX_SIZE = 16 * MB
TEXT_SHARE = 0.55
REVISION_SHARE = 0.05
CORPUS_BYTES = 24 * MB

WORDS = """
the of and to in is for on with as by at from that this be are was it or an
which not have has had their they we you can will all more also one new
site page file image document report minutes meeting agenda budget project
plan policy staff student research faculty department office service news
event program course university library public annual review press release
draft final version summary contract invoice proposal grant application form
notice committee board council member chair director manager team group
january february march april may june july august september october november
december monday tuesday wednesday thursday friday figure table chapter section
results methods analysis data model system process design development support
""".split()


def log(msg):
    print('blobgen: ' + msg, file=sys.stderr, flush=True)


def blob_sizes(rng, n, total):
    """n log-normal sizes summing to about `total` bytes."""
    raw = [min(MAX_SIZE, max(MIN_SIZE, int(rng.lognormvariate(math.log(16384), 1.6))))
           for _ in range(n)]
    for _ in range(4):  # rescale; clipping moves the sum a little each time
        factor = total / sum(raw)
        raw = [min(MAX_SIZE, max(MIN_SIZE, int(s * factor))) for s in raw]
    return raw


def make_corpus(rng):
    words = rng.choices(WORDS, k=CORPUS_BYTES // 5)
    lines = []
    for i in range(0, len(words), 14):
        lines.append(' '.join(words[i:i + 14]))
    return ('\n'.join(lines)).encode()[:CORPUS_BYTES]


class Content:
    def __init__(self, rng):
        self.rng = rng
        self.corpus = make_corpus(rng)
        self.serial = 0

    def blob(self, size):
        """Distinct bytes of `size`: text-like or image-like."""
        self.serial += 1
        head = b'%%blob %d\n' % self.serial
        if self.rng.random() < TEXT_SHARE:
            off = self.rng.randrange(0, len(self.corpus) - size + 1) \
                if size < len(self.corpus) else 0
            body = self.corpus[off:off + size]
            while len(body) < size:
                body += self.corpus[:size - len(body)]
        else:
            body = self.rng.randbytes(size)
        return (head + body)[:size] if size > len(head) else head

    def text(self, size):
        off = self.rng.randrange(0, len(self.corpus) - size)
        return self.corpus[off:off + size].decode()


def open_db(data_fs, blob_dir):
    import ZODB.FileStorage.FileStorage as fs_module
    from ZODB import DB
    from ZODB.FileStorage import FileStorage
    fs_module.fsync = None  # see the module docstring
    storage = FileStorage(data_fs, blob_dir=blob_dir)
    return DB(storage)


def ensure_root(root):
    import transaction
    from BTrees.IOBTree import IOBTree
    from BTrees.OOBTree import OOBTree
    for key, cls in (('site', OOBTree), ('catalog', IOBTree), ('paths', OOBTree)):
        if key not in root:
            root[key] = cls()
    transaction.commit()


def new_item(rng, content, root, size):
    from persistent.mapping import PersistentMapping
    from ZODB.blob import Blob
    site, catalog, paths = root['site'], root['catalog'], root['paths']
    rid = len(site)
    ident = 'file-%07d' % rid
    b = Blob()
    with b.open('w') as f:
        f.write(content.blob(size))
    image = rng.random() < 0.45
    item = PersistentMapping({
        'id': ident,
        'title': content.text(rng.randint(20, 80)),
        'description': content.text(rng.randint(200, 2000)),
        'content_type': 'image/jpeg' if image else 'application/pdf',
        'size': size,
        'file': b,
    })
    site[ident] = item
    path = '/plone/files/' + ident
    paths[path] = rid
    catalog[rid] = (path, item['title'], item['content_type'], size,
                    'published' if rng.random() < 0.7 else 'private')


def revise_item(rng, content, root, size, before, revised):
    """A new revision of an item that existed before this transaction and
    was not revised in it yet (else it would replace the same file)."""
    rid = rng.randrange(before)
    if rid in revised:
        return False
    revised.add(rid)
    item = root['site']['file-%07d' % rid]
    with item['file'].open('w') as f:
        f.write(content.blob(size))
    item['size'] = size
    return True


def edit_items(rng, content, root, k):
    site = root['site']
    for _ in range(k):
        item = site['file-%07d' % rng.randrange(len(site))]
        if rng.random() < 0.5:
            item['description'] = content.text(rng.randint(200, 2000))
        else:
            item['title'] = content.text(rng.randint(20, 80))


def generate(args):
    import transaction
    if os.path.exists(args.data_fs):
        raise SystemExit('blobgen: %s exists; generate into a new path' % args.data_fs)
    rng = random.Random(args.seed)
    total = int(args.total_mb * MB)
    sizes = blob_sizes(rng, args.blobs, total)
    content = Content(rng)
    db = open_db(args.data_fs, args.blob_dir)
    conn = db.open()
    root = conn.root()
    ensure_root(root)
    t0 = time.monotonic()
    done = written = txns = 0
    while done < len(sizes):
        batch = sizes[done:done + args.per_txn]
        txn = transaction.get()
        txn.setUser('editor%d' % rng.randrange(8))
        txn.note('upload %d files' % len(batch))
        before, revised = len(root['site']), set()
        for size in batch:
            if not (before > 100 and rng.random() < REVISION_SHARE
                    and revise_item(rng, content, root, size, before, revised)):
                new_item(rng, content, root, size)
        transaction.commit()
        done += len(batch)
        written += sum(batch)
        txns += 1
        for _ in range(3):
            edit_items(rng, content, root, rng.randint(1, 5))
            transaction.commit()
            txns += 1
        conn.cacheMinimize()
        if txns % 40 == 0 or done == len(sizes):
            el = time.monotonic() - t0
            log('%d/%d blobs, %.0f MB, %d transactions, %.0f s (%.0f MB/s)'
                % (done, len(sizes), written / MB, txns, el, written / MB / max(el, 1e-9)))
    conn.close()
    db.close()


def add(args):
    import transaction
    rng = random.Random(args.seed + 1)
    content = Content(rng)
    content.serial = 10 ** 9  # distinct from the generated ones
    sizes = blob_sizes(rng, args.add, args.add * 64 * 1024)
    db = open_db(args.data_fs, args.blob_dir)
    conn = db.open()
    root = conn.root()
    txn = transaction.get()
    txn.note('upload %d files' % len(sizes))
    for size in sizes:
        new_item(rng, content, root, size)
    transaction.commit()
    edit_items(rng, content, root, 3)
    transaction.commit()
    conn.close()
    db.close()
    log('added %d blobs (%.1f MB)' % (len(sizes), sum(sizes) / MB))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('data_fs')
    p.add_argument('blob_dir')
    p.add_argument('--blobs', type=int, default=DEFAULT_BLOBS,
                   help='number of blob files to write (default %(default)s)')
    p.add_argument('--total-mb', type=float, default=None,
                   help='their total size (default blobs * 3072 MB / 50,000)')
    p.add_argument('--per-txn', type=int, default=200)
    p.add_argument('--seed', type=int, default=10)
    p.add_argument('--add', type=int, default=0,
                   help='open the existing storage and add this many new blobs')
    args = p.parse_args(argv)
    if args.add:
        add(args)
    else:
        if args.total_mb is None:
            args.total_mb = args.blobs * DEFAULT_TOTAL_MB_PER_50K / DEFAULT_BLOBS
        generate(args)


if __name__ == '__main__':
    main()
