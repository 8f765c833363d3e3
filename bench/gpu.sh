#!/usr/bin/env bash
# GPU benchmark: bench/run.py --device cuda, in well under 5 minutes. Installs nothing.
#
#   bench/gpu.sh [OUT_DIR]        (default: $OUT, else bench/results)
#
# Env: PYTHON (default .venv/bin/python, else python3), IMAGES (default 20000),
#      WORKERS (decode workers, default cores - 1), BATCH (default 256), SHARD (default 4096),
#      WHEELS (a folder of wheels to install offline first, for missing light packages),
#      DRAWN (distinct drawn images, default 2000), T_FULL / T_SHORT (time limits of the runs),
#      DEVICE=cpu to smoke-test this script on a machine without a GPU, e.g.
#      DEVICE=cpu IMAGES=64 DRAWN=32 BATCH=8 SHARD=32 WORKERS=1 T_FULL=600 T_SHORT=300 bench/gpu.sh /tmp/gpu-smoke
# Writes OUT_DIR/gpu.json (bf16, one CPU decode per image feeding model, colour and thumbnails),
# gpu-nvjpeg.json (bf16, nvjpeg for the model's pixels), gpu-fp32.json (fp32) and gpu.log; ends
# with one line: img/s of the bare forward and of the embed stage, and CPU ms per image outside the model.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-bench/results}}
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu.log"
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
CORES=$(nproc)
IMAGES=${IMAGES:-20000}
WORKERS=${WORKERS:-$(( CORES > 1 ? CORES - 1 : 1 ))}
BATCH=${BATCH:-256}
SHARD=${SHARD:-4096}
DRAWN=${DRAWN:-2000}
T_FULL=${T_FULL:-180}   # seconds for run 1; runs 2 and 3 get T_SHORT each: 290 s at most in all
T_SHORT=${T_SHORT:-55}
DEVICE=${DEVICE:-cuda}
START=$(date +%s)
exec > >(tee -a "$LOG") 2>&1
echo "== catalog-intel GPU benchmark: $(date -u +%FT%TZ), $CORES cores, python: $PY"

if [ -n "${WHEELS:-}" ]; then
  echo "installing from $WHEELS (offline) ..."
  "$PY" -m pip install --no-index --find-links "$WHEELS" -q "$WHEELS"/*.whl || echo "WARNING: offline install failed"
fi

# 1. What is there? (never installs; says what is missing)
DEVICE="$DEVICE" "$PY" - <<'EOF' || { echo "== stopping: see MISSING above (packages: pip install -e '.[dev]' where there is network, or WHEELS=dir)"; exit 2; }
import importlib, sys
need = {"torch": "torch (CUDA build)", "torchvision": "torchvision (matching torch)", "open_clip": "open_clip_torch",
        "polars": "polars", "numpy": "numpy", "PIL": "pillow", "pydantic": "pydantic"}
missing = []
for mod, pkg in need.items():
    try:
        importlib.import_module(mod)
    except Exception as exc:  # noqa: BLE001
        missing.append(f"  {pkg:<28} import {mod}: {type(exc).__name__}: {exc}")
if missing:
    print("MISSING python packages:\n" + "\n".join(missing))
    sys.exit(1)
import torch, torchvision
print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, CUDA build {torch.version.cuda}")
import os
if os.environ["DEVICE"] == "cpu":
    print("DEVICE=cpu: smoke test of this script, no GPU figures")
    sys.exit(0)
if not torch.cuda.is_available():
    print("MISSING: torch.cuda.is_available() is False (no GPU visible, or a CPU-only torch build)")
    sys.exit(1)
print(f"GPU: {torch.cuda.get_device_name(0)}, bf16 supported: {torch.cuda.is_bf16_supported()}")
nvjpeg = hasattr(torch.ops.image, "decode_jpegs_cuda")
print(f"nvjpeg decode (torchvision.io.decode_jpeg on cuda): {'yes' if nvjpeg else 'NO - the GPU-decode rows will be missing'}")
EOF

CKPT=${CKPT:-${TMPDIR:-/tmp}/vitb32-random.pt}
COMMON=(--device "$DEVICE" --images "$IMAGES" --drawn "$DRAWN" --batch-size "$BATCH" --decode-workers "$WORKERS"
        --shard-size "$SHARD" --decode-images 2000 --checkpoint "$CKPT" --rerun-images 0
        --catalog-dir "${TMPDIR:-/tmp}/catalog-intel-bench-catalog")

# 2. Full stage table: bf16 autocast; one CPU decode per image feeds the model, the pixel colour and the
#    thumbnails (gpu_decode=auto is off when those are wanted). Generates the catalog: ~10 s on 16 cores.
echo "== run 1/3: bf16, gpu_decode=auto (CPU decode in $WORKERS workers: pixels, colour, thumbnails)"
timeout "$T_FULL" "$PY" bench/run.py "${COMMON[@]}" --precision bf16 --gpu-decode auto \
  --skip llm,prefect,rerun,rss --json "$OUT_DIR/gpu.json" || echo "run 1 failed or timed out (rc=$?)"

# 3. The embed stage with nvjpeg decoding the model's pixels (colour and thumbnails then need a second, CPU
#    decode: not in this figure), and fp32: the forward/embed rows only.
echo "== run 2/3: bf16, gpu_decode=on (nvjpeg for the model's pixels)"
timeout "$T_SHORT" "$PY" bench/run.py "${COMMON[@]}" --precision bf16 --gpu-decode on --embed-images $(( 2 * SHARD )) \
  --skip decode,classify,store,hash,llm,prefect,rerun,rss --json "$OUT_DIR/gpu-nvjpeg.json" \
  || echo "run 2 failed or timed out (rc=$?)"
echo "== run 3/3: fp32, gpu_decode=auto"
timeout "$T_SHORT" "$PY" bench/run.py "${COMMON[@]}" --precision fp32 --gpu-decode auto --embed-images $(( 2 * SHARD )) \
  --skip decode,classify,store,hash,llm,prefect,rerun,rss --json "$OUT_DIR/gpu-fp32.json" \
  || echo "run 3 failed or timed out (rc=$?)"
"$PY" bench/gpu_figures.py "$OUT_DIR/gpu.json" || true
nvidia-smi --query-gpu=name,memory.used,memory.total,utilization.gpu --format=csv 2>/dev/null || true
echo "== done in $(( $(date +%s) - START )) s; results in $OUT_DIR"
