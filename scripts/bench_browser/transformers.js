// The transformers.js peer of the browser encode benchmark (scripts/bench_browser.py serves this
// page). Options come from the query string: device (webgpu | wasm), model (a directory under
// /tjs-models/ with config.json and onnx/model.onnx), inputs (the ids mlr-bench wrote), batches,
// min_time, min_runs, max_tokens, threads (ONNX Runtime Web's numThreads on wasm, default 1; more
// need a cross-origin isolated page). Timing as in mlr-bench: one untimed warm-up per shape, then runs
// until min_time seconds have passed (at least min_runs), median latency. Each run is what a
// transformers.js user calls for sentence vectors: the model on the ids, then mean pooling and L2
// normalisation (as its feature-extraction pipeline does), read back to JS.
import { env, AutoModel, Tensor, mean_pooling } from '/node_modules/@huggingface/transformers/dist/transformers.js';

const q = new URLSearchParams(location.search);
const progress = (line) => { console.log(line); document.getElementById('progress').textContent = line; };
const finish = (state, text) => {
  const r = document.getElementById('result');
  r.textContent = text;
  r.dataset.state = state;
};

async function main() {
  const device = q.get('device');
  if (device !== 'webgpu' && device !== 'wasm') throw new Error(`device=${device}: give webgpu or wasm`);
  const batches = (q.get('batches') || '1,8,64').split(',').map(Number);
  const minTime = Number(q.get('min_time') || 2) * 1000;
  const minRuns = Math.max(1, Number(q.get('min_runs') || 2));
  const maxTokens = Number(q.get('max_tokens') || 0);
  // Nothing from the network: the model and ONNX Runtime's wasm come from this server.
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = '/tjs-models/';
  env.useBrowserCache = false;
  env.backends.onnx.wasm.wasmPaths = location.origin + '/node_modules/onnxruntime-web/dist/';
  // One thread unless asked (mlr-wasm-cpu runs on one; the threaded engines on every core).
  const threads = Math.max(1, Number(q.get('threads') || 1));
  if (threads > 1 && !self.crossOriginIsolated) throw new Error(`threads=${threads} needs a cross-origin isolated page`);
  env.backends.onnx.wasm.numThreads = threads;

  if (device === 'webgpu') {
    const adapter = navigator.gpu && await navigator.gpu.requestAdapter();
    if (!adapter) throw new Error('this browser gives no WebGPU adapter');
  }
  let adapterName = '';
  if (device === 'webgpu') {
    const info = (await navigator.gpu.requestAdapter()).info || {};
    adapterName = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ');
  }
  const inputs = await (await fetch(q.get('inputs'))).json();
  progress(`loading ${q.get('model')} on ${device}`);
  const model = await AutoModel.from_pretrained(q.get('model'), { device, dtype: 'fp32' });
  const engine = `transformersjs-${device}${device === 'wasm' && threads > 1 ? '-threads' : ''}`;
  const backend = device === 'webgpu'
    ? `WebGPU (${adapterName}; transformers.js 4.3.2, ONNX Runtime Web, fp32)`
    : `wasm CPU (transformers.js 4.3.2, ONNX Runtime Web wasm SIMD, fp32, ${threads} thread${threads > 1 ? 's' : ''})`;
  const first = Math.min(...batches);
  const rows = [], vectors = { [engine]: [] }, skipped = [];
  for (const input of inputs) {
    const seq = input.seq;
    for (const batch of batches) {
      if (batch > input.ids.length) throw new Error(`batch ${batch}: the inputs hold only ${input.ids.length} texts of ${seq} tokens`);
      if (maxTokens > 0 && batch * seq > maxTokens) { skipped.push(`${batch}×${seq}`); continue; }
      const flat = input.ids.slice(0, batch).flat();
      const n = batch * seq;
      const run = async () => {
        const input_ids = new Tensor('int64', BigInt64Array.from(flat, BigInt), [batch, seq]);
        const attention_mask = new Tensor('int64', new BigInt64Array(n).fill(1n), [batch, seq]);
        const token_type_ids = new Tensor('int64', new BigInt64Array(n), [batch, seq]);
        const out = await model({ input_ids, attention_mask, token_type_ids });
        return mean_pooling(out.last_hidden_state, attention_mask).normalize(2, -1).data;
      };
      const warm = await run();
      if (batch === first) vectors[engine].push([seq, Array.from(warm)]);
      const times = [];
      const start = performance.now();
      while (times.length < minRuns || performance.now() - start < minTime) {
        const t = performance.now();
        await run();
        times.push(performance.now() - t);
      }
      times.sort((a, b) => a - b);
      const m = times.length;
      const median = m % 2 ? times[(m - 1) / 2] : (times[m / 2 - 1] + times[m / 2]) / 2;
      const row = { engine, backend, batch, seq, tokens_per_s: n / (median / 1000), latency_ms: median, runs: m, min_ms: times[0] };
      progress(`${engine} batch ${batch} seq ${seq}: ${row.tokens_per_s.toFixed(1)} tokens/s, ${median.toFixed(1)} ms (${times.length} runs)`);
      rows.push(row);
    }
  }
  return { rows, vectors, skipped };
}

main().then(
  (out) => { progress('done'); finish('done', JSON.stringify(out)); },
  (e) => { progress(`error: ${e}`); finish('error', String(e && e.stack || e)); },
);
