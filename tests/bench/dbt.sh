#!/usr/bin/env bash
# Makes dbt available to the benchmark: dbt-core with the dbt-duckdb adapter (PyPI), in a
# virtualenv kept outside the clone (tests/services/venv.sh). Prints the virtualenv's bin
# folder; `dp-bench all` runs `dbt` from it on the same generated project as dp. Idempotent.
set -euo pipefail
exec "$(dirname "$0")/../services/venv.sh" dbt-venv \
  "dbt-core==1.11.16" "dbt-duckdb==1.11.1" "duckdb==1.4.3"
