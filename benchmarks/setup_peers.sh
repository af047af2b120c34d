#!/usr/bin/env bash
# Install the peer scanners the bulk benchmark compares against, in their own venv so their
# dependencies never mix with fastscan's. Run by hand: benchmarks/setup_peers.sh [VENV_DIR]
set -euo pipefail

VENV="${1:-$(dirname "$0")/.peers}"
PYTHON="${PYTHON:-python3}"

"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --upgrade pip
# Each peer separately: one failing install must not stop the others.
for peer in picklescan modelscan fickling typing_extensions; do
    if ! "$VENV/bin/python" -m pip install "$peer"; then
        echo "warning: could not install $peer; the benchmark will skip it" >&2
    fi
done
"$VENV/bin/python" -m pip list 2>/dev/null | grep -Ei '^(picklescan|modelscan|fickling) ' || true
echo "peers installed in $VENV (bench_bulk.py --peers-venv $VENV)"
