#!/usr/bin/env bash
# GPU tests and benchmarks in one go, on a CUDA machine that has torch but no network and no PyAV.
#
# Before: download the wheels the machine lacks into .whl/ beside the code (see README, "GPU check"):
#   av, cd-fvd, einops, torch-fidelity, pytorch-fid, scikit-image (+ lazy-loader, imageio, tifffile,
#   networkx), pyyaml, jinja2, markupsafe, pytest, pluggy, iniconfig, packaging, pytest-xdist, execnet; for the
#   quality benchmark's references: vbench, pyiqa, openai-clip (built: no wheel on PyPI), objective-metrics, timm, safetensors,
#   huggingface-hub (+ filelock, fsspec, requests, urllib3, idna, certifi, charset-normalizer, tqdm).
# Then: bash benchmarks/gpu_check.sh   (results also under $OUT, or reports/gpu/, when set)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-reports/gpu}
mkdir -p "$out"
wheels=${AIGVE_WHEELS:-.whl}
if ! python3 -c "import av, cdfvd, torch_fidelity" 2>/dev/null; then
  ls "$wheels"/*.whl >/dev/null 2>&1 || { echo "no PyAV here and no wheels in $wheels/"; exit 2; }
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/aigve-site "$wheels"/*.whl || exit 2
  export PYTHONPATH=/tmp/aigve-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD:$PYTHONPATH PYTHONUNBUFFERED=1
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name(0))" || exit 2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"

status=0
# the package is used from the checkout: load the plugin explicitly (no entry point without an install)
python3 -m pytest -p pytest_aigve.plugin -p pytester -q tests/test_gpu.py tests/test_distribution.py \
  tests/test_metrics.py tests/test_decode.py tests/test_stats_and_features.py 2>&1 | tee "$out/gpu-tests.log" \
  || status=1

for precision in fp32 bf16; do
  python3 benchmarks/fvd_throughput.py --device cuda --clips 256 --frames 16 --size 128 --batch 64 \
    --videomae giant --precision "$precision" 2>&1 | tee -a "$out/benchmark.log" || status=1
done
# the decode pipeline against a bare PyAV loop on all cores (needs PyAV from the wheels)
python3 benchmarks/decode_throughput.py --repeat 3 2>&1 | tee -a "$out/benchmark.log" || status=1
# MUSIQ, CLIP B/32 and L/14 towers, DOVER, FasterVQA against their references; a reference whose wheel is absent
# (vbench, pyiqa, openai-clip, objective-metrics, timm, ...: see the script) is skipped with the reason
python3 benchmarks/quality_throughput.py --device cuda --frames 64 --videos 4 --repeat 3 2>&1 \
  | tee -a "$out/benchmark.log" || status=1
exit $status
