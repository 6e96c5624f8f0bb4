#!/usr/bin/env bash
# Installs PyTorch (CPU use of PyPI's CUDA wheel) and sentence-transformers into
# $MLR_CACHE/bench/st, the training benchmark's peer (`mlr-bench train --engines sentence-transformers`).
# Never used by the tests. About 4.5 GB installed (1.8 GB of it NVIDIA libraries that PyPI's torch wheel
# links even on a CPU: `import torch` fails without them); idempotent: a second run takes a second.
# Prints the venv's python.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
venv="$MLR_CACHE/bench/st"
stamp="$venv/.mlr-installed-v1"
if [ ! -f "$stamp" ]; then
    echo "setup_st: installing torch 2.15.0 + sentence-transformers 6.3.0 into $venv (once, ~4.5 GB)" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    pip=("$venv/bin/pip" install -q --disable-pip-version-check)
    "${pip[@]}" --no-deps torch==2.15.0
    "${pip[@]}" filelock typing-extensions sympy networkx jinja2 fsspec mpmath MarkupSafe
    "${pip[@]}" --no-deps 'nvidia-cublas==13.4.1.3.*' 'nvidia-cuda-nvrtc==13.2.86.*' 'nvidia-cuda-runtime==13.2.86.*' \
        'nvidia-cufft==12.2.0.57.*' 'nvidia-nvjitlink>=13.2.86,<14' 'nvidia-cufile==1.17.1.22.*' 'nvidia-cuda-cupti==13.2.86.*' \
        'nvidia-cusparse==12.7.10.12.*' 'nvidia-cudnn-cu13==9.26.0.51' 'nvidia-cusparselt-cu13==0.8.1' \
        'nvidia-nccl-cu13==2.30.7' 'nvidia-nvshmem-cu13==3.7.2'
    "${pip[@]}" --no-deps sentence-transformers==6.3.0 transformers==5.25.0
    "${pip[@]}" 'huggingface-hub>=2.4.0,<3.0' 'tokenizers>=0.23.1,<0.24.0' 'safetensors>=0.8.0' numpy tqdm \
        'regex>=2025.10.22' pyyaml packaging typer scipy scikit-learn
    USE_HUB_KERNELS=0 "$venv/bin/python" -c 'import torch, sentence_transformers; assert not torch.cuda.is_available()'
    touch "$stamp"
fi
echo "$venv/bin/python"
