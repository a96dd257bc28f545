#!/usr/bin/env bash
# Writes requirements/{runtime,dev,bench}.txt: every distribution each install needs, pinned,
# resolved by pip from pyproject.toml's ranges. Without --upgrade the versions already locked
# stay (they are the ones the tests ran on); with it, pip picks the newest the ranges allow.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=${PYTHON:-.venv/bin/python}
upgrade=0
[[ "${1:-}" == "--upgrade" ]] && upgrade=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
lock() {  # lock NAME EXTRAS
    local name=$1 extras=$2 out=requirements/$1.txt constraint=()
    if [[ $upgrade == 0 ]]; then
        for f in requirements/runtime.txt requirements/dev.txt requirements/bench.txt; do
            [[ -f $f ]] && grep -h '==' "$f" >> "$tmp/constraints.txt"
        done
        [[ -f "$tmp/constraints.txt" ]] && constraint=(--constraint "$tmp/constraints.txt")
    fi
    "$python" -m pip install -q --dry-run --ignore-installed --report "$tmp/$name.json" "${constraint[@]}" ".$extras"
    {
        echo "# pip install -r requirements/$name.txt && pip install --no-deps -e .   (scripts/lock.sh writes this file)"
        "$python" - "$tmp/$name.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
pins = sorted((i["metadata"]["name"], i["metadata"]["version"]) for i in report["install"])
for name, version in pins:
    if name != "otel-health":
        print(f"{name}=={version}")
PY
    } > "$out"
    echo "lock: $out ($(grep -c '==' "$out") distributions)"
}
lock runtime ""
lock dev "[dev,browser]"
lock bench "[dev,browser,bench]"
