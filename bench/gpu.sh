#!/usr/bin/env bash
# The GPU checks of mqbench.kernels in one command that fits a 10-minute call, for a CUDA machine whose
# python3 has PyTorch and Triton but no network:
#   1. the notebooks' `#| cuda` tests (bfloat16 at real sizes for every kernel; 30 training steps of the
#      decoder on the kernels against PyTorch) with every other test cell of those notebooks, compiled;
#   2. bench/kernels.py on the shapes its targets name, attention first, stopped after --max-seconds;
#   3. bench/features.py on a quarter-hour synthetic day (the torch feature path with and without its kernel).
# Output in $OUT (default bench/results): gpu-tests.log, kernels-<GPU>.json and .md, features-<GPU>.json.
#
#   bash bench/gpu.sh wheels    # here, where PyPI answers: nbdev (to run the notebooks) and Liger-Kernel
#                               # (one of the comparisons) as Python 3.12 wheels in .whl/, which git ignores
#   bash bench/gpu.sh           # there, from a checkout with .whl/ beside it (a git-ignored folder: name it
#                               # among the paths a remote run carries)
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = wheels ]; then
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
  # no dependencies taken from pip's resolver: it would bring torch and triton, which the GPU machine has
  # (in its own build) and which must not be shadowed, nor what it already has (pyyaml, six, pygments)
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    "nbdev==2.4.14" "fastcore>=1.12.3,<1.13" "execnb<0.2" "ghapi<1.1" fastgit asttokens astunparse watchdog \
    ipython ipython_pygments_lexers jedi parso matplotlib-inline traitlets pexpect ptyprocess prompt_toolkit wcwidth \
    stack_data executing pure_eval decorator liger-kernel
  ls .whl
  exit
fi

OUT=${OUT:-bench/results}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="$PYTHONPATH:/tmp/site" PATH="/tmp/site/bin:$PATH"
fi
GPU=$(python3 -c "import torch; print(torch.cuda.get_device_name().replace(' ', '-'))") || { echo "no CUDA device"; exit 1; }
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
  if command -v nbdev_test >/dev/null; then
    # the notebooks' tests run compiled here (DEV is cuda in each of them); Triton compiles on the CPU, one
    # notebook per worker, and a fresh machine starts with an empty cache: some 120 kernels at ~1.5 s each
    timeout 190 nbdev_test --flags cuda --n_workers 8 --timing --path nbs --file_re '(08_kernels|08_testing|09_model).*'
    echo "notebook tests: exit $?"
  else
    echo "nbdev is not installed here: run 'bash bench/gpu.sh wheels' where PyPI answers, and bring .whl/"
  fi
} 2>&1 | tee "$OUT/gpu-tests.log"

timeout 240 python3 bench/kernels.py --presets small,base,base-d128 --lengths 2048,8192 --max-seconds 190 \
  --out "$OUT/kernels-$GPU.json"
timeout 90 python3 bench/features.py --n-symbols 8 --hours 0.25 --repeats 3 --out "$OUT/features-$GPU.json"
