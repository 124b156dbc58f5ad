#!/usr/bin/env bash
# Makes the S3-compatible test server available: moto's server (PyPI `moto[s3,server]`), which
# honours conditional writes (If-None-Match: *) under concurrency, and the Python `deltalake`
# reader the tests compare against. Both go into a virtualenv kept outside the clone, so later
# runs start warm. Prints the virtualenv's bin folder; the tests start `moto_server` from it on
# 127.0.0.1 and stop it when they end. Idempotent.
set -euo pipefail

VENV="${DP_SERVICES_DIR:-$HOME/.cache/dp-services}/s3-venv"
MOTO_VERSION="5.2.5"
DELTALAKE_VERSION="1.6.6"
PYARROW_VERSION="26.0.1"

READY="$VENV/.dp-ready-$MOTO_VERSION-$DELTALAKE_VERSION-$PYARROW_VERSION"
if [[ -f "$READY" ]]; then
  echo "$VENV/bin"
  exit 0
fi

# Tests run in parallel: one installs, the others wait for it.
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9
if [[ -f "$READY" ]]; then
  echo "$VENV/bin"
  exit 0
fi
rm -rf "$VENV"

echo "s3.sh: installing moto $MOTO_VERSION and deltalake $DELTALAKE_VERSION into $VENV" >&2
python3 -m venv "$VENV" >&2
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  "moto[s3,server]==$MOTO_VERSION" "deltalake==$DELTALAKE_VERSION" "pyarrow==$PYARROW_VERSION" >&2
touch "$READY"
echo "$VENV/bin"
