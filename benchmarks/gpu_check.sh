#!/usr/bin/env bash
# Every GPU check of issue 13 in one run (a few minutes on one H200), from the repository root.
#
#   bash benchmarks/gpu_check.sh prepare    # on a machine with PyPI: the wheels the GPU machine lacks (DESIGN.md
#                                           # section 11) into build/gpu_wheels, the synthetic data into build/gpu_check
#   bash benchmarks/gpu_check.sh [OUT]      # on the GPU machine (carry build/): installs those wheels if needed, then
#     1. stage 1 (ViT-B), stage 2 (128 frames, 75% masked, last 4 layers) and video-to-text (lm=tiny) for a few
#        steps each, under trainer=gpu and under trainer=fsdp;
#     2. the video-to-text system on device=cuda with batched inference (predictions for 8 test videos);
#     3. benchmarks/encoder_gpu.py --quick --levers (ours vs VivitModel / VideoMAEModel, targets as PASS / FAIL).
#   DRY=1 bash benchmarks/gpu_check.sh OUT  # the same commands on a CPU at tiny sizes (FSDP skipped: Lightning's
#                                           # FSDP needs GPUs), to check the script itself before spending GPU time
# Each step prints one line `CHECK <name> ok|FAILED (<seconds> s)`; logs go to OUT/<name>.log; exit 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=build/gpu_check
SYN="synthetic.n_train=32 synthetic.n_val=8 synthetic.n_test=8"
PY=${PYTHON:-python}

if [ "${1:-}" = "prepare" ]; then
    set -e
    W=build/gpu_wheels
    mkdir -p "$W"
    pip download -q --only-binary=:all: --no-deps --python-version 3.12 --platform manylinux2014_x86_64 \
        --platform manylinux_2_17_x86_64 -d "$W" hydra-core==1.3.8 omegaconf==2.3.0 jsonlines attrs PyYAML decord==0.6.0
    pip download -q --no-deps --no-binary=:all: -d "$W" antlr4-python3-runtime==4.9.3
    "$PY" -c "from evals.synthetic import SyntheticConfig, generate
generate(SyntheticConfig(n_train=32, n_val=8, n_test=8), '$ROOT/data/synthetic')"
    du -sh build/gpu_wheels "$ROOT"
    exit 0
fi

OUT=${1:-outputs/gpu_check}
mkdir -p "$OUT"
if ! "$PY" -c "import hydra, omegaconf, jsonlines, decord" 2>/dev/null; then
    pip install -q --no-index --no-build-isolation --find-links build/gpu_wheels \
        hydra-core omegaconf jsonlines attrs PyYAML decord antlr4-python3-runtime || exit 1
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ "${DRY:-0}" = 1 ]; then
    STRATEGIES="cpu"; MODEL="model=tiny"; DEVICE=cpu
    SIZES="model.encoder.width=32 model.encoder.depth=2 model.encoder.heads=2 model.encoder.mlp_dim=64 model.encoder.image_size=32 model.text.num_hidden_layers=1 tuning.k=1"
    BENCH="--device cpu --geometry tiny --frames 4 --batch 2 --steps 1"
else
    STRATEGIES="gpu fsdp"; MODEL="model=vit_b"; DEVICE=cuda; SIZES=""; BENCH="--quick --levers"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
COMMON="paths.root=$ROOT $SYN trainer.max_steps=6 trainer.val_check_interval=3 trainer.log_every_n_steps=3 checkpoint_every=6 trainer.enable_progress_bar=false"
FAILED=0

check() {  # check NAME COMMAND...
    local name=$1 t0=$SECONDS
    shift
    if "$@" >"$OUT/$name.log" 2>&1; then
        echo "CHECK $name ok ($((SECONDS - t0)) s)"
    else
        echo "CHECK $name FAILED ($((SECONDS - t0)) s): tail of $OUT/$name.log"
        tail -n 15 "$OUT/$name.log"
        FAILED=1
    fi
}

for S in $STRATEGIES; do
    R=$ROOT/outputs/train
    check "stage1_$S" "$PY" -m longvid.train experiment=stage1_short $MODEL $SIZES trainer=$S run_name=stage1_$S $COMMON
    check "stage2_$S" "$PY" -m longvid.train experiment=stage2_long $MODEL $SIZES trainer=$S run_name=stage2_$S \
        init_from=$R/stage1_$S/model $COMMON
    check "v2t_$S" "$PY" -m longvid.train_v2t experiment_v2t=summarize trainer=$S lm=tiny lm.pretrain_steps=20 \
        run_name=v2t_$S encoder_path=$R/stage2_$S/model $COMMON
done

S=${STRATEGIES%% *}
check "v2t_system_$DEVICE" "$PY" - <<EOF
import time
from evals.synthetic import SyntheticBenchmark
from longvid.systems import V2TSummarizer

samples = SyntheticBenchmark("$ROOT/data/synthetic", task="summarization", split="test",
                             generator=dict(n_train=32, n_val=8, n_test=8)).load()
system = V2TSummarizer(checkpoint="$ROOT/outputs/train/v2t_$S/model", device="$DEVICE", batch_size=8, max_new_tokens=32)
system.prepare(samples=samples)
t0 = time.perf_counter()
preds = list(system.predict(samples))
assert len(preds) == len(samples) and all(p.text is not None for p in preds), preds
print(f"{len(preds)} predictions on $DEVICE in {time.perf_counter() - t0:.1f} s; first: {preds[0].text[:80]!r}")
EOF
check "encoder_benchmark" "$PY" benchmarks/encoder_gpu.py $BENCH --out "$OUT"
[ -f "$OUT/encoder_gpu.md" ] && cat "$OUT/encoder_gpu.md"
exit $FAILED
