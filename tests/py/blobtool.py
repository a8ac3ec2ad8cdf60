#!/usr/bin/env python3
"""blobtool.py -- ZODB 6.4 oracle for the blob backup tests.

Drives real ZODB (FileStorage with a blob directory) to write random
histories of Blob objects, and checks restored Data.fs + blob trees against
a journal of what ZODB itself wrote.  Run with the project venv's python
(tests/it/blobs.rs does), e.g.:

    .venv/bin/python tests/py/blobtool.py step Data.fs blobs --seed 7 \
        --journal j.json

Subcommands:

  init DATA_FS BLOB_DIR [--layout bushy|lawn] [--seed S] [--journal J]
      Create the storage with a few blobs (the blob directory created with
      the given layout first, so ZODB's automatic selection then reads it).
  step DATA_FS BLOB_DIR --seed S --journal J [--no-pack]
       [--pack-keep-old yes|no] [--action A] [--big BYTES]
      ONE random action chosen by the seed (or forced with --action):
      create (1-4 new blobs), modify (open('w') of a current blob), drop
      (remove a reference), nonblob (commit without blobs), undo (db.undo of
      a recent undoable transaction, preferring blob modifications, so ZODB
      copies the blob file under the undo tid), pack (db.pack() as of now;
      replaced by create with --no-pack; create adds one more blob of BYTES
      random bytes with --big).  Prints the last tid (16 hex).
  pack DATA_FS BLOB_DIR [--pack-keep-old yes|no] [--journal J]
      Pack as of now.
  modify-and-pack DATA_FS BLOB_DIR [--pack-keep-old yes|no] [--journal J]
       [--seed S]
      Modify one current blob, commit, pack as of time.time(): the previous
      revision leaves the Data.fs and its file goes to BLOB_DIR.old/ (keep
      old yes) or is deleted (no).  Prints "<last tid>" then
      "modified <oid> <old tid>" (16 hex each).
  records DATA_FS [--start B] [--end E] [--with-pos]
      Sorted lines "oid tid" (16 hex each; with --with-pos also the
      transaction's byte position) of every blob record per ZODB's own
      iterator + ZODB.blob.is_blob_record, in transactions starting at a
      byte in [B, E) (default: all).
  check DATA_FS BLOB_DIR --journal J [--step K] [--allow-extra]
      Checks: BLOB_DIR has .layout and an empty tmp/; every blob record's
      loadBlob(oid, tid) exists, is read-only and hashes as in the journal;
      no other file in the tree (unless --allow-extra); every current blob
      read through the object graph; with --step K, the current blobs,
      getSize() and last tid equal step K's.  Prints "ok N blobs".

Journal (JSON): {"blobs": {"<oid>:<tid>": sha256 hex}, "steps": [{"step": k,
"action": a, "last_tid": hex, "size": n, "current": {oid: sha256}}]}.  Blob
entries are never changed once written (blob files are immutable; seeing
one again with other content is an error).  Steps are numbered from 0 in
the order they were recorded (init, step, pack, modify-and-pack all record
one when given --journal).

Object model: root['tree'] is an OOBTree and root['folder'] a
PersistentMapping, both mapping names to Blob objects; root['counter'] is
bumped by non-blob commits.

Exit codes: 0 ok, 1 failure (message on stderr), 2 usage (argparse).
"""

import argparse
import hashlib
import json
import os
import random
import sys
import time


_WORDS = (
    'the quarterly report was filed by the editor and the photos from the '
    'garden party were attached to the newsletter draft before friday '
    'invoice number budget meeting minutes agenda printer toner ticket '
    'closed reopened approved rejected pending review archive scan pdf'
).split()


class Fail(Exception):
    pass


def _u64hex(b):
    return '%016x' % int.from_bytes(b, 'big')


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def _keep_old(value):
    return value == 'yes'


def _open_storage(data_fs, blob_dir, keep_old=True, read_only=False):
    from ZODB.FileStorage import FileStorage
    return FileStorage(data_fs, blob_dir=blob_dir, pack_keep_old=keep_old,
                       read_only=read_only)


def _open_db(data_fs, blob_dir, keep_old=True):
    import ZODB
    return ZODB.DB(_open_storage(data_fs, blob_dir, keep_old))


def _content(rng, existing=()):
    """Blob contents: empty, a few bytes up to ~200 KB, text or random
    bytes, sometimes a copy of an existing blob (dedup)."""
    if existing and rng.random() < 0.1:
        return rng.choice(list(existing))
    r = rng.random()
    if r < 0.04:
        return b''
    if r < 0.4:
        size = rng.randint(1, 300)
    elif r < 0.8:
        size = rng.randint(1024, 24 * 1024)
    else:
        size = rng.randint(60 * 1024, 200 * 1024)
    if rng.random() < 0.5:
        out = []
        n = 0
        while n < size:
            w = rng.choice(_WORDS)
            out.append(w)
            n += len(w) + 1
        return (' '.join(out)).encode()[:size]
    return rng.randbytes(size)


def _containers(root):
    from BTrees.OOBTree import OOBTree
    from persistent.mapping import PersistentMapping
    if 'tree' not in root:
        root['tree'] = OOBTree()
    if 'folder' not in root:
        root['folder'] = PersistentMapping()
    return root['tree'], root['folder']


def _current_blobs(root):
    """[(container, name, blob)] of every blob reachable from the root."""
    out = []
    for cname in ('tree', 'folder'):
        cont = root.get(cname)
        if cont is None:
            continue
        for name in sorted(cont.keys()):
            out.append((cont, name, cont[name]))
    return out


def _read_blob(blob):
    with blob.open('r') as f:
        return f.read()


def _current_map(root):
    cur = {}
    for _cont, _name, blob in _current_blobs(root):
        oid = _u64hex(blob._p_oid)
        if oid in cur:
            raise Fail('blob %s reachable twice' % oid)
        cur[oid] = _sha(_read_blob(blob))
    return cur


def _new_name(root):
    n = root.get('next', 0)
    root['next'] = n + 1
    return 'b%05d' % n


def _commit(note):
    import transaction
    t = transaction.get()
    t.note(note)
    t.commit()


def _act_create(rng, root, count=None, big=0):
    from ZODB.blob import Blob
    tree, folder = _containers(root)
    existing = [_read_blob(b) for _c, _n, b in _current_blobs(root)]
    contents = [_content(rng, existing) for _ in range(count or rng.randint(1, 4))]
    if big:
        contents.append(rng.randbytes(big))
    for content in contents:
        blob = Blob()
        with blob.open('w') as f:
            f.write(content)
        (tree if rng.random() < 0.6 else folder)[_new_name(root)] = blob
    _commit('blobtool create')


def _act_modify(rng, root):
    blobs = _current_blobs(root)
    if not blobs:
        return _act_create(rng, root)
    _c, _n, blob = rng.choice(blobs)
    with blob.open('w') as f:
        f.write(_content(rng))
    _commit('blobtool modify %s' % _u64hex(blob._p_oid))
    return blob


def _act_drop(rng, root):
    blobs = _current_blobs(root)
    if not blobs:
        return _act_create(rng, root)
    cont, name, _b = rng.choice(blobs)
    del cont[name]
    _commit('blobtool drop')


def _act_nonblob(rng, root):
    root['counter'] = root.get('counter', 0) + 1
    root['note'] = ' '.join(rng.choice(_WORDS) for _ in range(8))
    _commit('blobtool nonblob')


def _try_undo(db, conn, info):
    import transaction
    from ZODB.POSException import UndoError
    try:
        transaction.begin()
        db.undo(info['id'])
        _commit('blobtool undo')
        conn.sync()
        return True
    except UndoError:
        transaction.abort()
        conn.sync()
        return False


def _act_undo(rng, db, conn):
    root = conn.root()
    log = db.undoLog(0, 20)

    def desc(i):
        d = i['description']
        return d.decode('utf-8', 'replace') if isinstance(d, bytes) else d

    mods = [i for i in log if desc(i).startswith('blobtool modify')]
    others = [i for i in log if i not in mods]
    rng.shuffle(others)
    # The most recent blob modification first: it undoes cleanly unless the
    # blob was changed again later.
    for info in mods[:3] + others[:3]:
        if _try_undo(db, conn, info):
            return
    # Nothing undoable: make a blob modification and undo it at once.
    _act_modify(rng, root)
    conn.sync()
    info = db.undoLog(0, 1)[0]
    if not _try_undo(db, conn, info):
        raise Fail('could not undo the blob modification just made')


def _pack(db):
    # Pack as of now: everything committed so far (by earlier processes or
    # just before this call) has a tid below the pack time.
    time.sleep(0.02)
    db.pack(time.time())


# -- journal ---------------------------------------------------------------

def _load_journal(path):
    if path and os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {'blobs': {}, 'steps': []}


def _save_journal(path, j):
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(j, f, indent=0, sort_keys=True)
    os.replace(tmp, path)


def _blob_records(data_fs, start=0, end=None):
    """[(oid, tid, tpos)] of the blob records per ZODB's iterator."""
    from ZODB.FileStorage import FileIterator
    from ZODB.blob import is_blob_record
    out = []
    it = FileIterator(data_fs)
    try:
        with open(data_fs, 'rb') as raw:
            for txn in it:
                tpos = txn._tpos
                # Cross-check the private attribute: a transaction header
                # starts with its tid.
                raw.seek(tpos)
                if raw.read(8) != txn.tid:
                    raise Fail('iterator position %d is not the header of '
                               'transaction %s' % (tpos, _u64hex(txn.tid)))
                if tpos < start or (end is not None and tpos >= end):
                    continue
                for rec in txn:
                    if is_blob_record(rec.data):
                        out.append((rec.oid, rec.tid, tpos))
    finally:
        it.close()
    out.sort()
    return out


def _record_journal(path, db, storage, action):
    j = _load_journal(path)
    for oid, tid, _pos in _blob_records(storage._file_name):
        key = '%s:%s' % (_u64hex(oid), _u64hex(tid))
        fn = storage.loadBlob(oid, tid)
        with open(fn, 'rb') as f:
            h = _sha(f.read())
        old = j['blobs'].get(key)
        if old is not None and old != h:
            raise Fail('blob file %s changed: %s then %s' % (key, old, h))
        j['blobs'][key] = h
    conn = db.open()
    try:
        cur = _current_map(conn.root())
    finally:
        conn.close()
    k = len(j['steps'])
    j['steps'].append({'step': k, 'action': action,
                       'last_tid': _u64hex(storage.lastTransaction()),
                       'size': storage.getSize(), 'current': cur})
    _save_journal(path, j)
    return k


# -- commands --------------------------------------------------------------

def cmd_init(args):
    from ZODB.blob import FilesystemHelper
    if os.path.exists(args.data_fs):
        raise Fail('%s exists' % args.data_fs)
    from ZODB.FileStorage import FileStorage
    # A FileStorage that creates its Data.fs empties its blob directory:
    # create the (empty) Data.fs first, then the directory with its layout.
    FileStorage(args.data_fs).close()
    FilesystemHelper(args.blob_dir, layout_name=args.layout).create()
    rng = random.Random(args.seed)
    db = _open_db(args.data_fs, args.blob_dir)
    try:
        if db.storage.fshelper.layout_name != args.layout:
            raise Fail('ZODB picked layout %s' % db.storage.fshelper
                       .layout_name)
        conn = db.open()
        _act_create(rng, conn.root(), count=3)
        _act_create(rng, conn.root(), count=2)
        conn.close()
        if args.journal:
            _record_journal(args.journal, db, db.storage, 'init')
        print(_u64hex(db.storage.lastTransaction()))
    finally:
        db.close()
    return 0


ACTIONS = ('create', 'modify', 'drop', 'nonblob', 'undo', 'pack')
WEIGHTS = (30, 25, 10, 10, 15, 10)


def cmd_step(args):
    rng = random.Random(args.seed)
    action = args.action or rng.choices(ACTIONS, WEIGHTS)[0]
    if action == 'pack' and args.no_pack:
        action = 'create'
    db = _open_db(args.data_fs, args.blob_dir, _keep_old(args.pack_keep_old))
    try:
        conn = db.open()
        root = conn.root()
        if action == 'create':
            _act_create(rng, root, big=args.big)
        elif action == 'modify':
            _act_modify(rng, root)
        elif action == 'drop':
            _act_drop(rng, root)
        elif action == 'nonblob':
            _act_nonblob(rng, root)
        elif action == 'undo':
            _act_undo(rng, db, conn)
        elif action == 'pack':
            _pack(db)
        conn.close()
        _record_journal(args.journal, db, db.storage, action)
        print(_u64hex(db.storage.lastTransaction()))
    finally:
        db.close()
    return 0


def cmd_pack(args):
    db = _open_db(args.data_fs, args.blob_dir, _keep_old(args.pack_keep_old))
    try:
        _pack(db)
        if args.journal:
            _record_journal(args.journal, db, db.storage, 'pack')
        print(_u64hex(db.storage.lastTransaction()))
    finally:
        db.close()
    return 0


def cmd_modify_and_pack(args):
    rng = random.Random(args.seed)
    db = _open_db(args.data_fs, args.blob_dir, _keep_old(args.pack_keep_old))
    try:
        conn = db.open()
        blobs = _current_blobs(conn.root())
        if not blobs:
            raise Fail('no current blob to modify')
        _c, _n, blob = rng.choice(blobs)
        blob._p_activate()
        old_tid = _u64hex(blob._p_serial)
        with blob.open('w') as f:
            f.write(_content(rng) + b'modified')
        _commit('blobtool modify %s' % _u64hex(blob._p_oid))
        oid = _u64hex(blob._p_oid)
        conn.close()
        _pack(db)
        if args.journal:
            _record_journal(args.journal, db, db.storage, 'modify-and-pack')
        print(_u64hex(db.storage.lastTransaction()))
        print('modified %s %s' % (oid, old_tid))
    finally:
        db.close()
    return 0


def cmd_records(args):
    for oid, tid, pos in _blob_records(args.data_fs, args.start, args.end):
        if args.with_pos:
            print('%s %s %d' % (_u64hex(oid), _u64hex(tid), pos))
        else:
            print('%s %s' % (_u64hex(oid), _u64hex(tid)))
    return 0


def cmd_check(args):
    import stat
    import ZODB
    errors = []
    bd = args.blob_dir
    if not os.path.isfile(os.path.join(bd, '.layout')):
        raise Fail('%s has no .layout file' % bd)
    tmp = os.path.join(bd, 'tmp')
    if not os.path.isdir(tmp):
        raise Fail('%s has no tmp/ directory' % bd)
    if os.listdir(tmp) and not args.allow_extra:
        errors.append('tmp/ is not empty: %s' % sorted(os.listdir(tmp)))
    j = _load_journal(args.journal)
    storage = _open_storage(args.data_fs, bd, read_only=True)
    db = None
    try:
        records = _blob_records(args.data_fs)
        expected = set()
        for oid, tid, _pos in records:
            key = '%s:%s' % (_u64hex(oid), _u64hex(tid))
            fn = storage.fshelper.getBlobFilename(oid, tid)
            expected.add(os.path.abspath(fn))
            try:
                got = storage.loadBlob(oid, tid)
            except Exception as e:
                errors.append('blob %s: loadBlob failed: %r' % (key, e))
                continue
            with open(got, 'rb') as f:
                h = _sha(f.read())
            want = j['blobs'].get(key)
            if want is None:
                errors.append('blob %s is not in the journal' % key)
            elif want != h:
                errors.append('blob %s has wrong contents (sha256 %s, '
                              'journal %s)' % (key, h, want))
            if os.stat(got).st_mode & (stat.S_IWUSR | stat.S_IWGRP |
                                       stat.S_IWOTH):
                errors.append('blob %s file %s is writable' % (key, got))
        if not args.allow_extra:
            for dirpath, dirnames, filenames in os.walk(bd):
                if os.path.normpath(dirpath) == os.path.normpath(bd):
                    dirnames[:] = [d for d in dirnames if d != 'tmp']
                for name in filenames:
                    p = os.path.abspath(os.path.join(dirpath, name))
                    if p == os.path.abspath(os.path.join(bd, ".layout")):
                        continue
                    if p not in expected:
                        errors.append('unexpected file %s' % p)
        db = ZODB.DB(storage)
        conn = db.open()
        try:
            cur = _current_map(conn.root())
        except Exception as e:
            raise Fail('reading the current blobs failed: %r (and %s)'
                       % (e, '; '.join(errors[:5]) or 'nothing else'))
        finally:
            conn.close()
        if args.step is not None:
            if args.step >= len(j['steps']):
                raise Fail('journal has no step %d' % args.step)
            s = j['steps'][args.step]
            if s['current'] != cur:
                want, have = s['current'], cur
                diff = sorted(set(want.items()) ^ set(have.items()))
                errors.append('current blobs differ from step %d: %s'
                              % (args.step, diff[:10]))
            if s['size'] != storage.getSize():
                errors.append('size %d, step %d had %d'
                              % (storage.getSize(), args.step, s['size']))
            last = _u64hex(storage.lastTransaction())
            if s['last_tid'] != last:
                errors.append('last tid %s, step %d had %s'
                              % (last, args.step, s['last_tid']))
    finally:
        if db is not None:
            db.close()
        else:
            storage.close()
    if errors:
        for e in errors[:50]:
            print('blobtool check: %s' % e, file=sys.stderr)
        print('blobtool check: %d problem(s) in %s + %s'
              % (len(errors), args.data_fs, bd), file=sys.stderr)
        return 1
    print('ok %d blobs' % len(records))
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog='blobtool.py', description=(
        'ZODB blob oracle for the repozo blob backup tests.'))
    sub = p.add_subparsers(dest='command', required=True)

    def storage_args(s):
        s.add_argument('data_fs')
        s.add_argument('blob_dir')

    def keep_old(s):
        s.add_argument('--pack-keep-old', choices=('yes', 'no'),
                       default='yes')

    s = sub.add_parser('init', help='new storage with a few blobs')
    storage_args(s)
    s.add_argument('--layout', choices=('bushy', 'lawn'), default='bushy')
    s.add_argument('--seed', type=int, default=0)
    s.add_argument('--journal')
    s.set_defaults(func=cmd_init)

    s = sub.add_parser('step', help='one random action')
    storage_args(s)
    s.add_argument('--seed', type=int, required=True)
    s.add_argument('--journal', required=True)
    s.add_argument('--no-pack', action='store_true')
    s.add_argument('--action', choices=ACTIONS)
    s.add_argument('--big', type=int, default=0,
                   help='with create: also one blob of this many random bytes')
    keep_old(s)
    s.set_defaults(func=cmd_step)

    s = sub.add_parser('pack', help='pack as of now')
    storage_args(s)
    keep_old(s)
    s.add_argument('--journal')
    s.set_defaults(func=cmd_pack)

    s = sub.add_parser('modify-and-pack',
                       help='modify a current blob, then pack as of now')
    storage_args(s)
    keep_old(s)
    s.add_argument('--journal')
    s.add_argument('--seed', type=int, default=0)
    s.set_defaults(func=cmd_modify_and_pack)

    s = sub.add_parser('records', help='blob records per ZODB')
    s.add_argument('data_fs')
    s.add_argument('--start', type=int, default=0)
    s.add_argument('--end', type=int, default=None)
    s.add_argument('--with-pos', action='store_true')
    s.set_defaults(func=cmd_records)

    s = sub.add_parser('check', help='check a Data.fs + blob tree')
    storage_args(s)
    s.add_argument('--journal', required=True)
    s.add_argument('--step', type=int)
    s.add_argument('--allow-extra', action='store_true',
                   help='tolerate files that no blob record names')
    s.set_defaults(func=cmd_check)
    return p


def main(argv=None):
    import logging
    # ZODB logs warnings (the lawn layout is deprecated, ...) through
    # logging's last-resort handler; failures raise anyway.
    logging.getLogger().addHandler(logging.NullHandler())
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Fail as e:
        print('blobtool %s: %s' % (args.command, e), file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
