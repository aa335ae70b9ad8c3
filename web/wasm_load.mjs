// Open ONNX files in onnxruntime-web's WebAssembly backend, under Node: the
// sessions the page would create (the page's own failures are session
// creation's: the WASM build's graph optimizer is not the native one's).
//   node web/wasm_load.mjs a.onnx b.onnx ...   -> one JSON line {file: "ok" | error}
import * as ort from 'onnxruntime-web';
import { readFile } from 'node:fs/promises';

ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';
const out = {};
for (const f of process.argv.slice(2)) {
  try {
    await ort.InferenceSession.create(await readFile(f), { executionProviders: ['wasm'] });
    out[f] = 'ok';
  } catch (e) {
    out[f] = String(e.message || e);
  }
}
console.log(JSON.stringify(out));
