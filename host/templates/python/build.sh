#!/bin/sh
# Builds app.wasm from app.py with componentize-py, in the project's own virtual
# environment (.venv, made on first use), or in $SWITCHBOARD_PYTHON's if set.
set -eu
cd "$(dirname "$0")"
python=${SWITCHBOARD_PYTHON:-.venv/bin/python}
python=$(command -v "$python" || echo "$python")
if [ ! -x "$(dirname "$python")/componentize-py" ]; then
  # (Again after an install that failed half-way.)
  [ -x .venv/bin/python ] || python3 -m venv .venv
  python=.venv/bin/python
  "$python" -m pip install -q --disable-pip-version-check -r requirements.txt
fi
"$(dirname "$python")/componentize-py" -d wit -w call-handler componentize app -o app.wasm
