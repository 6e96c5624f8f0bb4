#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh), builds the demo page with trunk and serves it on
# http://127.0.0.1:${PORT:-8080}/ with the default model (multilingual-e5-small).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/env.sh
mlr_trunk serve --address "${ADDRESS:-127.0.0.1}" --port "${PORT:-8080}" --no-autoreload
