#!/usr/bin/env python3
"""repozo_shim.py -- run ZODB 6.4's real repozo, with an optional fixed clock.

Run it with the project venv's interpreter (tests/it/common/py.rs does):

    .venv/bin/python tests/py/repozo_shim.py -BQr REPO -f Data.fs

It behaves exactly like the `repozo` console script, with two differences:

1. REPOZO_TEST_NOW=YYYY-MM-DD-HH-MM-SS (UTC) pins repozo's notion of "now".
   repozo reads the clock in exactly one place, gen_filedate(options)
   (`time.gmtime()[:6]`), which feeds
     * the names of new backup files (<stamp>.fs, .deltafs, .dat, .index), and
     * the default upper bound for chain selection in find_files()
       (used by -R without -D, by -V, and by -B to find the current chain).
   We replace that function with one returning the pinned 6-tuple of ints.
   The Rust binary honours the same variable, so both produce identical
   repositories.  A malformed value is a test bug: we exit 2 loudly rather
   than silently using the real clock.

2. The program name in the help text is always "repozo".
   repozo captures `program = sys.argv[0]` at *import* time and substitutes
   it into its docstring (the "Usage: %(program)s [options]" line), so we
   must set sys.argv[0] before importing the module.
   What the real console script prints: the generated `.venv/bin/repozo`
   does `sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])`,
   i.e. it keeps argv[0] as the kernel passed it to the interpreter, which
   for a shebang script is the path used to exec it.  Observed with ZODB 6.4:
     - run via PATH or by absolute path:
           "Usage: /abs/path/to/.venv/bin/repozo [options]"
     - run as ./repozo from the bin directory:  "Usage: ./repozo [options]"
     - `python -m ZODB.scripts.repozo`:
           "Usage: /abs/.../site-packages/ZODB/scripts/repozo.py [options]"
   So the reference Usage line depends on how the script was invoked (even
   `repozo` typed at a shell prompt shows the full PATH-resolved path).
   The shim pins it to "Usage: repozo [options]" so tests get a stable
   reference text; compare the Rust binary's help with that line
   normalised, or run it with argv[0] == "repozo".

Exit status and output streams are repozo's own: main() returns None on
success (exit 0); usage errors and RepozoError/OSError leave via sys.exit()
(exit 1 with the message on stderr, or 0 for -h with help on stdout);
any other exception propagates as a traceback with exit 1.
"""

import os
import re
import sys

_NOW_RE = re.compile(r'^(\d{4})-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$')


def _pinned_now():
    """Parse REPOZO_TEST_NOW into a 6-tuple of ints, or None if unset."""
    raw = os.environ.get('REPOZO_TEST_NOW')
    if raw is None or raw == '':
        return None
    m = _NOW_RE.match(raw)
    if m is None:
        sys.stderr.write(
            'repozo_shim: REPOZO_TEST_NOW=%r is not YYYY-MM-DD-HH-MM-SS\n'
            % raw)
        sys.exit(2)
    return tuple(int(g) for g in m.groups())


def main():
    now = _pinned_now()

    # Must happen before the import: repozo evaluates `program = sys.argv[0]`
    # at module level.
    sys.argv[0] = 'repozo'
    from ZODB.scripts import repozo
    repozo.program = 'repozo'  # belt and braces, in case of prior import

    if now is not None:
        def gen_filedate(options, _now=now):
            # Same contract as the original: a 6-tuple (Y, M, D, h, m, s).
            return _now
        # Module-level rebinding is enough: every caller (gen_filename,
        # do_full_backup, do_incremental_backup) looks the name up in the
        # module globals at call time.
        repozo.gen_filedate = gen_filedate

    # Same as the console script: sys.exit(main()).  main() itself calls
    # sys.exit() on errors, which propagates unchanged.
    sys.exit(repozo.main(sys.argv[1:]))


if __name__ == '__main__':
    main()
