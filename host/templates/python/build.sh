#!/bin/sh
# Builds app.wasm from app.py with componentize-py, in the project's own virtual
# environment (.venv, made on first use), or in $SWITCHBOARD_PYTHON's if set.
set -eu
cd "$(dirname "$0")"
python=${SWITCHBOARD_PYTHON:-.venv/bin/python}
if [ ! -x "$python" ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
fi
"$(dirname "$python")/componentize-py" -d wit -w call-handler componentize app -o app.wasm
