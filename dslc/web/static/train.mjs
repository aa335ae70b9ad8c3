#!/usr/bin/env node
// Train the exported model with onnxruntime-node: the same loop as the page.
//
//   node DIR/train.mjs [DIR] [--epochs N] [--data FILE.npz] [--out OUTDIR] [--json FILE]
//
// onnxruntime-node is found next to this folder, in the current directory, in
// the node_modules the export was made from (web.json), or through NODE_PATH
// (e.g. NODE_PATH=web/node_modules of the dslc source tree).
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateRawSync } from 'node:zlib';

import { Trainer, checkArrays, makeDataset, openExport, split, summary } from './loop.js';
import { parseNpz } from './npz.js';

function loadOrt(dir, nodeModules) {
  const bases = [dir, process.cwd(), ...(nodeModules ? [path.dirname(nodeModules)] : [])];
  for (const base of bases.map(b => path.join(b, 'x.js'))) {
    try { return createRequire(base)('onnxruntime-node'); } catch (e) {
      if (e.code !== 'MODULE_NOT_FOUND') throw e;
    }
  }
  console.error('train.mjs: error: onnxruntime-node is not installed; run `npm ci` in dslc\'s web/ folder and ' +
                'set NODE_PATH to its node_modules, or `npm install onnxruntime-node` here');
  process.exit(1);
}

function args(argv) {
  const out = { dir: path.dirname(fileURLToPath(import.meta.url)) };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => { if (i + 1 >= argv.length) usage(`${a} needs a value`); return argv[++i]; };
    if (a === '--epochs') out.epochs = Number(val());
    else if (a === '--data') out.data = val();
    else if (a === '--out') out.out = val();
    else if (a === '--json') out.json = val();
    else if (a === '-h' || a === '--help') usage();
    else if (a.startsWith('-')) usage(`unknown option ${a}`);
    else out.dir = a;
  }
  if (out.epochs !== undefined && !(Number.isInteger(out.epochs) && out.epochs >= 0)) usage('--epochs needs a whole number');
  return out;
}

function usage(msg) {
  if (msg) console.error(`train.mjs: error: ${msg}`);
  console.error('usage: node train.mjs [DIR] [--epochs N] [--data FILE.npz] [--out OUTDIR] [--json FILE]');
  process.exit(msg ? 1 : 0);
}

async function main() {
  const a = args(process.argv.slice(2));
  const read = name => readFile(path.join(a.dir, name)).then(b => new Uint8Array(b), e => {
    throw new Error(e.code === 'ENOENT' ? `${a.dir} has no ${name}; is it a folder written by \`dslc export-web\`?` : e.message);
  });
  const web = JSON.parse(new TextDecoder().decode(await read('web.json')));
  const ort = loadOrt(a.dir, web.node_modules);
  const bundle = await openExport(read);
  const t = await Trainer.create(ort, bundle, { sessionOptions: { intraOpNumThreads: 1, interOpNumThreads: 1 } });
  let train = bundle.train, valid = bundle.valid;
  if (a.data) {
    const arrays = await parseNpz(new Uint8Array(await readFile(a.data)), async b => new Uint8Array(inflateRawSync(b)));
    const ds = makeDataset(checkArrays(arrays, bundle.manifest.data, a.data), bundle.manifest.data);
    [train, valid] = t.settings.split ? split(ds, t.settings.split) : [ds, valid];
  }
  const epochs = a.epochs ?? t.settings.epochs;
  console.log(`training ${bundle.web.model} with onnxruntime-node: ${train.n} examples, ${epochs} epochs, batch ${t.settings.batch}`);
  const history = await t.fit({ train, valid, epochs, onEpoch: row => console.log(summary(row, epochs)) });
  const final = valid ? await t.evaluate(valid) : {};
  const out = a.out ?? path.join(a.dir, 'node-run');
  await mkdir(out, { recursive: true });
  await writeFile(path.join(out, 'model.onnx'), t.trainedModel());
  await writeFile(path.join(out, 'history.json'), JSON.stringify(history, null, 1));
  if (a.json) await writeFile(a.json, JSON.stringify({ history, steps: t.stepLog, final }));
  console.log(`wrote ${path.join(out, 'model.onnx')}` +
              Object.entries(final).map(([k, v]) => `  val_${k} ${v.toFixed(4)}`).join(''));
}

main().catch(e => { console.error(`train.mjs: error: ${e.message}`); process.exit(1); });
