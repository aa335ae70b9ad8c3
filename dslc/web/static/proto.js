// The trained model.onnx: the inference graph with its initializers' bytes replaced.
//
// An ONNX file is a protobuf ModelProto. We walk just enough of it to find,
// for each initializer, where its raw_data bytes lie:
//   ModelProto.graph = field 7;  GraphProto.initializer = field 5 (TensorProto);
//   TensorProto.name = field 8;  TensorProto.raw_data = field 9 (little-endian, C order).
// The export stores every initializer as raw_data, and a trained value has the
// initializer's dtype and shape, so the new bytes overwrite the old ones in place:
// no re-encoding, every other byte of the file is kept.

function varint(buf, pos) {
  let value = 0, scale = 1, b;
  do {
    if (pos >= buf.length) throw new Error('onnx: truncated varint');
    b = buf[pos++];
    value += (b & 0x7f) * scale;
    scale *= 128;
  } while (b & 0x80);
  return [value, pos];
}

// Yield {field, wire, head, start, end} for every field of the message in buf[start, end):
// the field's bytes are buf[head, end), its payload buf[start, end).
function* fields(buf, start, end) {
  let pos = start;
  while (pos < end) {
    const head = pos;
    let key;
    [key, pos] = varint(buf, pos);
    const field = Math.floor(key / 8), wire = key & 7;
    let s = pos, e;
    if (wire === 0) { [, e] = varint(buf, pos); }
    else if (wire === 1) e = pos + 8;
    else if (wire === 5) e = pos + 4;
    else if (wire === 2) { let len; [len, s] = varint(buf, pos); e = s + len; }
    else throw new Error(`onnx: unsupported protobuf wire type ${wire}`);
    if (e > end) throw new Error('onnx: field runs past its message');
    yield { field, wire, head, start: s, end: e };
    pos = e;
  }
}

function sub(buf, start, end, field) {
  return [...fields(buf, start, end)].filter(f => f.field === field && f.wire === 2);
}

/** name -> {start, end} of each initializer's raw_data in the model bytes. */
export function initializerSpans(bytes) {
  const out = {};
  const dec = new TextDecoder();
  for (const g of sub(bytes, 0, bytes.length, 7)) {
    for (const t of sub(bytes, g.start, g.end, 5)) {
      let name = null, raw = null;
      for (const f of fields(bytes, t.start, t.end)) {
        if (f.field === 8 && f.wire === 2) name = dec.decode(bytes.subarray(f.start, f.end));
        if (f.field === 9 && f.wire === 2) raw = { start: f.start, end: f.end };
      }
      if (name !== null) out[name] = raw;
    }
  }
  return out;
}

function tensorBytes(data) {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** A copy of `modelBytes` whose initializers named in `values` (name -> ort.Tensor
 *  or typed array) hold those values. Names the graph does not have are skipped. */
export function withWeights(modelBytes, values) {
  const out = new Uint8Array(modelBytes);     // a copy
  const spans = initializerSpans(out);
  for (const [name, value] of Object.entries(values)) {
    if (!(name in spans)) continue;
    const span = spans[name];
    const bytes = tensorBytes(value.data ?? value);
    if (span === null) throw new Error(`export: initializer \`${name}\` has no raw_data to overwrite`);
    if (span.end - span.start !== bytes.length) {
      throw new Error(`export: \`${name}\` has ${span.end - span.start} bytes in the inference graph ` +
                      `but the trained value has ${bytes.length}`);
    }
    out.set(bytes, span.start);
  }
  return out;
}

// ----- initial values out of the graph ---------------------------------------------------------
// onnxruntime's JavaScript API feeds only the graph inputs that have no
// initializer (session.inputNames) and silently drops a feed for an input that
// also has one. The training graph keeps each carried tensor's initial value as
// an initializer of the input's name, so before creating a session the loop
// moves those initializers out of the model: they become plain inputs, and
// their values become the loop's starting state.

// TensorProto.data_type -> [dtype, TypedArray]
const TYPES = { 1: ['float32', Float32Array], 2: ['uint8', Uint8Array], 3: ['int8', Int8Array],
  5: ['int16', Int16Array], 6: ['int32', Int32Array], 7: ['int64', BigInt64Array], 9: ['bool', Uint8Array],
  10: ['float16', Uint16Array], 11: ['float64', Float64Array], 12: ['uint32', Uint32Array], 13: ['uint64', BigUint64Array] };

function encodeVarint(n) {
  const out = [];
  while (n >= 128) { out.push((n % 128) | 128); n = Math.floor(n / 128); }
  out.push(n);
  return out;
}

function concat(parts) {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let pos = 0;
  for (const p of parts) { out.set(p, pos); pos += p.length; }
  return out;
}

// A TensorProto's value: raw_data (field 9), or the packed typed fields
// float_data (4), int32_data (5), int64_data (7), double_data (10).
function decodeTensor(buf, start, end) {
  const dims = [];
  let type = 0, name = '', raw = null, packed = null;
  for (const f of fields(buf, start, end)) {
    if (f.field === 1 && f.wire === 0) dims.push(varint(buf, f.start)[0]);
    else if (f.field === 1 && f.wire === 2) {
      for (let p = f.start; p < f.end;) { let v; [v, p] = varint(buf, p); dims.push(v); }
    } else if (f.field === 2) type = varint(buf, f.start)[0];
    else if (f.field === 8) name = new TextDecoder().decode(buf.subarray(f.start, f.end));
    else if (f.field === 9) raw = buf.slice(f.start, f.end);
    else if ([4, 5, 7, 10].includes(f.field) && f.wire === 2) packed = { field: f.field, start: f.start, end: f.end };
    else if (f.field === 13) throw new Error(`onnx: initializer \`${name}\` uses external data, which the web loop cannot read`);
  }
  if (!(type in TYPES)) throw new Error(`onnx: initializer \`${name}\` has data type ${type}, which the web loop does not handle`);
  const [dtype, T] = TYPES[type];
  const count = dims.reduce((a, b) => a * b, 1);
  let data;
  if (raw) data = new T(raw.buffer, 0, count);
  else if (packed && (packed.field === 4 || packed.field === 10)) {
    const F = packed.field === 4 ? Float32Array : Float64Array;
    data = T.from(new F(buf.slice(packed.start, packed.end).buffer));
  } else if (packed) {          // varint-packed int32_data / int64_data (two's complement)
    const vals = [];
    for (let p = packed.start; p < packed.end;) {
      let v = 0n, shift = 0n, b;
      do { b = buf[p++]; v |= BigInt(b & 0x7f) << shift; shift += 7n; } while (b & 0x80);
      vals.push(BigInt.asIntN(64, v));
    }
    data = T === BigInt64Array || T === BigUint64Array ? T.from(vals) : T.from(vals.map(Number));
  } else data = new T(count);   // no data field: zeros (an empty or all-default tensor)
  if (data.length !== count) throw new Error(`onnx: initializer \`${name}\` holds ${data.length} values for shape [${dims}]`);
  return { name, dtype, shape: dims, data };
}

/** Move the initializers named in `names` out of the model.
 *  Returns {model: the model's bytes without them, values: {name: {dtype, shape, data}}}. */
export function takeInitializers(modelBytes, names) {
  const want = new Set(names);
  const values = {};
  const parts = [];
  for (const f of fields(modelBytes, 0, modelBytes.length)) {
    if (!(f.field === 7 && f.wire === 2)) { parts.push(modelBytes.subarray(f.head, f.end)); continue; }
    const keep = [];
    for (const g of fields(modelBytes, f.start, f.end)) {
      if (g.field === 5 && g.wire === 2) {
        const t = decodeTensor(modelBytes, g.start, g.end);
        if (want.has(t.name)) { values[t.name] = t; continue; }
      }
      keep.push(modelBytes.subarray(g.head, g.end));
    }
    const graph = concat(keep);
    parts.push(Uint8Array.from([0x3a, ...encodeVarint(graph.length)]), graph);   // 0x3a: field 7, wire 2
  }
  return { model: concat(parts), values };
}
