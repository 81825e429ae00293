#!/usr/bin/env bash
# Gather what bench/gpu_check.sh installs on the GPU machine, which has no network: this project as a
# wheel and every dependency (with the `agent` extra) as wheels for CPython 3.12 on x86-64 Linux, into
# bench/gpu_check_wheels/ (git-ignored). Run it here, where PyPI is reachable.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
dest="$here/gpu_check_wheels"
pip="${PIP:-$root/.venv/bin/pip}"
rm -rf "$dest"
mkdir -p "$dest"
"$pip" wheel --quiet --no-deps --wheel-dir "$dest" "$root"
wheel="$(ls "$dest"/suanwang-*.whl)"
"$pip" download --quiet --dest "$dest" --only-binary=:all: \
  --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform linux_x86_64 --platform any \
  "${wheel}[agent]"
echo "$(ls "$dest" | wc -l) wheels, $(du -sh "$dest" | cut -f1) in $dest"
