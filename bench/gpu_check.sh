#!/usr/bin/env bash
# The node agent's GPU check: a control plane on loopback, the agent on this machine, calibration and
# one real matrix-multiply job; prints card model, measured vs datasheet TFLOPS, the job's card-seconds,
# energy and utilization (bench/gpu_check.py). Installs nothing from the network.
#
#   On the GPU machine (Python 3.12 with PyTorch and nvidia-ml-py, no network): first, where PyPI is
#   reachable, `bench/gpu_check_wheels.sh`; carry the checkout with bench/gpu_check_wheels/; then
#   `bench/gpu_check.sh`. Here (no GPU): the same command runs the CPU path (numpy) unchanged.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
wheels="$here/gpu_check_wheels"
python="${PYTHON:-python3}"
if compgen -G "$wheels/suanwang-*.whl" >/dev/null; then
  venv="$(mktemp -d)/venv"
  trap 'rm -rf "$(dirname "$venv")"' EXIT
  # The machine's own PyTorch and nvidia-ml-py stay visible behind the venv's own packages through a
  # .pth file naming the given Python's site directories: --system-site-packages would not do where
  # that Python is itself a virtualenv (its "system" is the base interpreter, without PyTorch).
  "$python" -m venv --without-pip "$venv"
  site_dir="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  "$python" -c 'import os, site; print("\n".join(
      p for p in [*site.getsitepackages(), site.getusersitepackages()] if os.path.isdir(p)))' \
    >"$site_dir/_machine_site.pth"
  "$venv/bin/python" -m pip --version >/dev/null 2>&1 || "$venv/bin/python" -m ensurepip --default-pip >/dev/null
  # Packages the machine already has in a fitting version are used, not reinstalled.
  "$venv/bin/python" -m pip install --quiet --no-index --find-links "$wheels" "suanwang[agent]"
  "$venv/bin/python" -c 'import sys; print("python", sys.version.split()[0]); import importlib.util as u; \
print("torch:", "yes" if u.find_spec("torch") else "no", "· pynvml:", "yes" if u.find_spec("pynvml") else "no")'
  cd "$(mktemp -d)"  # not the checkout: the installed package, not the source tree, is what runs
  "$venv/bin/python" "$here/gpu_check.py"
elif [ -x "$root/.venv/bin/python" ]; then
  "$root/.venv/bin/python" "$here/gpu_check.py"
else
  echo "ERROR: no wheels in $wheels and no $root/.venv: run bench/gpu_check_wheels.sh (or make dev) first" >&2
  exit 1
fi
