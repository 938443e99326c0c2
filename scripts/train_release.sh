#!/usr/bin/env bash
# Reproduce every shipped weight file (gan-s, gan-u, gan-n, vae, gmm) from the dataset, then
# bundle them in advprior/weights/<alias>/ and pin their sha256 in weights_manifest.json.
#
#   scripts/train_release.sh [DATA.npz]       (default data/mocap30_v5.npz; built if missing)
#
# Two trainings run at a time, one CPU thread each; logs and run folders go to runs/release/.
# Rerunning continues unfinished runs from their checkpoints (--resume) and re-exports finished
# ones. Seeds are fixed, so a run on the same machine, torch build and thread count reproduces
# the weights bit-for-bit. See docs/training.md.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA="${1:-data/mocap30_v5.npz}"
RUNS="${RUNS:-runs/release}"
PY="${PYTHON:-python}"
mkdir -p "$RUNS"

if [ ! -f "$DATA" ]; then
    "$PY" -m advprior.cli data build ../shared/data/mocap --out "$DATA"
fi
# Train from a snapshot, so that rebuilding the dataset meanwhile cannot mix two versions.
mkdir -p "$RUNS/data"
SNAPSHOT="$RUNS/data/$(basename "$DATA")"
if [ ! -f "$SNAPSHOT" ]; then
    cp "$DATA" "$SNAPSHOT.tmp" && mv "$SNAPSHOT.tmp" "$SNAPSHOT"
fi
echo "dataset snapshot $SNAPSHOT sha256 $(sha256sum "$SNAPSHOT" | cut -c1-64)"

COMMON=(--data "$SNAPSHOT" --seed 0 --threads 1 --no-progress --resume)
# GAN settings: batch 64, 10 D steps per G step, Adam 2e-4 (0.5, 0.999), whole-pose critic
# width 512 (HMR uses 1024; halved to fit the CPU budget), plus an R1 penalty (gamma 10) on
# real poses, which the paper does not use: on this small dataset it keeps the critic from
# memorising the training poses (docs/training.md, "What the numbers say"). GAN-S also exports
# an exponential moving average of its weights (--ema 0.999), chosen on validation in 0.2.0.
GAN=(--model gan --batch-size 64 --d-steps 10 --disc-hidden 512 --r1 10 --val-every 250
     --ckpt-every 250)

train() {  # name, then advprior-train arguments
    local name="$1"; shift
    OMP_NUM_THREADS=1 "$PY" -m advprior.cli train "${COMMON[@]}" --out "$RUNS/$name" "$@" \
        > "$RUNS/$name.log" 2>&1
    echo "$(date -u +%FT%TZ) finished $name: $(tail -n 1 "$RUNS/$name.log")"
}

(
    train gan-s "${GAN[@]}" --latent sphere --steps 6000 --ema 0.999
    train vae --model vae --batch-size 128 --steps 10000 --val-every 1000 --ckpt-every 1000
    train gmm --model gmm --steps 200
) &
lane1=$!
(
    train gan-u "${GAN[@]}" --latent uniform --steps 5000
    train gan-n "${GAN[@]}" --latent normal --steps 5000
) &
lane2=$!
wait "$lane1"
wait "$lane2"

for alias in gan-s gan-u gan-n vae gmm; do
    "$PY" -m advprior.train.release --alias "$alias" --model-dir "$RUNS/$alias/model" > /dev/null
    echo "bundled $alias"
done
