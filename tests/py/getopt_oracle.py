"""Python's own getopt.getopt, as an oracle for tests/it/getopt_vs_python.rs.

Reads JSON lines on stdin and answers each with one JSON line on stdout
(ASCII only), flushed, so one process serves a whole test run:

    {"args": [...], "short": "BRVvhr:...", "long": ["backup", ...]}
    -> {"opts": [[name, value], ...], "args": [operand, ...]}
    or {"error": GetoptError.msg}
    or {"crash": "<any other exception>"}

Uses only the standard library of the interpreter it runs under.
"""

import getopt
import json
import sys


def main():
    inp = sys.stdin.buffer
    out = sys.stdout
    while True:
        line = inp.readline()
        if not line:
            return
        req = json.loads(line.decode("utf-8"))
        try:
            opts, rest = getopt.getopt(req["args"], req["short"], req["long"])
            res = {"opts": opts, "args": rest}
        except getopt.GetoptError as e:
            res = {"error": e.msg}
        except Exception as e:  # noqa: BLE001 - reported to the test
            res = {"crash": repr(e)}
        out.write(json.dumps(res, ensure_ascii=True) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
