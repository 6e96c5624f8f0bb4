#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh), trains the demo's fine-tuned model once (`mlr train`,
# hybrid batches, about 5 min), builds the demo's data (`mlr demo build`: multilingual-e5-small and
# the fine-tuned model in their compact formats, the XQuAD-R corpus and both models' vectors),
# builds the page with trunk and serves it on http://127.0.0.1:${PORT:-8080}/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/env.sh
mlr_demo_train
mlr_demo_build hybrid
mlr_trunk serve --address "${ADDRESS:-127.0.0.1}" --port "${PORT:-8080}" --no-autoreload
