// The training loop for a dslc training graph, shared by the browser page
// (onnxruntime-web) and Node.js (onnxruntime-node). It knows nothing about the
// model: everything comes from the training graph's manifest (manifest.json,
// docs/manifest.md) — data inputs, carried tensors (each `output` is fed back
// as its `input`), hyper inputs, losses, metrics, steps/select.
//
// The host passes `ort` (either runtime: the API is the same) and a reader
// `read(name) -> Promise<Uint8Array>` for the export's files.

import { takeInitializers, withWeights } from './proto.js';
import { permutation } from './rng.js';

export const ARRAYS = {
  float32: Float32Array, float64: Float64Array, float16: Uint16Array, int64: BigInt64Array,
  int32: Int32Array, int16: Int16Array, int8: Int8Array, uint8: Uint8Array, uint16: Uint16Array,
  uint32: Uint32Array, uint64: BigUint64Array, bool: Uint8Array,
};
const FLOATS = new Set(['float32', 'float64', 'float16']);
const INTS = new Set(['int64', 'int32', 'int16', 'int8', 'uint8', 'uint16', 'uint32', 'uint64']);
const INT_RANGE = { int64: [-(2n ** 63n), 2n ** 63n - 1n], int32: [-(2n ** 31n), 2n ** 31n - 1n],
                    int8: [-128n, 127n], uint8: [0n, 255n] };

const fmtShape = s => `[${s.join(', ')}]`;
const prod = a => a.reduce((x, y) => x * y, 1);

// ----- the export's files ------------------------------------------------------------------
/** Read an exported folder: {manifest, web, models: {training, evaluation, inference}, train, valid}. */
export async function openExport(read) {
  const text = async name => JSON.parse(new TextDecoder().decode(await read(name)));
  const manifest = await text('manifest.json');
  if (manifest.version !== 1) throw new Error(`manifest version ${manifest.version} is not supported (expected 1)`);
  if (manifest.role !== 'training') throw new Error(`manifest.json has role ${manifest.role}; expected training`);
  const web = await text('web.json');
  const models = {};
  for (const [role, file] of Object.entries(web.files)) models[role] = await read(file);
  const blob = await read(web.data.file);
  const view = e => {
    const T = ARRAYS[e.dtype];
    const copy = blob.slice(e.offset, e.offset + e.nbytes);      // own, aligned buffer
    return { dtype: e.dtype, shape: e.shape, data: new T(copy.buffer, 0, prod(e.shape)) };
  };
  const sets = {};
  for (const [name, s] of Object.entries(web.data.sets)) {
    const arrays = {};
    for (const [k, e] of Object.entries(s.arrays)) arrays[k] = view(e);
    sets[name] = makeDataset(arrays, manifest.data);
  }
  return { manifest, web, models, train: sets.train, valid: sets.valid ?? null };
}

// ----- data: checked arrays, split, batches (as runtime/data.py) ---------------------------
function half(h) {   // IEEE binary16 -> number
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

function cast(name, arr, spec) {
  const found = `expected ${spec.dtype}${fmtShape(spec.shape)}, found ${arr.dtype}${fmtShape(arr.shape)}`;
  if (arr.dtype === spec.dtype) return arr;
  const T = ARRAYS[spec.dtype];
  if (FLOATS.has(spec.dtype) && spec.dtype !== 'float16') {
    if (!FLOATS.has(arr.dtype)) throw new Error(`data array \`${name}\`: ${found} (a ${spec.dtype} input needs a floating array)`);
    const src = arr.dtype === 'float16' ? Array.from(arr.data, half) : arr.data;
    return { dtype: spec.dtype, shape: arr.shape, data: T.from(src) };
  }
  if (INTS.has(spec.dtype) && spec.dtype in INT_RANGE) {
    if (!INTS.has(arr.dtype)) throw new Error(`data array \`${name}\`: ${found} (a ${spec.dtype} input needs integers)`);
    const [lo, hi] = INT_RANGE[spec.dtype];
    const big = T === BigInt64Array;
    const out = new T(arr.data.length);
    for (let i = 0; i < out.length; i++) {
      const v = BigInt(arr.data[i]);
      if (v < lo || v > hi) throw new Error(`data array \`${name}\`: ${found} (values do not fit ${spec.dtype})`);
      out[i] = big ? v : Number(v);
    }
    return { dtype: spec.dtype, shape: arr.shape, data: out };
  }
  throw new Error(`data array \`${name}\`: ${found}`);
}

/** Check arrays against the manifest's data inputs and cast them (the Python
 *  runtime's dtype policy); throws one plain line naming the array. */
export function checkArrays(arrays, specs, source = 'data') {
  const out = {}, dims = {};
  for (const spec of specs) {
    const arr = arrays[spec.name];
    if (!arr) {
      const have = Object.keys(arrays).sort().join(', ') || 'none';
      throw new Error(`${source}: no array \`${spec.name}\` (expected ${spec.dtype}${fmtShape(spec.shape)}; arrays found: ${have})`);
    }
    if (arr.shape.length !== spec.shape.length) {
      throw new Error(`data array \`${spec.name}\`: expected rank ${spec.shape.length} ${fmtShape(spec.shape)}, ` +
                      `found rank ${arr.shape.length} ${fmtShape(arr.shape)}`);
    }
    spec.shape.forEach((want, axis) => {
      const got = arr.shape[axis];
      if (typeof want === 'number') {
        if (want !== got) throw new Error(`data array \`${spec.name}\`: expected ${fmtShape(spec.shape)}, found ` +
                                          `${fmtShape(arr.shape)} (axis ${axis} should be ${want})`);
      } else if (want in dims && dims[want][0] !== got) {
        const [size, other] = dims[want];
        const what = axis === spec.batch_axis ? 'batch lengths differ' : `dim ${want} differs`;
        throw new Error(`data array \`${spec.name}\`: ${what}: ${want} = ${got} here but ${size} in \`${other}\``);
      } else if (!(want in dims)) dims[want] = [got, spec.name];
    });
    out[spec.name] = cast(spec.name, arr, spec);
  }
  return out;
}

/** {n, arrays, specs}: arrays already checked. */
export function makeDataset(arrays, specs) {
  const used = specs.filter(s => s.name in arrays);
  const lengths = new Set(used.filter(s => s.batch_axis !== null && s.batch_axis !== undefined)
    .map(s => arrays[s.name].shape[s.batch_axis]));
  return { n: lengths.size ? [...lengths][0] : 1, arrays, specs: Object.fromEntries(used.map(s => [s.name, s])) };
}

/** The examples at `index` along each array's batch axis (unbatched arrays whole). */
export function take(ds, index) {
  const out = {};
  for (const [name, arr] of Object.entries(ds.arrays)) {
    const axis = ds.specs[name]?.batch_axis;
    if (axis === null || axis === undefined) { out[name] = arr; continue; }
    const outer = prod(arr.shape.slice(0, axis)), inner = prod(arr.shape.slice(axis + 1));
    const n = arr.shape[axis];
    const data = new (arr.data.constructor)(outer * index.length * inner);
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < index.length; j++) {
        const src = (o * n + index[j]) * inner;
        data.set(arr.data.subarray(src, src + inner), (o * index.length + j) * inner);
      }
    }
    const shape = arr.shape.slice();
    shape[axis] = index.length;
    out[name] = { dtype: arr.dtype, shape, data };
  }
  return out;
}

/** First `fraction` of the examples (rounded down, at least 1) trains; the rest validates. */
export function split(ds, fraction) {
  const k = Math.max(1, Math.min(ds.n - 1, Math.floor(ds.n * fraction)));
  const idx = Array.from({ length: ds.n }, (_, i) => i);
  const part = ix => makeDataset(take(ds, ix), Object.values(ds.specs));
  return [part(idx.slice(0, k)), part(idx.slice(k))];
}

// ----- the trainer -------------------------------------------------------------------------
export class Trainer {
  /** Sessions for the export's graphs; `options.sessionOptions` go to ort.InferenceSession.create.
   *  The carried tensors' initial values are read out of train.onnx (see proto.js). */
  static async create(ort, bundle, options = {}) {
    const so = options.sessionOptions ?? {};
    const m = bundle.manifest;
    const fed = [...m.carried.map(c => c.input), ...m.hyper.map(h => h.name)];
    if (m.select) fed.push(m.select.input);
    const tr = takeInitializers(bundle.models.training, fed);
    for (const c of m.carried) {
      if (!tr.values[c.input]) throw new Error(`manifest: carried \`${c.input}\` has no initializer (its initial value) in the training graph`);
    }
    const training = await ort.InferenceSession.create(tr.model, so);
    let evaluation = null, evalInit = {};
    const em = bundle.web.evaluation_manifest;
    if (bundle.models.evaluation && em) {
      const ev = takeInitializers(bundle.models.evaluation, em.params ?? []);
      evaluation = await ort.InferenceSession.create(ev.model, so);
      evalInit = ev.values;
    }
    return new Trainer(ort, bundle, training, evaluation, tr.values, evalInit);
  }

  constructor(ort, bundle, training, evaluation, initial, evalInitial = {}) {
    this.ort = ort;
    this.bundle = bundle;
    this.m = bundle.manifest;
    this.em = evaluation ? bundle.web.evaluation_manifest : null;
    this.session = training;
    this.evalSession = evaluation;
    this.initial = initial;          // name -> {dtype, shape, data}: carried inputs' starting values
    this.evalInitial = evalInitial;
    this.settings = structuredClone(bundle.web.settings);
    this.settings.steps = this.m.steps?.length ? this.m.steps : this.m.losses.slice(0, 1);
    this.averages = Object.fromEntries(this.m.carried.filter(c => c.kind === 'average').map(c => [c.param, c.input]));
    this.reset();
  }

  /** Back to the initial values stored in the training graph; history cleared. */
  reset() {
    this.carried = Object.fromEntries(this.m.carried.map(c => [c.input, this.tensor(this.initial[c.input])]));
    this.epoch = 0;
    this.step = 0;
    this.roundPos = 0;
    this.history = [];
    this.stepLog = [];        // per run: {step, epoch, name: value for losses and metrics}
    this.best = null;
    this.stoppedEarly = false;
  }

  scalar(dtype, value) {
    const T = ARRAYS[dtype];
    return new this.ort.Tensor(dtype, T === BigInt64Array ? T.of(BigInt(value)) : T.of(Number(value)), []);
  }

  tensor(arr) {
    return new this.ort.Tensor(arr.dtype, arr.data, arr.shape);
  }

  hyperFeeds(loss) {
    const feeds = {};
    for (const h of this.m.hyper) feeds[h.name] = this.scalar(h.dtype ?? 'float32', this.settings.hyper[h.name] ?? h.default);
    if (this.m.rng) {     // older manifests: a counter of (seed, step)
      const name = typeof this.m.rng === 'object' ? this.m.rng.input : this.m.rng;
      feeds[name] = this.scalar('int64', BigInt(this.settings.seed) * 2n ** 32n + BigInt(this.step));
    }
    if (this.m.select) feeds[this.m.select.input] = this.scalar('int64', this.m.select.values[loss]);
    return feeds;
  }

  /** One run of the training graph on `batch` (name -> {dtype, shape, data}); carried tensors advance. */
  async trainStep(batch) {
    const loss = this.settings.steps[this.roundPos];
    const feeds = { ...this.hyperFeeds(loss), ...this.carried };
    for (const d of this.m.data) feeds[d.name] = this.tensor(batch[d.name]);
    const scalars = [...this.m.losses, ...this.m.metrics];
    const res = await this.session.run(feeds, [...this.m.carried.map(c => c.output), ...scalars]);
    const values = Object.fromEntries(scalars.map(k => [k, Number(res[k].data[0])]));
    for (const k of this.m.losses) {
      if (!Number.isFinite(values[k])) {
        throw new Error(`training diverged at step ${this.step + 1} (epoch ${this.epoch + 1}): loss \`${k}\` is ${values[k]}`);
      }
    }
    this.carried = Object.fromEntries(this.m.carried.map(c => [c.input, res[c.output]]));
    this.step += 1;
    this.roundPos = (this.roundPos + 1) % this.settings.steps.length;
    this.stepLog.push({ step: this.step, epoch: this.epoch + 1, ...values });
    return values;
  }

  /** The tensor a carried input holds now. */
  value(name) {
    return this.carried[name];
  }

  /** Means over examples of the losses and metrics on `ds`, in inference mode. */
  async evaluate(ds) {
    const batch = this.settings.batch;
    const sums = {};
    const idx = Array.from({ length: ds.n }, (_, i) => i);
    for (let s = 0; s < ds.n; s += batch) {
      const part = take(ds, idx.slice(s, s + batch));
      const n = Math.min(batch, ds.n - s);
      for (const [k, v] of Object.entries(await this.evalBatch(part))) sums[k] = (sums[k] ?? 0) + v * n;
    }
    return Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / ds.n]));
  }

  async evalBatch(part) {
    let session, names, feeds;
    if (this.evalSession) {      // params (their Polyak averages where kept) as inputs
      session = this.evalSession;
      names = [...this.em.losses, ...this.em.metrics];
      feeds = {};
      for (const p of this.em.params ?? []) {
        const t = this.value(this.averages[p] ?? p) ?? (this.evalInitial[p] && this.tensor(this.evalInitial[p]));
        if (!t) throw new Error(`evaluation graph input \`${p}\` is neither carried nor initialized`);
        feeds[p] = t;
      }
      for (const d of this.em.data) feeds[d.name] = this.tensor(part[d.name]);
    } else {                     // no evaluation graph: a training run whose updates are dropped
      session = this.session;
      names = [...this.m.losses, ...this.m.metrics];
      feeds = { ...this.hyperFeeds(this.settings.steps[0]), ...this.carried };
      for (const d of this.m.data) feeds[d.name] = this.tensor(part[d.name]);
    }
    const res = await session.run(feeds, names);
    return Object.fromEntries(names.map(k => [k, Number(res[k].data[0])]));
  }

  /** The example order of `epoch`: NumPy's default_rng([seed, epoch]).permutation(n),
   *  as the Python runtime draws it; in order when the seed is null. */
  orderFor(epoch, ds) {
    const seed = this.settings.seed;
    if (seed === null || seed === undefined) return Int32Array.from({ length: ds.n }, (_, i) => i);
    return permutation(seed, epoch, ds.n);
  }

  /** Train until `epochs` epochs are done. Callbacks: onStep(values, trainer), onEpoch(row, trainer);
   *  either may return a promise (the page yields to the browser there). Returns the history. */
  async fit({ train = this.bundle.train, valid = this.bundle.valid, epochs = this.settings.epochs,
              onStep, onEpoch } = {}) {
    const batch = this.settings.batch;
    while (this.epoch < epochs && !this.stoppedEarly) {
      const t0 = Date.now();
      const order = this.orderFor(this.epoch, train);
      const sums = {};
      let runs = 0;
      for (let s = 0; s < train.n; s += batch) {
        const values = await this.trainStep(take(train, order.slice(s, s + batch)));
        runs += 1;
        for (const [k, v] of Object.entries(values)) sums[k] = (sums[k] ?? 0) + v;
        if (onStep) await onStep(values, this);
      }
      const row = { epoch: this.epoch + 1 };
      for (const [k, v] of Object.entries(sums)) row[k] = v / Math.max(runs, 1);
      if (valid) for (const [k, v] of Object.entries(await this.evaluate(valid))) row[`val_${k}`] = v;
      row.time = (Date.now() - t0) / 1000;
      this.epoch += 1;
      this.history.push(row);
      this.earlyStopping(row);
      if (onEpoch) await onEpoch(row, this);
    }
    if (this.best && this.settings.early_stopping) this.carried = this.best.values;
    return this.history;
  }

  earlyStopping(row) {
    const rule = this.settings.early_stopping;
    if (!rule) return;
    const metric = rule.metric || this.m.losses[0];
    const key = `val_${metric}` in row ? `val_${metric}` : metric;
    if (!(key in row)) throw new Error(`early stopping watches \`${metric}\`, which is not a loss or metric`);
    const mode = rule.mode || (this.m.losses.includes(metric) ? 'min' : 'max');
    const v = row[key];
    if (!this.best || (mode === 'max' ? v > this.best.value : v < this.best.value)) {
      this.best = { value: v, epoch: row.epoch, values: this.carried };
    } else if (row.epoch - this.best.epoch >= (rule.patience ?? 5)) {
      this.stoppedEarly = true;
    }
  }

  /** model.onnx bytes: the inference graph holding the trained params and
   *  states (Polyak averages in place of params where kept). */
  trainedModel() {
    const values = {};
    for (const c of this.m.carried) {
      if (c.kind !== 'param' && c.kind !== 'state') continue;
      const t = this.value(this.averages[c.input] ?? c.input);
      if (t) values[c.input] = t;
    }
    return withWeights(this.bundle.models.inference, values);
  }
}

/** One line per epoch, as `dslc train` prints it. */
export function summary(row, epochs) {
  const parts = Object.entries(row).filter(([k]) => k !== 'epoch' && k !== 'time').map(([k, v]) => `${k} ${v.toFixed(4)}`);
  return `epoch ${row.epoch}/${epochs}  ${parts.join('  ')}  (${row.time.toFixed(2)}s)`;
}
