#!/usr/bin/env bash
# Installs LLaMA-Factory 0.9.5 for the lf rows of benchmarks/train_throughput.py, in its own venv (default
# ../lf-venv beside this checkout), reusing this checkout's .venv torch instead of downloading another one.
#   bash benchmarks/setup_llamafactory.sh [VENV]
# Its pins (transformers <= 5.6, trl <= 0.24, peft 0.18, datasets <= 4.0) conflict with ours, so they go into
# its own site-packages, which come before ours on its sys.path. On a CPU-only torch 2.13 two workarounds:
# torchvision is left out (no wheel matches torch 2.13; a mismatched one breaks `import transformers`) and
# torchaudio, which its data/mm_plugin.py imports unconditionally, is a stub that fails on any use (text-only
# training never uses it). gradio, av, modelscope and hf-transfer (web UI, video, hub downloads) are left out.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${1:-$ROOT/../lf-venv}"
PY="${TAILORLM_PYTHON:-$ROOT/.venv/bin/python}"  # the venv whose torch is reused
"$PY" -m venv "$VENV"
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
"$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > "$SITE/tailorlm-venv.pth"
TORCH="$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')"
echo "torch==$TORCH" > "$VENV/constraints.txt"
"$VENV/bin/pip" install --no-deps llamafactory==0.9.5
"$VENV/bin/pip" install -c "$VENV/constraints.txt" \
    "accelerate>=1.3.0,<=1.11.0" "datasets>=2.16.0,<=4.0.0" einops fastapi fire "matplotlib>=3.7.0" numpy \
    omegaconf packaging pandas "peft>=0.18.0,<=0.18.1" protobuf pydantic pyyaml safetensors scipy sentencepiece \
    sse-starlette tiktoken "torchdata>=0.10.0,<=0.11.0" "transformers>=4.55.0,<=5.6.0,!=4.52.0,!=4.57.0" \
    "trl>=0.18.0,<=0.24.0" "tyro<0.9.0" uvicorn
mkdir -p "$SITE/torchaudio"
cat > "$SITE/torchaudio/__init__.py" <<'STUB'
"""Stub: LLaMA-Factory imports torchaudio unconditionally; no wheel matches this torch and text-only training
never calls it. Any use fails loudly."""


def __getattr__(name):
    raise ImportError(f"torchaudio.{name}: a stub in this venv (text-only LLaMA-Factory benchmark)")
STUB
"$VENV/bin/python" -c 'import torch, llamafactory.train.tuner; print("LLaMA-Factory ready on torch", torch.__version__)'
