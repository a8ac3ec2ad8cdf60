#!/usr/bin/env python3
"""pty_run.py -- run a command on a pseudo-terminal, for the progress tests.

    python3 tests/py/pty_run.py PAUSE_SECONDS COMMAND [ARGS...]

The command's standard input, output and error are the terminal. When its
output shows "failpoint ... reached" (our binary's pause point, see
src/failpoint.rs), wait PAUSE_SECONDS, then type a line to let it go on.
Everything the command wrote to the terminal is copied to our standard
output; our exit status is the command's.
"""

import os
import pty
import select
import subprocess
import sys
import time


def read_some(fd, timeout):
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return None
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the command has exited and closed the terminal
        return b''


def main():
    pause = float(sys.argv[1])
    master, slave = pty.openpty()
    proc = subprocess.Popen(sys.argv[2:], stdin=slave, stdout=slave, stderr=slave,
                            close_fds=True)
    os.close(slave)
    out = b''
    released = False
    while True:
        data = read_some(master, 60)
        if not data:
            break
        out += data
        if not released and b'reached' in out:
            time.sleep(pause)
            os.write(master, b'go\n')
            released = True
    proc.wait()
    sys.stdout.buffer.write(out)
    sys.exit(proc.returncode)


if __name__ == '__main__':
    main()
