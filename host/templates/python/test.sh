#!/bin/sh
# Builds the component, then runs its test against a real `switchboard serve`.
set -eu
cd "$(dirname "$0")"
./build.sh
python=${SWITCHBOARD_PYTHON:-.venv/bin/python}
"$python" -m unittest -v test_app
