#!/bin/sh
# Builds the component, then runs its test against a real `switchboard serve`.
set -eu
cd "$(dirname "$0")"
./build.sh
python=${SWITCHBOARD_PYTHON:-.venv/bin/python}
[ -x "$(dirname "$(command -v "$python" || echo "$python")")/componentize-py" ] || python=.venv/bin/python
"$python" -m unittest -v test_app
