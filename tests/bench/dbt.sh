#!/usr/bin/env bash
# Makes dbt available to the benchmark: dbt-core with the dbt-duckdb adapter (PyPI), in a
# virtualenv kept outside the clone so that later runs start warm. Prints the virtualenv's bin
# folder; `dp-bench all` runs `dbt` from it on the same generated project as dp. Idempotent.
set -euo pipefail

VENV="${DP_SERVICES_DIR:-$HOME/.cache/dp-services}/dbt-venv"
DBT_CORE_VERSION="1.11.16"
DBT_DUCKDB_VERSION="1.11.1"
DUCKDB_VERSION="1.4.3"

READY="$VENV/.dp-ready-$DBT_CORE_VERSION-$DBT_DUCKDB_VERSION-$DUCKDB_VERSION"
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

echo "dbt.sh: installing dbt-core $DBT_CORE_VERSION and dbt-duckdb $DBT_DUCKDB_VERSION into $VENV" >&2
python3 -m venv "$VENV" >&2
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  "dbt-core==$DBT_CORE_VERSION" "dbt-duckdb==$DBT_DUCKDB_VERSION" "duckdb==$DUCKDB_VERSION" >&2
touch "$READY"
echo "$VENV/bin"
