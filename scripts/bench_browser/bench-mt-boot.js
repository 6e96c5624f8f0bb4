// The threaded benchmark's worker (mlr-mt.html starts it): wasm-bindgen's no-modules glue, then the
// module, whose main (app/src/bin/bench_mt.rs) reads this script's query string and runs.
importScripts('bench-mt.js');
wasm_bindgen({ module_or_path: 'bench-mt_bg.wasm' });
