#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh), builds the demo's data (`mlr demo build`: the default
# model multilingual-e5-small in f16, the XQuAD-R corpus and its vectors, and any model exported by
# `mlr train`), builds the page with trunk and serves it on http://127.0.0.1:${PORT:-8080}/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/env.sh
mlr_demo_build
mlr_trunk serve --address "${ADDRESS:-127.0.0.1}" --port "${PORT:-8080}" --no-autoreload
