// Reading the user's own data: NumPy .npz (a zip of .npy files, stored or
// deflated) and single .npy files, into {name: {dtype, shape, data}}.
// `inflateRaw(bytes) -> Promise<Uint8Array>` is supplied by the host (the
// browser's DecompressionStream, Node's zlib).

const DESCR = {   // .npy descr -> [dtype, TypedArray]
  '<f4': ['float32', Float32Array], '<f8': ['float64', Float64Array], '<f2': ['float16', Uint16Array],
  '<i8': ['int64', BigInt64Array], '<i4': ['int32', Int32Array], '<i2': ['int16', Int16Array],
  '|i1': ['int8', Int8Array], '|u1': ['uint8', Uint8Array], '<u2': ['uint16', Uint16Array],
  '<u4': ['uint32', Uint32Array], '<u8': ['uint64', BigUint64Array], '|b1': ['bool', Uint8Array],
};

/** Parse one .npy file. */
export function parseNpy(bytes, name = 'array') {
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];   // \x93NUMPY
  if (bytes.length < 10 || !magic.every((m, i) => bytes[i] === m)) {
    throw new Error(`${name}: not a .npy array (no NUMPY magic)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6];
  const hlen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const hstart = major === 1 ? 10 : 12;
  const header = new TextDecoder('latin1').decode(bytes.subarray(hstart, hstart + hlen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw new Error(`${name}: unreadable .npy header ${header}`);
  if (!(descr in DESCR)) throw new Error(`${name}: dtype ${descr} is not supported (little-endian numbers or bool only)`);
  if (fortran === 'True') throw new Error(`${name}: Fortran-ordered arrays are not supported; save np.ascontiguousarray(a)`);
  const shape = shapeText.split(',').map(s => s.trim()).filter(s => s).map(Number);
  const [dtype, T] = DESCR[descr];
  const count = shape.reduce((a, b) => a * b, 1);
  const start = hstart + hlen;
  if (bytes.length - start < count * T.BYTES_PER_ELEMENT) throw new Error(`${name}: file is truncated`);
  const copy = bytes.slice(start, start + count * T.BYTES_PER_ELEMENT);   // aligned copy
  return { dtype, shape, data: new T(copy.buffer, 0, count) };
}

/** Parse an .npz (zip) file: name (without .npy) -> array. */
export async function parseNpz(bytes, inflateRaw) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 65557); i--) {
    if (view.getUint32(i, true) === 0x06054b50) { eocd = i; break; }
  }
  if (eocd < 0) {
    if (bytes[0] === 0x93) return { array: parseNpy(bytes) };
    throw new Error('not an .npz file (no zip directory found)');
  }
  let count = view.getUint16(eocd + 10, true);
  let pos = view.getUint32(eocd + 16, true);
  if (pos === 0xffffffff || count === 0xffff) {           // zip64 end of central directory
    const loc = eocd - 20;
    if (loc < 0 || view.getUint32(loc, true) !== 0x07064b50) throw new Error('npz: broken zip64 directory');
    const rec = Number(view.getBigUint64(loc + 8, true));
    count = Number(view.getBigUint64(rec + 32, true));
    pos = Number(view.getBigUint64(rec + 48, true));
  }
  const out = {};
  const dec = new TextDecoder();
  for (let k = 0; k < count; k++) {
    if (view.getUint32(pos, true) !== 0x02014b50) throw new Error('npz: broken zip directory');
    const method = view.getUint16(pos + 10, true);
    let csize = view.getUint32(pos + 20, true);
    const nlen = view.getUint16(pos + 28, true), xlen = view.getUint16(pos + 30, true);
    const clen = view.getUint16(pos + 32, true);
    let local = view.getUint32(pos + 42, true);
    const name = dec.decode(bytes.subarray(pos + 46, pos + 46 + nlen));
    // zip64 extra field (id 1): the 8-byte values that were 0xffffffff above, in order
    let x = pos + 46 + nlen;
    const xend = x + xlen;
    while (x + 4 <= xend) {
      const id = view.getUint16(x, true), len = view.getUint16(x + 2, true);
      if (id === 1) {
        let p = x + 4;
        if (view.getUint32(pos + 24, true) === 0xffffffff) p += 8;       // uncompressed size
        if (csize === 0xffffffff) { csize = Number(view.getBigUint64(p, true)); p += 8; }
        if (local === 0xffffffff) { local = Number(view.getBigUint64(p, true)); }
      }
      x += 4 + len;
    }
    pos = xend + clen;
    const dstart = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    let payload = bytes.subarray(dstart, dstart + csize);
    if (method === 8) payload = await inflateRaw(payload);
    else if (method !== 0) throw new Error(`npz: ${name} uses zip method ${method}; save with np.savez or np.savez_compressed`);
    if (!name.endsWith('.npy')) continue;
    out[name.slice(0, -4)] = parseNpy(payload, name);
  }
  return out;
}
