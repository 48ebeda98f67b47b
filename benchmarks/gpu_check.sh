#!/usr/bin/env bash
# The GPU check: install what the GPU tests need (dask-cuda, the "cuda" extra of
# pyproject.toml) into the project's venv without changing its torch, then run the tests
# marked gpu (pytest -m gpu) and fail if any of them is skipped: on a GPU machine a skip
# means a missing dependency or an undetected GPU, not a pass. Then benchmarks/gpu_figures.py:
# --cluster cuda end to end on a real volume, the engine / raw network ratio, bf16 and fp16
# speed and differences, written to benchmarks/results/gpu-figures.json.
#
#   benchmarks/gpu_check.sh            # on a machine with a CUDA GPU (and a package index)
#   benchmarks/gpu_check.sh --dry-run  # anywhere, CPU included: prints the install command,
#                                      # collects the gpu tests, installs nothing, and runs
#                                      # gpu_figures.py on the CPU on a few small sections
#
# PYTHON names the interpreter (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."

dry=0
case "${1:-}" in
    --dry-run) dry=1 ;;
    "") ;;
    *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac
py=${PYTHON:-.venv/bin/python}
[[ -x "$py" ]] || { echo "no Python at $py (set PYTHON, or make the venv: see .ci/run)" >&2; exit 2; }

# torch stays what it is: pinned to the installed version while the extra is installed
torch_version=$("$py" -c "import torch; print(torch.__version__)")
install=("$py" -m pip install --quiet -e ".[cuda]" "torch==$torch_version")

# the gpu tests must exist and be selected by the marker
collected=$("$py" -m pytest -q -m gpu --collect-only tests 2>&1 | grep -c "::" || true)
if [[ "$collected" -lt 1 ]]; then
    echo "no tests marked gpu were collected" >&2
    exit 1
fi

if [[ $dry -eq 1 ]]; then
    echo "would run: ${install[*]}"
    echo "would run: $py -m pytest -m gpu -rs tests ($collected gpu tests collected)"
    "$py" -c "import torch; print('cuda available:', torch.cuda.is_available())"
    figures=$(mktemp --suffix=.json)
    "$py" benchmarks/gpu_figures.py --device cpu --quick --json "$figures" > /dev/null
    echo "gpu_figures.py ran on the CPU (--quick): $figures"
    exit 0
fi

"$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else \
'torch sees no CUDA GPU: the gpu tests would all skip')"
"${install[@]}"
"$py" -c "import dask_cuda, torch; print('dask-cuda', dask_cuda.__version__, '| torch', \
torch.__version__, '| GPUs', torch.cuda.device_count())"
[[ $("$py" -c "import torch; print(torch.__version__)") == "$torch_version" ]] || {
    echo "installing the cuda extra changed torch" >&2; exit 1; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
"$py" -m pytest -m gpu -rs tests 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if grep -q "^SKIPPED" "$log"; then
    echo "gpu tests were skipped (see the SKIPPED lines above): that is a failure here" >&2
    exit 1
fi
[[ "$status" -eq 0 ]] || exit "$status"
"$py" benchmarks/gpu_figures.py --device cuda --json benchmarks/results/gpu-figures.json
