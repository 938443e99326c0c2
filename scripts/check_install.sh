#!/usr/bin/env bash
# advprior as a new user gets it: build the sdist and the wheel, install the wheel (with the
# viz extra and the CPU torch) into a fresh virtual environment, and from an empty folder outside
# the checkout, with an empty HOME and HF_HUB_OFFLINE=1, run the README's commands:
#
#   scripts/check_install.sh            (PYTHON=python3.11 to choose the interpreter)
#
# Needs pip to reach an index (PyPI, or a local mirror through pip's own configuration) for
# advprior's dependencies and the `build` package; a few minutes (pip installs torch). Prints one
# line per check and exits non-zero at the first failure. tests/test_packaging.py checks the
# archives' contents without installing anything; this script is the end-to-end check before a
# release.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
PY="${PYTHON:-python3}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

step() { printf '== %s\n' "$*"; }

step "build the sdist and the wheel"
"$PY" -m venv "$tmp/build-env"
"$tmp/build-env/bin/pip" install -q build
"$tmp/build-env/bin/python" -m build -q --outdir "$tmp/dist" "$repo" >/dev/null
wheel=$(ls "$tmp"/dist/advprior-*.whl)
ls -l "$tmp/dist"

step "install the wheel into a fresh venv (torch==2.13.0: the CPU build)"
"$PY" -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q torch==2.13.0 "$wheel[viz]"
bin="$tmp/venv/bin"

mkdir "$tmp/home" "$tmp/work"
cd "$tmp/work"
export HOME="$tmp/home" HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
unset PYTHONPATH ADVPRIOR_CACHE ADVPRIOR_MANIFEST

step "import advprior: from the venv, no optional extra imported"
"$bin/python" - <<'EOF'
import sys, time
t = time.perf_counter()
import advprior
print(f"import advprior: {time.perf_counter() - t:.2f} s from {advprior.__file__}")
assert "site-packages" in advprior.__file__, advprior.__file__
heavy = sorted(m for m in ("matplotlib", "onnx", "onnxruntime", "scipy", "sklearn",
                           "tensorboard") if m in sys.modules)
assert not heavy, f"import advprior imports {heavy}"
EOF

step "README: advprior sample --png"
"$bin/advprior" sample --model gan-s -n 16 --seed 0 --out samples.npz --png samples.png
test -s samples.npz && test -s samples.png

step "README: the Usage snippet's first lines, offline"
"$bin/python" -c "
import torch
from advprior import PosePrior
prior = PosePrior.from_pretrained('gan-s')
g = torch.Generator().manual_seed(0)
body_pose = prior.sample(8, generator=g)
z = prior.invert(body_pose)
print('sample', tuple(body_pose.shape), 'invert', tuple(z.shape))
"

step "README: Replacing VPoser (v1, v2, SMPLify's GMM file, the stand-in folder)"
"$bin/python" -c "
import torch, smplx
from advprior import load_pretrained
from advprior.body import standin_folder
from advprior.compat import load_model, load_vposer
vposer, ps = load_vposer('gan-s')
print('v1', tuple(vposer.decode(torch.zeros(2, 32), output_type='aa').view(2, -1).shape))
vp, _ = load_model('gan-s', remove_words_in_model_weights='vp_model.', disable_grad=True)
print('v2', tuple(vp.decode(torch.zeros(2, 32))['pose_body'].shape))
load_pretrained('gmm').export_smplify('gmm_08.pkl')
print('smplx', tuple(smplx.create(str(standin_folder()), model_type='smpl')().vertices.shape))
"

step "CLI: every --help, and errors are one line on stderr"
for c in sample data train fit eval export; do "$bin/advprior" "$c" --help >/dev/null; done
for args in "sample --model gan-x" "data info missing.npz" "fit missing.json --camera 1000,512,512"; do
    set +e
    # shellcheck disable=SC2086
    "$bin/advprior" $args 2>err.txt >/dev/null
    rc=$?
    set -e
    lines=$(wc -l <err.txt)
    if [ "$rc" = 0 ] || [ "$lines" != 1 ] || grep -q Traceback err.txt; then
        echo "advprior $args: exit $rc, $lines stderr lines:" >&2
        cat err.txt >&2
        exit 1
    fi
    echo "advprior $args -> exit $rc: $(cat err.txt)"
done

step "nothing written outside the work folder but the user's caches"
find "$tmp/home" -type f | sed "s|$tmp/home|~|" | grep -v -E '^~/\.cache/(advprior|matplotlib)/' && {
    echo "unexpected files in HOME (above)" >&2
    exit 1
}
echo "check_install: all checks passed"
