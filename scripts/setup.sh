#!/usr/bin/env bash
# Installs what building Switchboard needs beyond rustup: the pinned Rust toolchain
# (rust-toolchain.toml), the wasm32-wasip2
# target that guest components compile to, and with --tests, Debian's Chromium for the
# dashboard's end-to-end test, the Python packages of scripts/requirements-test.txt in
# the project's own virtual environment, target/py (componentize-py among them), and the
# TypeScript SDK's npm packages (componentize-js, jco, esbuild, TypeScript) from its
# lockfile into sdk/js/node_modules. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is not installed; install Rust with rustup first (https://rustup.rs)" >&2
  exit 1
fi
# rust-toolchain.toml pins the compiler, its components and the guest target; this
# installs them (a no-op once they are there).
rustup toolchain install >/dev/null
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  echo "setup: adding the wasm32-wasip2 target" >&2
  rustup target add wasm32-wasip2
fi

if [ "${1:-}" = "--tests" ] && ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing chromium (for the dashboard test)" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: chromium is missing and cannot be installed here (needs root and apt-get);" >&2
    echo "       the dashboard test will fail until it is installed" >&2
  fi
fi

# docker-registry (the distribution registry), for the OCI component tests.
if [ "${1:-}" = "--tests" ] && [ ! -x /usr/bin/docker-registry ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing docker-registry (for the OCI registry tests)" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null
  else
    echo "setup: docker-registry is missing and cannot be installed here (needs root and apt-get);" >&2
    echo "       the OCI registry and fleet tests will fail until it is installed" >&2
  fi
fi

# PostgreSQL, for the shared call store and the fleet tests (a server started by the tests
# on a Unix socket in a temporary directory; the package's own cluster is not used).
if [ "${1:-}" = "--tests" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing postgresql (for the shared call store tests)" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "setup: PostgreSQL is missing and cannot be installed here (needs root and apt-get);" >&2
    echo "       the shared call store and fleet tests will fail until it is installed" >&2
  fi
fi

if [ "${1:-}" = "--tests" ]; then
  venv=target/py
  requirements=scripts/requirements-test.txt
  if [ ! -x "$venv/bin/python" ]; then
    echo "setup: creating the Python environment $venv" >&2
    python3 -m venv "$venv"
  fi
  # Reinstall only when the requirements changed.
  if ! cmp -s "$requirements" "$venv/requirements.installed" 2>/dev/null; then
    echo "setup: installing $requirements into $venv" >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/requirements.installed"
  fi
fi

if [ "${1:-}" = "--tests" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      echo "setup: installing nodejs and npm (for the TypeScript guests)" >&2
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    else
      echo "setup: npm is missing and cannot be installed here (needs root and apt-get)" >&2
      exit 1
    fi
  fi
  # Reinstall only when the lockfile changed.
  if ! cmp -s sdk/js/package-lock.json sdk/js/node_modules/.lock.installed 2>/dev/null; then
    echo "setup: installing the TypeScript SDK's packages into sdk/js/node_modules" >&2
    (cd sdk/js && npm ci --no-audit --no-fund --loglevel=error)
    cp sdk/js/package-lock.json sdk/js/node_modules/.lock.installed
  fi
fi
