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

cmd_test() {
  need_rust
  need_python
  need_postgres
  need_chromium
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
