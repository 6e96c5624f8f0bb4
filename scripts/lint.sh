#!/usr/bin/env bash
# The lints a change must pass before it is committed: rustfmt (also run by scripts/test.sh) and
# clippy with every warning an error, on the native workspace and its tests. Clippy is not in
# scripts/test.sh because a cold clippy pass builds every dependency once more (check mode), which
# the fresh-machine test budget cannot pay; it runs in its own target directory so that it never
# invalidates the release build. Debian's toolchain needs `apt-get install rust-web-clippy`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
cargo fmt --all --check
CARGO_TARGET_DIR="$MLR_CACHE/target-check" cargo clippy --workspace --tests -- -D warnings
echo "lint: rustfmt and clippy clean"
