#!/usr/bin/env bash
# A Python virtualenv kept outside the clone (under $DP_SERVICES_DIR, default
# ~/.cache/dp-services), made once with the pinned packages given: later runs start warm.
# Prints its bin folder. Concurrent callers wait for the one that installs. Idempotent.
#   venv.sh NAME PACKAGE==VERSION...
set -euo pipefail

NAME="$1"
shift
VENV="${DP_SERVICES_DIR:-$HOME/.cache/dp-services}/$NAME"
READY="$VENV/.dp-ready-$(echo "$*" | md5sum | cut -c1-16)"
if [[ -f "$READY" ]]; then
  echo "$VENV/bin"
  exit 0
fi

mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9
if [[ -f "$READY" ]]; then
  echo "$VENV/bin"
  exit 0
fi
rm -rf "$VENV"

echo "venv.sh: installing $* into $VENV" >&2
python3 -m venv "$VENV" >&2
"$VENV/bin/pip" install --quiet --disable-pip-version-check "$@" >&2
touch "$READY"
echo "$VENV/bin"
