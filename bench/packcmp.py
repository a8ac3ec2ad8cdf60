#!/usr/bin/env python3
"""packcmp.py -- what a FileStorage pack changes, record by record.

    python3 bench/packcmp.py BEFORE.fs AFTER.fs [--json]
    python3 bench/packcmp.py --stats FILE.fs...

Reads both files with its own parser of the FileStorage format (no ZODB
needed: the magic, then transactions of a 23-byte header -- tid, tlen,
status, ulen, dlen, elen -- user, description, extension, data records of
a 42-byte header -- oid, tid, prev, tloc, vlen, plen -- and the pickle, or
an 8-byte backpointer when plen is 0 -- and the 8-byte redundant tlen), and
matches every data record of AFTER with the record of the same (oid, tid)
in BEFORE.  It reports, for the records a pack kept:

  * which header fields changed and how often (prev, tloc, plen; oid and
    tid are the key), whether the record's bytes are otherwise identical;
  * whether every pickle is byte-identical to BEFORE's (for a BEFORE
    backpointer: to the pickle it resolves to), and how many backpointers
    became data records, stayed backpointers (with a new value), ...;
  * for transactions: status byte changes (' ' -> 'p'), tlen changes,
    user/description/extension bytes identical, records dropped;
  * how many bytes of AFTER lie in pickles found identical in BEFORE (what
    a delta can copy) and how many are headers (what it must rewrite), and
    how many maximal runs of AFTER are a copy of BEFORE at one offset
    (copy instructions of a delta that copies headers when they match).

--stats prints transactions and data records per MB of each file.
Exit status 1 if a record of AFTER has no (oid, tid) in BEFORE or a pickle
differs.
"""

import argparse
import collections
import json
import mmap
import struct
import sys

TXN = struct.Struct('>8sQcHHH')     # 23 bytes
DATA = struct.Struct('>8s8sQQHQ')   # 42 bytes
U64 = struct.Struct('>Q')
MB = 2 ** 20


class Rec:
    __slots__ = ('pos', 'oid', 'tid', 'prev', 'tloc', 'plen', 'back',
                 'dpos', 'rlen')


class Txn:
    __slots__ = ('pos', 'tid', 'tlen', 'status', 'hlen', 'recs')


def scan(m):
    """Transactions of the mapped file m, each with its data records."""
    if m[:4] not in (b'FS21', b'FS30'):
        raise SystemExit('packcmp: not a FileStorage file (magic %r)' % m[:4])
    pos, end = 4, len(m)
    txns = []
    while pos < end:
        tid, tlen, status, ul, dl, el = TXN.unpack_from(m, pos)
        t = Txn()
        t.pos, t.tid, t.tlen, t.status = pos, tid, tlen, status
        t.hlen = TXN.size + ul + dl + el
        t.recs = []
        tend = pos + tlen
        if U64.unpack_from(m, tend)[0] != tlen:
            raise SystemExit('packcmp: bad redundant tlen at %d' % tend)
        dpos = pos + t.hlen
        while dpos < tend:
            r = Rec()
            r.oid, r.tid, r.prev, r.tloc, vlen, r.plen = DATA.unpack_from(m, dpos)
            r.pos = dpos
            r.dpos = dpos + DATA.size + vlen
            if r.plen:
                r.back = None
                r.rlen = DATA.size + vlen + r.plen
            else:
                r.back = U64.unpack_from(m, r.dpos)[0]
                r.rlen = DATA.size + vlen + 8
            t.recs.append(r)
            dpos += r.rlen
        txns.append(t)
        pos = tend + 8
    return txns


def resolve(m, recs_by_pos, r):
    """(start, length) of the pickle r holds or points to; None for an
    uncreation (backpointer 0)."""
    while r.back is not None:
        if r.back == 0:
            return None
        r = recs_by_pos[r.back]
    return r.dpos, r.plen


def stats(path):
    with open(path, 'rb') as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    txns = scan(m)
    recs = [r for t in txns for r in t.recs]
    size = len(m)
    backs = sum(1 for r in recs if r.back)
    uncreated = sum(1 for r in recs if r.back == 0)
    status = collections.Counter(t.status.decode('latin-1') for t in txns)
    return dict(file=str(path), bytes=size, txns=len(txns),
                records=len(recs), oids=len({r.oid for r in recs}),
                txns_per_mb=round(len(txns) / (size / MB), 1),
                records_per_mb=round(len(recs) / (size / MB), 1),
                mean_record_bytes=round(sum(r.rlen for r in recs)
                                        / max(len(recs), 1), 1),
                header_bytes=sum(t.hlen + 8 for t in txns)
                + DATA.size * len(recs),
                backpointers=backs, uncreations=uncreated,
                status=dict(status))


def compare(before, after):
    with open(before, 'rb') as f:
        mb = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    with open(after, 'rb') as f:
        ma = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    tb, ta = scan(mb), scan(ma)
    old = {}
    old_by_pos = {}
    old_txn = {}
    for t in tb:
        old_txn[t.tid] = t
        for r in t.recs:
            old[(r.oid, r.tid)] = r
            old_by_pos[r.pos] = r
    new_by_pos = {r.pos: r for t in ta for r in t.recs}

    c = collections.Counter()
    kept_keys = set()
    pickle_bytes_same = 0
    # Maximal runs of AFTER that equal BEFORE at one offset: walk AFTER in
    # pieces (txn header, record header, payload, trailer) and merge.
    runs = 0
    run_bytes = 0
    last = None          # (after end, before end) of the current run

    def piece(apos, bpos, n, same):
        nonlocal runs, run_bytes, last
        if not same or bpos is None:
            last = None
            return
        run_bytes += n
        if last is None or last != (apos, bpos):
            runs += 1
        last = (apos + n, bpos + n)

    for t in ta:
        o = old_txn.get(t.tid)
        c['txns'] += 1
        if o is None:
            c['txns_missing_in_before'] += 1
            piece(t.pos, None, 0, False)
            continue
        c['txn status %r -> %r' % (o.status.decode('latin-1'),
                                   t.status.decode('latin-1'))] += 1
        if o.tlen != t.tlen:
            c['txn tlen changed'] += 1
        if mb[o.pos + TXN.size:o.pos + o.hlen] != ma[t.pos + TXN.size:
                                                     t.pos + t.hlen]:
            c['txn user/desc/ext changed'] += 1
        if len(t.recs) < len(o.recs):
            c['txns with records dropped'] += 1
        if o.pos != t.pos:
            c['txn moved'] += 1
        keys = {(x.oid, x.tid) for x in t.recs}
        if [r.oid for r in t.recs] != [r.oid for r in o.recs
                                        if (r.oid, r.tid) in keys]:
            c['txn record order changed'] += 1
        piece(t.pos, o.pos, t.hlen,
              ma[t.pos:t.pos + t.hlen] == mb[o.pos:o.pos + o.hlen])
        for r in t.recs:
            c['records'] += 1
            b = old.get((r.oid, r.tid))
            if b is None:
                c['records missing in before'] += 1
                piece(r.pos, None, 0, False)
                continue
            kept_keys.add((r.oid, r.tid))
            fields = []
            if r.prev != b.prev:
                fields.append('prev')
                c['prev changed to 0' if r.prev == 0
                  else 'prev changed (not to 0)'] += 1
            if r.tloc != b.tloc:
                fields.append('tloc')
            if r.plen != b.plen:
                fields.append('plen')
            c['header fields changed: ' + (','.join(fields) or 'none')] += 1
            hdr_same = ma[r.pos:r.pos + DATA.size] == mb[b.pos:b.pos + DATA.size]
            piece(r.pos, b.pos, DATA.size, hdr_same)
            # Payload
            if r.back is None:
                if b.back is None:
                    c['data record stayed data'] += 1
                else:
                    c['backpointer became data'] += 1
                src = resolve(mb, old_by_pos, b)
                if src is None:
                    c['PICKLE MISSING (uncreation became data)'] += 1
                    piece(r.dpos, None, 0, False)
                    continue
                same = ma[r.dpos:r.dpos + r.plen] == mb[src[0]:src[0] + src[1]]
                if same:
                    c['pickle identical'] += 1
                    pickle_bytes_same += r.plen
                else:
                    c['PICKLE DIFFERS'] += 1
                piece(r.dpos, src[0], r.plen, same)
            else:
                if b.back is None:
                    c['data became backpointer'] += 1
                elif r.back == 0:
                    c['uncreation (backpointer 0) kept'] += 1
                else:
                    c['backpointer kept'] += 1
                    ra = new_by_pos.get(r.back)
                    rb = old_by_pos.get(b.back)
                    if ra and rb and (ra.oid, ra.tid) == (rb.oid, rb.tid):
                        c['backpointer target same record'] += 1
                    if r.back != b.back:
                        c['backpointer value changed'] += 1
                piece(r.dpos, b.dpos, 8,
                      ma[r.dpos:r.dpos + 8] == mb[b.dpos:b.dpos + 8])
        tend = t.pos + t.tlen
        piece(tend, o.pos + o.tlen, 8,
              ma[tend:tend + 8] == mb[o.pos + o.tlen:o.pos + o.tlen + 8])

    dropped = [r for t in tb for r in t.recs
               if (r.oid, r.tid) not in kept_keys]
    c['records dropped'] = len(dropped)
    c['txns dropped'] = len({t.tid for t in tb} - {t.tid for t in ta})
    return dict(
        before=str(before), after=str(after),
        before_bytes=len(mb), after_bytes=len(ma),
        kept=round(len(ma) / len(mb), 6),
        dropped_record_bytes=sum(r.rlen for r in dropped),
        after_pickle_bytes_identical=pickle_bytes_same,
        after_bytes_in_identical_runs=run_bytes,
        identical_runs=runs,
        counts=dict(sorted(c.items())))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('files', nargs='+')
    p.add_argument('--stats', action='store_true',
                   help='only print counts per MB of each file')
    p.add_argument('--json', action='store_true')
    a = p.parse_args(argv)
    if a.stats:
        out = [stats(f) for f in a.files]
        if a.json:
            print(json.dumps(out, indent=1))
        else:
            for s in out:
                print('%(file)s: %(bytes)d bytes, %(txns)d txns '
                      '(%(txns_per_mb).1f/MB), %(records)d data records '
                      '(%(records_per_mb).1f/MB, mean %(mean_record_bytes).0f '
                      'B), %(oids)d oids, headers %(header_bytes)d B, '
                      '%(backpointers)d backpointers, %(uncreations)d '
                      'uncreations, status %(status)s' % s)
        return 0
    if len(a.files) != 2:
        p.error('give BEFORE.fs and AFTER.fs (or --stats FILES)')
    r = compare(*a.files)
    if a.json:
        print(json.dumps(r, indent=1))
    else:
        print('%s (%d bytes) -> %s (%d bytes): kept %.4f'
              % (r['before'], r['before_bytes'], r['after'], r['after_bytes'],
                 r['kept']))
        print('  dropped record bytes: %d' % r['dropped_record_bytes'])
        print('  AFTER bytes in pickles identical to BEFORE: %d (%.2f%%)'
              % (r['after_pickle_bytes_identical'],
                 100.0 * r['after_pickle_bytes_identical'] / r['after_bytes']))
        print('  AFTER bytes in runs identical to BEFORE at one offset: %d '
              '(%.2f%%) in %d runs'
              % (r['after_bytes_in_identical_runs'],
                 100.0 * r['after_bytes_in_identical_runs'] / r['after_bytes'],
                 r['identical_runs']))
        for k, v in r['counts'].items():
            print('  %-45s %d' % (k, v))
    bad = (r['counts'].get('PICKLE DIFFERS', 0)
           + r['counts'].get('records missing in before', 0)
           + r['counts'].get('PICKLE MISSING (uncreation became data)', 0))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
