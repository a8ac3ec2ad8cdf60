#!/bin/sh
# zig-cc-shared.sh -- the C compiler scripts/wheel.sh hands to the cc crate
# (CC_x86_64-unknown-linux-gnu, which the cc crate reads before the
# CC_x86_64_unknown_linux_gnu that maturin sets to its zig wrapper).
#
# Why: isal-sys builds ISA-L with autotools and LDFLAGS=-static, and zig
# refuses to link a program -static against glibc ("libc of the specified
# target requires dynamic linking"), so ISA-L's configure stopped at "C
# compiler cannot create executables". Only configure's test programs are
# linked; the library itself is an archive. So -static is dropped and
# everything else goes to maturin's zig wrapper unchanged.
for arg in "$@"; do
    shift
    [ "$arg" = "-static" ] && continue
    set -- "$@" "$arg"
done
if [ -z "${CC_x86_64_unknown_linux_gnu:-}" ]; then
    echo "zig-cc-shared.sh: CC_x86_64_unknown_linux_gnu (maturin's zig cc) is not set" >&2
    exit 1
fi
exec "$CC_x86_64_unknown_linux_gnu" "$@"
