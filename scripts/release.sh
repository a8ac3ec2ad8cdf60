#!/usr/bin/env bash
# release.sh -- build the release artifacts of a tagged commit, locally.
#
# Usage: bash scripts/release.sh
#
# Writes into target/release-artifacts/ (emptied first):
#   repozo_rs-VERSION-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl
#       the wheel, built by scripts/wheel.sh (the script CI runs), and
#       checked by scripts/wheel-check.sh: installed without Rust, the
#       demo through it against ZODB's repozo;
#   repozo_rs-VERSION.tar.gz
#       the source distribution (pip builds it where no wheel fits; needs
#       a Rust toolchain there);
#   repozo-rs-VERSION-x86_64-linux.tar.gz
#       the same binary as the wheel's (glibc 2.17 and later), with the
#       README, the CHANGELOG, the man page and shell completions that it
#       prints (`--man`, `--completions=SHELL`);
#   SHA256SUMS
#       of the three, for `sha256sum -c SHA256SUMS`.
# It publishes nothing: uploading is a separate, manual step
# (docs/releasing.md).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

OUT="$ROOT/target/release-artifacts"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
[ -n "$version" ] || { echo "release.sh: no version in Cargo.toml" >&2; exit 1; }
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    echo "release.sh: WARNING: the work tree has uncommitted changes" >&2
fi
rm -rf "$OUT"
mkdir -p "$OUT"

echo "== wheel (scripts/wheel.sh)"
wheel=$(bash scripts/wheel.sh | tail -1)
echo "== wheel check (scripts/wheel-check.sh)"
bash scripts/wheel-check.sh "$wheel"
cp "$wheel" "$OUT/"

echo "== source distribution"
"$ROOT/target/wheel-venv/bin/maturin" sdist --out "$OUT" >&2

echo "== binary tarball"
name="repozo-rs-$version-x86_64-linux"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name/completions"
# The wheel's own binary, so that both artifacts hold the same bytes.
"$ROOT/target/wheel-venv/bin/python" - "$wheel" "$stage/$name/repozo-rs" <<'PYEOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    [member] = [n for n in z.namelist() if n.endswith(".data/scripts/repozo-rs")]
    with z.open(member) as src, open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
PYEOF
chmod 755 "$stage/$name/repozo-rs"
bin="$stage/$name/repozo-rs"
"$bin" --version | grep -q "^repozo-rs $version " \
    || { echo "release.sh: the binary is not repozo-rs $version" >&2; exit 1; }
"$bin" --man > "$stage/$name/repozo-rs.1"
"$bin" --completions=bash > "$stage/$name/completions/repozo-rs.bash"
"$bin" --completions=zsh > "$stage/$name/completions/_repozo-rs"
"$bin" --completions=fish > "$stage/$name/completions/repozo-rs.fish"
cp README.md CHANGELOG.md "$stage/$name/"
for f in LICENSE LICENSE.txt COPYING; do
    [ -f "$f" ] && cp "$f" "$stage/$name/"
done
# Reproducible: fixed owner, mtime of the commit, sorted names.
mtime=$(git log -1 --format=%ct 2>/dev/null || date +%s)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$mtime" \
    -C "$stage" -cf - "$name" | gzip -9n > "$OUT/$name.tar.gz"

echo "== checksums"
(cd "$OUT" && sha256sum -- *.whl *.tar.gz > SHA256SUMS && sha256sum -c SHA256SUMS)
ls -l "$OUT"
echo "release.sh: artifacts of $version in $OUT (nothing was published)"
