#!/usr/bin/env bash
# The long fuzz run: every target of the crates' tests/fuzz.rs (the mlr-fuzz harness: each parser
# and loader that takes user bytes, on arbitrary bytes and on damaged valid files) with 100,000
# cases each, or as many as the first argument says. Writes results/fuzz/fuzz.json and fuzz.md:
# per target the cases run, the failures (panics, broken invariants, absurd allocations), the
# share of inputs the parser accepted and the seconds taken.
#
#   bash scripts/fuzz.sh            # 100,000 cases per target
#   bash scripts/fuzz.sh 5000       # a shorter run
#   MLR_FUZZ_SEED=7 bash scripts/fuzz.sh   # another stream of inputs (default 1; the test suite uses 0)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

cases="${1:-100000}"
seed="${MLR_FUZZ_SEED:-1}"
out=results/fuzz
mkdir -p "$out"
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Every default member's fuzz target in one invocation: the same features as scripts/test.sh's
# `cargo test --release`, so its build is reused. One test thread, so each target's seconds are
# its own.
start=$(date +%s)
set +e
MLR_FUZZ_CASES="$cases" MLR_FUZZ_SEED="$seed" \
    cargo test --release --test fuzz -- --nocapture --test-threads 1 2>&1 | tee "$log" | grep --line-buffered -E 'fuzz [^:]+: [0-9]+ cases|^test result|panicked|minimal input'
status=${PIPESTATUS[0]}
set -e
seconds=$(( $(date +%s) - start ))

command="MLR_FUZZ_SEED=$seed bash scripts/fuzz.sh $cases"
[ "$seed" = 1 ] && command="bash scripts/fuzz.sh $cases"
python3 - "$log" "$out" "$cases" "$seed" "$seconds" "$status" "$command" <<'EOF'
import json, os, re, sys

log, out, cases, seed, seconds, status, command = sys.argv[1:]
# libtest prints `test <name> ... ` before a test's own output on the same line.
line = re.compile(r"fuzz (?P<target>[^:]+): (?P<cases>\d+) cases, (?P<failures>\d+) failures, "
                  r"(?P<accepted>[\d.]+)% accepted, seed (?P<seed>\d+), (?P<seconds>[\d.]+) s \((?P<crate>[\w-]+)\)$")
targets = []
for text in open(log, encoding="utf-8", errors="replace"):
    m = line.search(text.rstrip("\n"))
    if m:
        targets.append({
            "crate": m["crate"], "target": m["target"], "cases": int(m["cases"]), "failures": int(m["failures"]),
            "accepted_percent": float(m["accepted"]), "seconds": float(m["seconds"]), "seed": int(m["seed"]),
        })
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
machine = f"{model}, {os.cpu_count()} cores, {os.uname().sysname.lower()} {os.uname().machine}"
# Other jobs may share the machine: the seconds are only as good as the CPU the run had.
load15 = float(open("/proc/loadavg").read().split()[2])
result = {
    "command": command,
    "machine": machine,
    "cases_per_target": int(cases),
    "seed": int(seed),
    "exit_status": int(status),
    "total_seconds": int(seconds),
    "load_average_15min_at_end": load15,
    "total_cases": sum(t["cases"] for t in targets),
    "total_failures": sum(t["failures"] for t in targets),
    "targets": targets,
}
with open(os.path.join(out, "fuzz.json"), "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")
rows = "\n".join(
    f"| {t['crate']} | {t['target']} | {t['cases']:,} | {t['failures']} | {t['accepted_percent']:.1f} % | {t['seconds']:.1f} |"
    for t in targets)
verdict = ("every target ran its cases without a failure" if int(status) == 0 and result["total_failures"] == 0
           else f"FAILED (cargo exit status {status}; see the failing target's minimal input in the run's output)")
md = f"""# Fuzzing the parsers and loaders

Machine: {machine}; 15-minute load average at the end of the run {load15:.2f} (other jobs running
beside it make the seconds pessimistic).

Command: `{command}` (`cargo test --release --test fuzz` over the workspace's default members with
`MLR_FUZZ_CASES={cases}`, `MLR_FUZZ_SEED={seed}`, one test thread).

Each target feeds one parser or loader arbitrary bytes and damaged valid files (mlr-fuzz: bytes
flipped, set, inserted, deleted, duplicated, truncated, words set to boundary values; in text,
numbers replaced by huge, NaN or Infinity literals, strings by odd ones, values nested 300 deep,
lines duplicated, dropped or swapped), and fails on a panic, on an accepted input that breaks the
parser's invariants, or on one allocation above 64 MiB. *Accepted* is the share of inputs the
parser took (their invariants checked); the rest were refused with an error.

Result: {verdict}; {result['total_cases']:,} cases in {len(targets)} targets, {seconds} s in all.

| crate | target | cases | failures | accepted | seconds |
|---|---|---:|---:|---:|---:|
{rows}
"""
with open(os.path.join(out, "fuzz.md"), "w") as f:
    f.write(md)
print(f"wrote {out}/fuzz.json and {out}/fuzz.md: {len(targets)} targets, {result['total_cases']} cases, "
      f"{result['total_failures']} failures, {seconds} s")
EOF
exit "$status"
