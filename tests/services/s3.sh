#!/usr/bin/env bash
# Makes the S3-compatible test server available: moto's server (PyPI `moto[s3,server]`), which
# honours conditional writes (If-None-Match: *) under concurrency, and the Python `deltalake`
# reader the tests compare against, in a virtualenv kept outside the clone (venv.sh). Prints
# the virtualenv's bin folder; the tests start `moto_server` from it on 127.0.0.1 and stop it
# when they end. Idempotent.
set -euo pipefail
exec "$(dirname "$0")/venv.sh" s3-venv \
  "moto[s3,server]==5.2.5" "deltalake==1.6.6" "pyarrow==26.0.1"
