#!/usr/bin/env python3
"""The browser engines of `mlr-bench encode`, in headless Chromium driven through ChromeDriver:

- mlr-wasm-webgpu / mlr-wasm-cpu: mlr's encoder compiled to wasm (app/src/bin/bench.rs bound by
  wasm-bindgen, loaded by scripts/bench_browser/mlr.html; see scripts/bench.sh) on WebGPU (burn wgpu + the mlr kernels) and on the wasm CPU
  (burn ndarray);
- transformersjs-webgpu / transformersjs-wasm: transformers.js (npm @huggingface/transformers) on
  the ONNX graph of the same weights (scripts/build_onnx.py), with its WebGPU and WASM backends
  (scripts/bench_browser/transformers.js);
- mlr-wasm-cpu-threads / transformersjs-wasm-threads: the two wasm CPU engines on every core the
  browser reports (mlr's threaded build, app/src/bin/bench_mt.rs in a worker, loaded by
  scripts/bench_browser/mlr-mt.html; ONNX Runtime Web's numThreads).

Every engine gets the token ids `mlr-bench encode` wrote (--inputs) and is timed as mlr-bench
times (one untimed warm-up per shape, then runs until --min-time seconds and at least --min-runs;
median), in a fresh browser session of its own, served from one local HTTP server; nothing is
fetched from the network. Every page is cross-origin isolated (the server sends COOP and COEP, as
the demo's does), so all engines run under the same conditions; the one-thread engines are told to
use one. Output: rows and vectors in the format of scripts/bench_peers.py, for
`mlr-bench encode --browser-rows`.
"""

import argparse
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ENGINES = ["mlr-wasm-webgpu", "mlr-wasm-cpu", "transformersjs-webgpu", "transformersjs-wasm",
           "mlr-wasm-cpu-threads", "transformersjs-wasm-threads"]
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript",
         ".wasm": "application/wasm", ".json": "application/json", ".css": "text/css"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(routes):
    """A static server on a free loopback port; `routes` maps URL prefixes to files or directories."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            for prefix, target in sorted(routes.items(), key=lambda kv: -len(kv[0])):
                if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
                    rest = path[len(prefix):]
                    file = Path(target) / rest if rest else Path(target)
                    if ".." not in Path(rest).parts and file.is_file():
                        return self.send_file(file)
                    break
            self.send_error(404, f"no such file: {path}")

        def send_file(self, file):
            self.send_response(200)
            self.send_header("Content-Type", TYPES.get(file.suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(file.stat().st_size))
            self.send_header("Cache-Control", "no-store")
            # Cross-origin isolation: shared memory for the threaded engines.
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
            self.end_headers()
            with open(file, "rb") as f:
                shutil.copyfileobj(f, self.wfile, 1 << 20)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


class Browser:
    """One headless Chromium session through ChromeDriver's W3C WebDriver API."""

    def __init__(self, chromedriver, chromium, profile):
        self.port = free_port()
        self.driver = subprocess.Popen([chromedriver, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                self.call("GET", "/status")
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        args = ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--enable-unsafe-webgpu",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-quic", f"--user-data-dir={profile}"]
        options = {"args": args}
        if chromium:
            options["binary"] = chromium
        caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": options, "goog:loggingPrefs": {"browser": "ALL"}}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=600) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            # ChromeDriver says what went wrong (a crashed tab, a script timeout) in the body.
            raise RuntimeError(f"ChromeDriver {method} {path}: HTTP {e.code}: {e.read().decode(errors='replace')[:2000]}") from None

    def cmd(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}/{path}", body)

    def run(self, url, timeout):
        """Opens `url` and waits for its #result to be done; returns the parsed JSON."""
        self.cmd("POST", "url", {"url": url})
        start, last = time.time(), None
        failures = 0
        while time.time() - start < timeout:
            try:
                state, text, progress = self.cmd("POST", "execute/sync", {"script": (
                    "const r = document.getElementById('result'), p = document.getElementById('progress');"
                    "return [r ? r.dataset.state : 'loading', r ? r.textContent : '', p ? p.textContent : ''];"), "args": []})
                failures = 0
            except RuntimeError as e:
                # ChromeDriver once answered a poll with HTTP 500 while the wasm CPU page was
                # loading, and a rerun passed: single failures are retried, five in a row end the run.
                failures += 1
                print(f"  poll failed ({failures} of 5): {str(e)[:300]}", file=sys.stderr, flush=True)
                if failures >= 5:
                    raise
                time.sleep(5)
                continue
            if progress and progress != last:
                print(f"  {progress}", file=sys.stderr, flush=True)
                last = progress
            if state == "done":
                return json.loads(text)
            if state == "error":
                raise RuntimeError(f"{url}: {text}\n{self.console()}")
            time.sleep(1)
        raise RuntimeError(f"{url}: no result after {timeout} s (last: {last})\n{self.console()}")

    def console(self):
        try:
            logs = self.cmd("POST", "se/log", {"type": "browser"})
            return "\n".join(f"console: {e.get('message', '')}" for e in logs[-30:])
        except Exception as e:  # the log endpoint is optional
            return f"(no console log: {e})"

    def close(self, profile):
        """Ends the session and ChromeDriver, then waits until no Chromium process of this
        session's profile is left (killing stragglers after 30 s): a renderer or GPU process that
        outlives the session would take CPU from the engines timed after it."""
        try:
            self.cmd("DELETE", "")
        except Exception:
            pass
        self.driver.terminate()
        self.driver.wait()
        deadline = time.time() + 30
        while (left := processes_with(profile)) and time.time() < deadline:
            time.sleep(0.5)
        for pid in left:
            print(f"  killing Chromium process {pid}, still running 30 s after its session ended", file=sys.stderr)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def processes_with(text):
    """Pids of the processes whose command line contains `text` (Linux /proc; empty elsewhere)."""
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if text.encode() in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            pass
    return [p for p in pids if p != os.getpid()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", required=True, help="the inputs mlr-bench encode wrote (--inputs-out)")
    ap.add_argument("--model", required=True, help="Hugging Face model directory (config.json, tokenizer.json, model.safetensors)")
    ap.add_argument("--onnx", required=True, help="ONNX graph of the same weights (scripts/build_onnx.py)")
    ap.add_argument("--mlr-dist", required=True, help="wasm-bindgen output of app/src/bin/bench.rs (bench.html) and bench_mt.rs (bench-mt.html) (scripts/bench_browser_setup.sh)")
    ap.add_argument("--node-modules", required=True, help="node_modules holding @huggingface/transformers and onnxruntime-web")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--batches", default="1,8,64")
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--min-runs", type=int, default=2)
    ap.add_argument("--webgpu-max-tokens", type=int, default=128,
                    help="largest batch × seq on WebGPU (0 = all): a software adapter is slow")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per engine")
    ap.add_argument("--chromedriver", default=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    ap.add_argument("--chromium", default=os.environ.get("CHROMIUM"))
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    model, here = Path(args.model), Path(__file__).resolve().parent
    tjs_model = Path(tempfile.mkdtemp(prefix="mlr-tjs-model-"))
    # transformers.js's layout: config.json beside onnx/model.onnx.
    (tjs_model / "onnx").mkdir()
    os.symlink(Path(args.onnx).resolve(), tjs_model / "onnx" / "model.onnx")
    # AutoModel reads only config.json (model_type "bert") and the graph: the ids are given.
    os.symlink((model / "config.json").resolve(), tjs_model / "config.json")
    port = serve({
        "/mlr/": args.mlr_dist,
        "/model/": str(model),
        "/tjs-models/e5/": str(tjs_model),
        "/tjs/": str(here / "bench_browser"),
        "/node_modules/": args.node_modules,
        "/inputs.json": args.inputs,
    })
    base = f"http://127.0.0.1:{port}"
    common = f"inputs=/inputs.json&batches={args.batches}&min_time={args.min_time}&min_runs={args.min_runs}"

    version = subprocess.run([args.chromium or "chromium", "--version"], capture_output=True, text=True).stdout
    version = " ".join(version.split()[:2])  # "Chromium 156.0.8078.114"
    rows, vectors, skipped = [], {}, {}
    for engine in args.engines.split(","):
        webgpu = engine.endswith("webgpu")
        limit = f"&max_tokens={args.webgpu_max_tokens if webgpu else 0}"
        if engine == "mlr-wasm-cpu-threads":
            url = f"{base}/mlr/bench-mt.html?backend=cpu&model=/model/&{common}{limit}"
        elif engine.startswith("mlr-wasm-"):
            url = f"{base}/mlr/bench.html?backend={'webgpu' if webgpu else 'cpu'}&model=/model/&{common}{limit}"
        elif engine == "transformersjs-wasm-threads":
            url = f"{base}/tjs/transformers.html?device=wasm&threads={os.cpu_count() or 1}&model=e5&{common}{limit}"
        elif engine.startswith("transformersjs-"):
            url = f"{base}/tjs/transformers.html?device={'webgpu' if webgpu else 'wasm'}&model=e5&{common}{limit}"
        else:
            raise SystemExit(f"unknown engine {engine!r} ({', '.join(ENGINES)})")
        print(f"== {engine}", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="mlr-bench-chromium-") as profile:
            browser = Browser(args.chromedriver, args.chromium, profile)
            try:
                out = browser.run(url, args.timeout)
            finally:
                browser.close(profile)
        for r in out["rows"]:
            r["backend"] += f", headless {version or 'Chromium'}"
        rows += out["rows"]
        vectors.update(out["vectors"])
        if out.get("skipped"):
            skipped[engine] = out["skipped"]
    Path(args.out).write_text(json.dumps({"rows": rows, "vectors": vectors, "skipped": skipped, "browser": version}))
    shutil.rmtree(tjs_model, ignore_errors=True)


if __name__ == "__main__":
    main()
