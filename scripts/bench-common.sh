# bench-common.sh -- sourced by the scripts/bench*.sh: the project root,
# the venv (REPOZO_VENV as for scripts/setup-venv.sh, provisioned here) and
# the optional leading number argument every benchmark script takes.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"
#   leading_number SIZE_MB 512 "$@"; shift "$SHIFT"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Same venv location rule as scripts/setup-venv.sh.
VENV="${REPOZO_VENV:-$ROOT/.venv}"
case "$VENV" in
    /*) ;;
    *) VENV="$ROOT/$VENV" ;;
esac

# leading_number NAME DEFAULT ARGS...: sets NAME to ARGS' first word if it
# does not start with '-' (SHIFT=1), else to DEFAULT (SHIFT=0); exits 2
# unless the value is a number.
leading_number() {
    local name="$1" value="$2"
    shift 2
    SHIFT=0
    if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
        value="$1"
        SHIFT=1
    fi
    case "$value" in
        ''|*[!0-9]*) echo "$(basename "$0"): $name must be a number, got '$value'" >&2
                     exit 2 ;;
    esac
    printf -v "$name" '%s' "$value"
}
