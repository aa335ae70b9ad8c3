// The page: load the export, train on click with a progress bar and live
// curves, show the held-out metrics, offer the trained model.onnx.
// State for scripts (and the end-to-end test) is kept in window.dslc.
import * as ort from './ort/ort.wasm.min.mjs';
import { Trainer, checkArrays, makeDataset, openExport, split, summary } from './loop.js';
import { parseNpz } from './npz.js';

ort.env.wasm.wasmPaths = new URL('./ort/', import.meta.url).href;   // vendored: nothing from the internet
ort.env.wasm.numThreads = 1;      // threads need cross-origin isolation, which a plain static server lacks

const $ = id => document.getElementById(id);
const state = window.dslc = { state: 'loading', history: [], steps: [], final: null, error: null };
const COLORS = ['#4f74d9', '#e8710a', '#137333', '#b3261e', '#8e44ad', '#00838f'];

async function read(name) {
  if (location.protocol === 'file:') throw new Error('open this page through a web server: python -m http.server -d FOLDER');
  const r = await fetch(name);
  if (!r.ok) throw new Error(`cannot load ${name}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

async function inflateRaw(bytes) {
  const s = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate-raw'));
  return new Uint8Array(await new Response(s).arrayBuffer());
}

function fail(e) {
  state.state = 'error';
  state.error = String(e?.message ?? e);
  $('error').textContent = `error: ${state.error}`;
  $('train').disabled = false;
}

// ----- the chart: losses by step (left), metrics by epoch (right) ---------------------------
// a number in at most ~7 characters
const fmt = v => (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5) ? v.toExponential(2) : Number(v.toPrecision(3)).toString());

function panel(ctx, x0, y0, w, h, title, series, xmax, xlabel) {
  const pad = { l: 84, r: 24, t: 34, b: 44 };
  const W = w - pad.l - pad.r, H = h - pad.t - pad.b;
  const ys = series.flatMap(s => s.points.map(p => p[1])).filter(Number.isFinite);
  let lo = Math.min(...ys, Infinity), hi = Math.max(...ys, -Infinity);
  if (!ys.length) { lo = 0; hi = 1; }
  const log = lo > 0 && hi / lo > 100;          // losses that fall by decades: a log axis
  const f = log ? Math.log10 : (v => v);
  let flo = f(lo), fhi = f(hi);
  if (fhi - flo < 1e-9) { fhi += 0.5; flo -= 0.5; }
  const X = x => x0 + pad.l + (x / Math.max(xmax, 1)) * W;
  const Y = y => y0 + pad.t + (1 - (f(y) - flo) / (fhi - flo)) * H;
  ctx.fillStyle = '#1d2330'; ctx.font = '22px system-ui'; ctx.textAlign = 'left';
  ctx.fillText(title + (log ? ' (log scale)' : ''), x0 + pad.l, y0 + 24);
  ctx.strokeStyle = '#eceff5'; ctx.lineWidth = 1; ctx.font = '17px system-ui'; ctx.fillStyle = '#5a6375';
  for (let i = 0; i <= 4; i++) {
    const fv = flo + (fhi - flo) * i / 4, v = log ? 10 ** fv : fv, y = Y(v);
    ctx.beginPath(); ctx.moveTo(x0 + pad.l, y); ctx.lineTo(x0 + pad.l + W, y); ctx.stroke();
    ctx.textAlign = 'right'; ctx.fillText(fmt(v), x0 + pad.l - 8, y + 6);
  }
  for (let i = 0; i <= 5; i++) {
    const v = Math.round(xmax * i / 5);
    ctx.textAlign = i === 0 ? 'left' : i === 5 ? 'right' : 'center';
    ctx.fillText(String(v), X(v), y0 + pad.t + H + 24);
  }
  ctx.textAlign = 'center';
  ctx.fillText(xlabel, x0 + pad.l + W / 2, y0 + h - 2);
  ctx.strokeStyle = '#9aa3b5'; ctx.strokeRect(x0 + pad.l, y0 + pad.t, W, H);
  let lx = x0 + pad.l + W;
  series.forEach(s => {
    ctx.strokeStyle = s.color; ctx.fillStyle = s.color; ctx.lineWidth = s.width ?? 3;
    ctx.globalAlpha = s.alpha ?? 1;
    ctx.beginPath();
    s.points.forEach(([x, y], i) => (i ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))));
    ctx.stroke();
    if (s.dots) s.points.forEach(([x, y]) => { ctx.beginPath(); ctx.arc(X(x), Y(y), 4, 0, 7); ctx.fill(); });
    ctx.globalAlpha = 1;
    ctx.textAlign = 'right'; ctx.font = '17px system-ui';
    const tw = ctx.measureText(s.label).width;
    ctx.fillText(s.label, lx, y0 + 24); lx -= tw + 22;
  });
}

function draw(t) {
  const c = $('chart'), ctx = c.getContext('2d');
  ctx.clearRect(0, 0, c.width, c.height);
  const m = t.m, epochs = t.settings.epochs;
  const perEpoch = Math.max(1, Math.ceil((state.trainN ?? t.bundle.train.n) / t.settings.batch));
  const xs = h => h.epoch * perEpoch;
  const lossSeries = [];
  m.losses.forEach((k, i) => {
    const col = COLORS[(2 * i) % COLORS.length];
    lossSeries.push({ label: `${k} (step)`, color: col, width: 1.5, alpha: 0.35,
                      points: state.steps.map(s => [s.step, s[k]]) });
    lossSeries.push({ label: `${k} (epoch)`, color: col, points: state.history.map(h => [xs(h), h[k]]) });
    if (state.history.some(h => `val_${k}` in h)) {
      lossSeries.push({ label: `val_${k}`, color: COLORS[(2 * i + 1) % COLORS.length], dots: true,
                        points: state.history.map(h => [xs(h), h[`val_${k}`]]) });
    }
  });
  const half = c.width / 2;
  panel(ctx, 0, 0, half, c.height, 'loss', lossSeries, epochs * perEpoch, 'step');
  const metSeries = [];
  m.metrics.forEach((k, i) => {
    metSeries.push({ label: k, color: COLORS[(2 * i + 2) % COLORS.length], points: state.history.map(h => [h.epoch, h[k]]) });
    if (state.history.some(h => `val_${k}` in h)) {
      metSeries.push({ label: `val_${k}`, color: COLORS[(2 * i + 3) % COLORS.length], dots: true,
                       points: state.history.map(h => [h.epoch, h[`val_${k}`]]) });
    }
  });
  panel(ctx, half, 0, half, c.height, m.metrics.length ? 'metrics' : 'metrics (none)', metSeries, epochs, 'epoch');
}

function table(all) {
  if (!all.length) return;
  const history = all.slice(-30);              // the last 30 epochs
  const keys = Object.keys(history[history.length - 1]);
  $('history').innerHTML = '<tr>' + keys.map(k => `<th>${k}</th>`).join('') + '</tr>' +
    history.map(r => '<tr>' + keys.map(k => `<td>${k === 'epoch' ? r[k] : fmt(r[k] ?? NaN)}</td>`).join('') + '</tr>').join('');
}

// ----- main ---------------------------------------------------------------------------------
async function main() {
  const bundle = await openExport(read);
  const m = bundle.manifest, w = bundle.web;
  $('title').textContent = `${w.model} — train in the browser`;
  const params = m.carried.filter(c => c.kind === 'param').reduce((a, c) => a + c.shape.reduce((x, y) => x * y, 1), 0);
  const describe = () => `${w.spec ?? w.model}: ${params.toLocaleString()} params · ${train.n} training / ` +
    `${valid ? valid.n : 0} held-out examples · ${w.settings.epochs} epochs of batch ${w.settings.batch} · ` +
    `onnxruntime-web ${ort.env.versions?.web ?? ''} (WebAssembly)`;
  let train = bundle.train, valid = bundle.valid;
  $('info').textContent = describe();
  let trainer = await Trainer.create(ort, bundle, { sessionOptions: { executionProviders: ['wasm'] } });
  state.state = 'ready';
  $('train').disabled = false;

  $('file').addEventListener('change', async ev => {
    const f = ev.target.files[0];
    if (!f) return;
    try {
      const bytes = new Uint8Array(await f.arrayBuffer());
      const arrays = await parseNpz(bytes, inflateRaw);
      const ds = makeDataset(checkArrays(arrays, m.data, f.name), m.data);
      [train, valid] = w.settings.split ? split(ds, w.settings.split) : [ds, bundle.valid];
      $('info').textContent = describe() + ` · data: ${f.name}`;
      $('error').textContent = '';
    } catch (e) { fail(e); }
  });

  $('train').addEventListener('click', async () => {
    $('train').disabled = true; $('download').disabled = true; $('error').textContent = '';
    trainer.reset();
    Object.assign(state, { state: 'training', history: [], steps: trainer.stepLog, final: null, error: null, trainN: train.n });
    const epochs = w.settings.epochs;
    const total = epochs * Math.ceil(train.n / w.settings.batch);
    let last = 0;
    const t0 = performance.now();
    const paint = async (force = false) => {      // let the page repaint ~10 times a second, not per step
      if (!force && performance.now() - last < 100) return;
      last = performance.now();
      const vals = trainer.stepLog[trainer.stepLog.length - 1] ?? {};
      $('status').textContent = `epoch ${Math.min(trainer.epoch + 1, epochs)}/${epochs} · step ${trainer.step}/${total} · ` +
        m.losses.map(k => `${k} ${(vals[k] ?? NaN).toFixed(4)}`).join(' · ');
      state.history = trainer.history.slice();
      table(state.history); draw(trainer);
      await new Promise(r => setTimeout(r, 0));
    };
    try {
      await trainer.fit({
        train, valid, epochs,
        onStep: async () => { $('progress').value = trainer.step / total; await paint(); },
        onEpoch: async row => { console.log(summary(row, epochs)); await paint(); },
      });
      state.history = trainer.history.slice();
      table(state.history);
      state.final = valid ? await trainer.evaluate(valid) : {};
      const secs = ((performance.now() - t0) / 1000).toFixed(1);
      $('progress').value = 1;
      $('status').textContent = `done: ${trainer.step} steps in ${secs}s` + (trainer.stoppedEarly ? ' (early stopping)' : '');
      const held = Object.entries(state.final).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(' · ');
      $('result').textContent = valid ? `held-out: ${held}` : 'no held-out data';
      $('result').className = valid ? 'good' : '';
      draw(trainer);
      state.model = trainer.trainedModel();
      $('download').disabled = false;
      state.state = 'done';
    } catch (e) { fail(e); }
    $('train').disabled = false;
  });

  $('download').addEventListener('click', () => {
    const url = URL.createObjectURL(new Blob([state.model], { type: 'application/octet-stream' }));
    const a = Object.assign(document.createElement('a'), { href: url, download: 'model.onnx' });
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  });
  draw(trainer);
}

main().catch(fail);
