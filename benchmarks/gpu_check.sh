#!/usr/bin/env bash
# GPU checks for the training launcher on Ray: the CUDA tests (warm GPU sessions
# through the dispatcher, two-GPU DDP through Ray Train when there are two GPUs) and the launch
# latency benchmark through the dispatcher and a Ray GPU session. Needs a CUDA GPU; prints why and stops without one.
#
#   benchmarks/gpu_check.sh            # from the repository root, or anywhere
#
# MNIST comes from $BIGMODELS_DATA_DIR (default ../shared/mnist next to the repo).
set -euo pipefail
cd "$(dirname "$0")/.."
export BIGMODELS_DATA_DIR="${BIGMODELS_DATA_DIR:-$(cd .. && pwd)/shared/mnist}"
RESULT="${LAUNCH_LATENCY_JSON:-benchmarks/results/launch_latency_cuda.json}"

python3 -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU here: nothing to check')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.device_count(), 'GPU(s)')"

echo "== CUDA tests"
python3 -m pytest -m cuda -rs -q tests/test_dispatcher_control.py tests/test_distributed.py tests/test_runs.py

echo "== launch latency on cuda"
python3 -m benchmarks.launch_latency --device cuda --json "$RESULT"
