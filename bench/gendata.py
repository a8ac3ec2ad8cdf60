#!/usr/bin/env python3
"""gendata.py -- grow a FileStorage Data.fs through real ZODB, for bench.py.

Run with the interpreter of the project's venv (scripts/setup-venv.sh):

    .venv/bin/python bench/gendata.py DATA_FS --until-bytes N --seed S
        [--profile hex|cms|bulk]

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

Those are the default profile, `hex`.  Two more profiles (--profile) look
like real Plone databases; their classes are in bench/benchmodel.py:

`cms` -- a content-management site.  root['site'] is an OOBTree of id ->
  Document, and every Document has its title, body and metadata as separate
  Persistent objects (and 2% of them an Image whose `data` attribute holds
  8-64 KB of random bytes -- image-like, incompressible; not a ZODB blob).
  root['catalog'] holds catalog-like indexes: OOBTree path -> rid, IOBTree
  rid -> path, rid -> metadata tuple ("brains") and rid -> modification
  time, and OOBTrees of IITreeSets for the review state, the subjects and
  the words of titles.  Every edit also re-catalogs the document, so the
  buckets of the metadata and date indexes (up to 60 entries each) are
  rewritten by every transaction, as in a ZCatalog.  Text is whole
  paragraphs of the docstrings of the importable standard library modules,
  collected at start-up (sorted; no network), as HTML paragraphs: bodies
  55% 0.2-2 KB, 35% 2-8 KB, 9% 8-32 KB, 1% 32-100 KB.  Transactions: 99.5%
  touch 1-3 documents (70% one) -- a creation (25%) or an edit of the body,
  the title, the workflow state, the subjects or (0.5%) the image; 1-20
  objects each --, 0.5% are imports of 20-200 new documents.  About 2% of
  the bytes are incompressible; gzip -9 leaves about 40%.  ~16 MB/s.

`bulk` -- a bulk import: root['items'] is an LOBTree of number -> Item (a
  small Persistent with a short id, a title of 1-4 words, two ints and a
  state) and root['item_ids'] an OLBTree id -> number; 95% of transactions
  add 2,000-5,000 items, 5% change 1-20 existing ones.  About 270 bytes of
  Data.fs per item, so a 2 GB file has about 8 million objects and a large
  Data.fs.index.  ZODB's commit machinery bounds it at ~9 MB/s.

These two profiles switch off FileStorage's fsync at every commit (the
bytes written are the same; closing the storage flushes it).  All profiles
are deterministic for a given --seed and starting file, as above.

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


def hex_profile(rng, root):
    """The original profile: IOBTree of PersistentMapping documents whose
    bodies are hex text (see the module docstring).  Returns step(txn)."""
    import transaction
    from BTrees.IOBTree import IOBTree
    from persistent.mapping import PersistentMapping

    if 'docs' not in root:
        root['docs'] = IOBTree()
        transaction.commit()
    docs = root['docs']
    state = {'next_key': docs.maxKey() + 1 if len(docs) else 0}

    def step(txn):
        records = 0
        if rng.random() < 0.5:
            txn.setUser('editor%d' % rng.randrange(5))
        for _ in range(objects_in_txn(rng)):
            body = random_text(rng, body_size(rng))
            next_key = state['next_key']
            if next_key == 0 or rng.random() < 0.4:
                docs[next_key] = PersistentMapping(
                    {'title': 'document %d' % next_key, 'body': body})
                state['next_key'] = next_key + 1
            else:
                docs[rng.randrange(next_key)]['body'] = body
            records += 1
        return records, 0

    return step


# ---------------------------------------------------------------------------
# Text corpus of the cms and bulk profiles: the standard library's docstrings
# ---------------------------------------------------------------------------

# Modules not imported for the corpus: side effects (a browser, a GUI, a
# printed poem), platform-specific, or deprecated with noisy imports.
CORPUS_SKIP = frozenset("""
    antigravity this idlelib tkinter turtle turtledemo __main__ pydoc_data
    lib2to3 ensurepip venv msilib winreg winsound msvcrt nt
""".split())

_corpus = None


def corpus():
    """Paragraphs of the docstrings of the importable standard library
    modules (and their public classes and functions), sorted: the same
    list on every run with the same Python.  No network, no files."""
    global _corpus
    if _corpus is not None:
        return _corpus
    import contextlib
    import inspect
    import io
    import warnings
    names = sorted(n for n in sys.stdlib_module_names
                   if n not in CORPUS_SKIP and not n.startswith('_'))
    with warnings.catch_warnings(), \
            contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter('ignore')
        for name in names:
            try:
                __import__(name)
            except BaseException:      # missing optional C modules etc.
                pass
        docs = set()
        stdlib = set(names)
        for modname in sorted(sys.modules):
            if modname.split('.')[0] not in stdlib:
                continue
            mod = sys.modules[modname]
            objs = [mod]
            members = getattr(mod, '__dict__', {})
            for key in sorted(members):
                v = members[key]
                if (getattr(v, '__module__', None) == modname
                        and (inspect.isclass(v) or inspect.isfunction(v))):
                    objs.append(v)
                    if inspect.isclass(v):
                        objs.extend(m for _, m in sorted(vars(v).items())
                                    if inspect.isfunction(m))
            for o in objs:
                d = getattr(o, '__doc__', None)
                if isinstance(d, str) and len(d.strip()) >= 40:
                    docs.add(inspect.cleandoc(d))
    paras = set()
    for d in docs:
        for p in d.split('\n\n'):
            p = ' '.join(p.split())
            if len(p) >= 30:
                paras.add(p)
    _corpus = sorted(paras)
    if len(_corpus) < 100:
        raise SystemExit('gendata: too few docstrings found for the corpus')
    return _corpus


def corpus_words():
    words = set()
    for p in corpus():
        for w in p.split():
            w = w.strip('.,:;()[]{}"\'`*').lower()
            if 4 <= len(w) <= 14 and w.isalpha():
                words.add(w)
    return sorted(words)


def corpus_text(rng, paras, size, html=True):
    """About `size` characters of whole corpus paragraphs (as HTML)."""
    out = []
    n = 0
    while n < size:
        p = rng.choice(paras)
        if html:
            p = '<p>' + p + '</p>\n'
        out.append(p)
        n += len(p)
    return ''.join(out)[:max(size, 1)]


def cms_body_size(rng):
    r = rng.random()
    if r < 0.55:
        return rng.randint(200, 2000)
    if r < 0.90:
        return rng.randint(2000, 8000)
    if r < 0.99:
        return rng.randint(8000, 32 * 1024)
    return rng.randint(32 * 1024, 100 * 1024)


def cms_profile(rng, root):
    """A content-management site: see `--profile` in the module docstring.
    Returns step(txn) -> (object writes, incompressible bytes)."""
    import transaction
    from BTrees.IIBTree import IITreeSet
    from BTrees.IOBTree import IOBTree
    from BTrees.OOBTree import OOBTree
    from persistent.mapping import PersistentMapping
    from benchmodel import Document, Image, Metadata, TextPart

    paras = corpus()
    words = corpus_words()
    subjects = [words[i] for i in range(0, len(words), max(1, len(words) // 300))]
    types = ['Document', 'News Item', 'Event', 'Page', 'File', 'Link']
    states = ['private', 'pending', 'published', 'internal']
    users = ['editor%d' % i for i in range(12)] + ['admin']

    if 'site' not in root:
        root['site'] = OOBTree()               # id -> Document (a folder)
        root['cms_next'] = 0
        root['catalog'] = cat = PersistentMapping()
        cat['uid'] = OOBTree()                 # path -> rid
        cat['paths'] = IOBTree()               # rid -> path
        cat['metadata'] = IOBTree()            # rid -> tuple (the "brains")
        cat['modified'] = IOBTree()            # rid -> time (FieldIndex fwd)
        cat['review_state'] = OOBTree()        # state -> IITreeSet(rid)
        cat['Subject'] = OOBTree()             # keyword -> IITreeSet(rid)
        cat['Title'] = OOBTree()               # word -> IITreeSet(rid)
        transaction.commit()
    site = root['site']
    cat = root['catalog']
    clock = [1600000000 + 1000 * len(site)]

    def title_words(title):
        return sorted({w.strip('.,:;()[]{}"\'`*').lower()
                       for w in title.split()} & wordset)
    wordset = set(words)

    def idx_add(index, key, rid):
        s = index.get(key)
        if s is None:
            index[key] = s = IITreeSet()
        s.add(rid)

    def idx_remove(index, key, rid):
        s = index.get(key)
        if s is not None and rid in s:
            s.remove(rid)

    def catalog(doc):
        rid = doc.rid
        cat['modified'][rid] = doc.modified
        cat['metadata'][rid] = (
            doc.title.text, doc.meta.description, doc.workflow_state,
            doc.modified, tuple(doc.meta.subjects), doc.path,
            doc.portal_type, doc.meta.creator, len(doc.body.text),
            doc.image is not None)

    def make_title():
        p = rng.choice(paras).split()
        k = rng.randint(3, 9)
        i = rng.randrange(max(1, len(p) - k))
        return ' '.join(p[i:i + k]).strip('.,:;').capitalize()

    def create():
        n = root['cms_next']
        root['cms_next'] = n + 1
        ident = 'doc-%07d' % n
        rid = rng.randrange(-2 ** 31, 2 ** 31)
        while rid in cat['paths']:
            rid = rng.randrange(-2 ** 31, 2 ** 31)
        clock[0] += rng.randint(1, 600)
        subj = sorted(set(rng.sample(subjects, rng.randint(0, 4))))
        meta = Metadata(
            creator=rng.choice(users), created=clock[0], effective=clock[0],
            expires=None, language='en', subjects=subj,
            description=corpus_text(rng, paras, rng.randint(60, 300), False),
            rights='', contributors=())
        incompressible = 0
        image = None
        if rng.random() < 0.02:
            size = rng.randint(8 * 1024, 64 * 1024)
            data = b'\xff\xd8\xff\xe0\x00\x10JFIF\x00' + rng.randbytes(size)
            image = Image(data, 'image/jpeg', rng.randint(200, 2000),
                          rng.randint(200, 2000))
            incompressible = len(data)
        doc = Document('%032x' % rng.getrandbits(128), '/site/' + ident,
                       rng.choice(types), TextPart(make_title(), 'text/plain'),
                       TextPart(corpus_text(rng, paras, cms_body_size(rng))),
                       meta, image)
        doc.rid = rid
        doc.modified = clock[0]
        doc.history = ((clock[0], meta.creator, 'create'),)
        site[ident] = doc
        cat['uid'][doc.path] = rid
        cat['paths'][rid] = doc.path
        idx_add(cat['review_state'], doc.workflow_state, rid)
        for s in subj:
            idx_add(cat['Subject'], s, rid)
        for w in title_words(doc.title.text):
            idx_add(cat['Title'], w, rid)
        catalog(doc)
        return incompressible

    def edit():
        doc = site['doc-%07d' % rng.randrange(root['cms_next'])]
        rid = doc.rid
        clock[0] += rng.randint(1, 600)
        actor = rng.choice(users)
        incompressible = 0
        r = rng.random()
        if r < 0.5:
            doc.body.text = corpus_text(rng, paras, cms_body_size(rng))
            action = 'edit'
        elif r < 0.65:
            for w in title_words(doc.title.text):
                idx_remove(cat['Title'], w, rid)
            doc.title.text = make_title()
            for w in title_words(doc.title.text):
                idx_add(cat['Title'], w, rid)
            action = 'edit'
        elif r < 0.85:
            idx_remove(cat['review_state'], doc.workflow_state, rid)
            doc.workflow_state = rng.choice(states)
            idx_add(cat['review_state'], doc.workflow_state, rid)
            action = doc.workflow_state
        elif r < 0.995:
            for s in doc.meta.subjects:
                idx_remove(cat['Subject'], s, rid)
            doc.meta.subjects = sorted(set(rng.sample(subjects,
                                                      rng.randint(0, 4))))
            for s in doc.meta.subjects:
                idx_add(cat['Subject'], s, rid)
            doc.meta.description = corpus_text(rng, paras,
                                               rng.randint(60, 300), False)
            action = 'edit'
        else:
            size = rng.randint(8 * 1024, 64 * 1024)
            data = b'\xff\xd8\xff\xe0\x00\x10JFIF\x00' + rng.randbytes(size)
            if doc.image is None:
                doc.image = Image(data, 'image/jpeg', 800, 600)
            else:
                doc.image.data = data
            incompressible = len(data)
            action = 'edit'
        doc.modified = clock[0]
        doc.history = (doc.history + ((clock[0], actor, action),))[-5:]
        catalog(doc)
        return incompressible

    def step(txn):
        txn.setUser(rng.choice(users))
        incompressible = 0
        if root['cms_next'] == 0 or rng.random() < 0.005:
            # An occasional import: a folder of documents at once.
            n = rng.randint(20, 200)
            for _ in range(n):
                incompressible += create()
            return n * 8, incompressible
        n = 1 if rng.random() < 0.7 else rng.randint(2, 3)
        for _ in range(n):
            if rng.random() < 0.25:
                incompressible += create()
            else:
                incompressible += edit()
        return n * 5, incompressible

    return step


def bulk_profile(rng, root):
    """A bulk import of many small objects, in batches of a few thousand.
    Returns step(txn) -> (object writes, incompressible bytes)."""
    import transaction
    from BTrees.LOBTree import LOBTree
    from BTrees.OLBTree import OLBTree
    from benchmodel import Item

    words = corpus_words()
    titles = [' '.join(rng.choice(words) for _ in range(rng.randint(1, 4)))
              for _ in range(4096)]
    states = ('new', 'active', 'active', 'active', 'archived')
    if 'items' not in root:
        root['items'] = LOBTree()               # number -> Item
        root['item_ids'] = OLBTree()            # ident -> number
        transaction.commit()
    items = root['items']
    ids = root['item_ids']
    state = {'next': items.maxKey() + 1 if len(items) else 0}

    def new_item(n):
        ident = 'item-%09d' % n
        r = rng.getrandbits(32)
        item = Item(ident, titles[r & 4095], r >> 12, 1600000000 + n,
                    states[r % 5])
        items[n] = item
        ids[ident] = n

    def step(txn):
        txn.setUser('importer')
        if state['next'] and rng.random() < 0.05:
            # Now and then an edit of a few records.
            n = rng.randint(1, 20)
            for _ in range(n):
                item = items[rng.randrange(state['next'])]
                item.state = rng.choice(states)
                item.number = rng.randrange(10 ** 6)
            return n, 0
        n = rng.randint(2000, 5000)
        for _ in range(n):
            new_item(state['next'])
            state['next'] += 1
        return n, 0

    return step


PROFILES = {'hex': hex_profile, 'cms': cms_profile, 'bulk': bulk_profile}


def grow(path, until_bytes, seed, label, profile='hex'):
    # Imported here so that --help works without ZODB installed.
    import transaction
    import ZODB
    import ZODB.FileStorage.FileStorage as fs_module
    from ZODB.FileStorage import FileStorage

    if profile != 'hex':
        # FileStorage fsyncs at every commit; the cms profile commits tens
        # of thousands of small transactions.  The bytes written are the
        # same without it, and closing the storage flushes the file.  (The
        # hex profile keeps ZODB's default, as before.)
        fs_module.fsync = None
    rng = random.Random(seed)
    storage = FileStorage(path)
    # A small object cache: documents are written once and rarely reread,
    # and a 2 GB run must not keep 2 GB of bodies in memory.
    db = ZODB.DB(storage, cache_size=2000)
    t0 = time.monotonic()
    start = storage.getSize()
    txns = records = incompressible = 0
    try:
        conn = db.open()
        root = conn.root()
        step = PROFILES[profile](rng, root)
        t0 = time.monotonic()       # not counting the corpus
        last_report = t0
        while storage.getSize() < until_bytes:
            txn = transaction.begin()
            txn.note('bench %s seed=%d txn=%d' % (label, seed, txns))
            n, inc = step(txn)
            records += n
            incompressible += inc
            txn.commit()
            txns += 1
            now = time.monotonic()
            if now - last_report >= 5:
                last_report = now
                done = storage.getSize()
                print('gendata: %s: %.0f / %.0f MB, %.1f MB/s' % (
                    label, done / 2**20, until_bytes / 2**20,
                    (done - start) / 2**20 / (now - t0)),
                    file=sys.stderr, flush=True)
        conn.close()
    finally:
        # Closing the DB closes the storage, which writes DATA_FS.index.
        db.close()
    elapsed = time.monotonic() - t0
    grown = os.path.getsize(path) - start
    print('gendata: %s (%s): %d txns, ~%d object writes, %.1f MB in %.1f s '
          '(%.1f MB/s)%s'
          % (label, profile, txns, records, grown / 2**20, elapsed,
             grown / 2**20 / max(elapsed, 1e-9),
             ', %.1f%% incompressible bytes' % (100.0 * incompressible
                                                 / max(grown, 1))
             if profile == 'cms' else ''),
          file=sys.stderr, flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(
        description='Grow a Data.fs through ZODB until it reaches a size.')
    p.add_argument('data_fs')
    p.add_argument('--until-bytes', type=int, required=True,
                   help='commit until the storage is at least this long')
    p.add_argument('--seed', type=int, required=True)
    p.add_argument('--label', default='grow',
                   help='name used in progress lines and transaction notes')
    p.add_argument('--profile', choices=sorted(PROFILES), default='hex',
                   help='kind of data (default hex; see the module '
                        'docstring)')
    args = p.parse_args(argv)
    grow(args.data_fs, args.until_bytes, args.seed, args.label,
         args.profile)
    return 0


if __name__ == '__main__':
    sys.exit(main())
