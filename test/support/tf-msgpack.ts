// A tiny MessagePack writer and reader for tests, written from the MessagePack spec and independent of both
// @msgpack/msgpack and the provider's codec: tests encode what Terraform would send with it, and read the provider's
// answers with it, so a codec bug cannot cancel itself out.

/** Values the writer understands. Maps keep the given key order. */
export type Mp =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | Mp[]
  | { readonly $map: readonly (readonly [Mp, Mp])[] }
  | { readonly $ext: number; readonly data: Uint8Array }
  | { readonly $f64: number };

/** Map with string keys in insertion order. */
export const map = (o: Record<string, Mp>): Mp => ({ $map: Object.entries(o) });
/** Map with arbitrary keys (e.g. the integer keys of refinements). */
export const mapOf = (entries: readonly (readonly [Mp, Mp])[]): Mp => ({ $map: entries });
export const ext = (type: number, data: Uint8Array | number[]): Mp => ({ $ext: type, data: Uint8Array.from(data) });
/** Force float64 even for integral numbers. */
export const f64 = (n: number): Mp => ({ $f64: n });
export const bin = (s: string): Mp => new TextEncoder().encode(s);
/** Terraform's plain unknown: fixext1 type 0 with one zero byte (d4 00 00). */
export const UNKNOWN_MP: Mp = ext(0, [0]);

export function pack(v: Mp): Buffer {
  const out: number[] = [];
  write(v, out);
  return Buffer.from(out);
}

function be(n: bigint, bytes: number, out: number[]): void {
  for (let i = bytes - 1; i >= 0; i--) out.push(Number((n >> BigInt(8 * i)) & 0xffn));
}

function write(v: Mp, out: number[]): void {
  if (v === null) return void out.push(0xc0);
  if (v === true) return void out.push(0xc3);
  if (v === false) return void out.push(0xc2);
  if (typeof v === "number" && !Number.isInteger(v)) return write({ $f64: v }, out);
  if (typeof v === "number" || typeof v === "bigint") {
    const n = BigInt(v);
    if (n >= 0n && n <= 0x7fn) return void out.push(Number(n));
    if (n < 0n && n >= -32n) return void out.push(Number(n) & 0xff);
    if (n >= 0n) {
      if (n <= 0xffn) return out.push(0xcc), be(n, 1, out);
      if (n <= 0xffffn) return out.push(0xcd), be(n, 2, out);
      if (n <= 0xffffffffn) return out.push(0xce), be(n, 4, out);
      return out.push(0xcf), be(n, 8, out);
    }
    if (n >= -128n) return out.push(0xd0), be(BigInt.asUintN(8, n), 1, out);
    if (n >= -32768n) return out.push(0xd1), be(BigInt.asUintN(16, n), 2, out);
    if (n >= -2147483648n) return out.push(0xd2), be(BigInt.asUintN(32, n), 4, out);
    return out.push(0xd3), be(BigInt.asUintN(64, n), 8, out);
  }
  if (typeof v === "string") {
    const b = new TextEncoder().encode(v);
    if (b.length < 32) out.push(0xa0 | b.length);
    else if (b.length < 0x100) out.push(0xd9, b.length);
    else out.push(0xda), be(BigInt(b.length), 2, out);
    return void out.push(...b);
  }
  if (v instanceof Uint8Array) {
    if (v.length < 0x100) out.push(0xc4, v.length);
    else out.push(0xc5), be(BigInt(v.length), 2, out);
    return void out.push(...v);
  }
  if (Array.isArray(v)) {
    if (v.length < 16) out.push(0x90 | v.length);
    else out.push(0xdc), be(BigInt(v.length), 2, out);
    for (const x of v) write(x, out);
    return;
  }
  if ("$f64" in v) {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(v.$f64);
    return void out.push(0xcb, ...b);
  }
  if ("$ext" in v) {
    const fixed: Record<number, number> = { 1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8 };
    const f = fixed[v.data.length];
    if (f !== undefined) out.push(f, v.$ext);
    else out.push(0xc7, v.data.length, v.$ext);
    return void out.push(...v.data);
  }
  const entries = v.$map;
  if (entries.length < 16) out.push(0x80 | entries.length);
  else out.push(0xde), be(BigInt(entries.length), 2, out);
  for (const [k, x] of entries) {
    write(k, out);
    write(x, out);
  }
}

/** What the reader returns: maps as plain objects with string keys, ext as {ext, data}, bin as Uint8Array. */
export type Read = null | boolean | number | bigint | string | Uint8Array | Read[] | { [k: string]: Read } | ReadExt;
export class ReadExt {
  constructor(
    readonly ext: number,
    readonly data: Uint8Array,
  ) {}
}

export function unpack(buf: Uint8Array): Read {
  const b = Buffer.from(buf);
  let pos = 0;
  const n = (bytes: number, signed = false): bigint => {
    let x = 0n;
    for (let i = 0; i < bytes; i++) x = (x << 8n) | BigInt(b[pos++] as number);
    return signed ? BigInt.asIntN(bytes * 8, x) : x;
  };
  const small = (x: bigint): number | bigint => (x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x);
  const bytes = (len: number): Uint8Array => {
    const s = b.subarray(pos, pos + len);
    pos += len;
    return Uint8Array.from(s);
  };
  const str = (len: number): string => new TextDecoder().decode(bytes(len));
  const arr = (len: number): Read[] => Array.from({ length: len }, () => read());
  const mp = (len: number): { [k: string]: Read } => {
    const o: { [k: string]: Read } = {};
    for (let i = 0; i < len; i++) {
      const k = read();
      o[String(k)] = read();
    }
    return o;
  };
  const read = (): Read => {
    const c = b[pos++] as number;
    if (c <= 0x7f) return c;
    if (c >= 0xe0) return c - 0x100;
    if ((c & 0xf0) === 0x80) return mp(c & 0x0f);
    if ((c & 0xf0) === 0x90) return arr(c & 0x0f);
    if ((c & 0xe0) === 0xa0) return str(c & 0x1f);
    switch (c) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return bytes(Number(n(1)));
      case 0xc5: return bytes(Number(n(2)));
      case 0xc6: return bytes(Number(n(4)));
      case 0xc7: { const len = Number(n(1)); const t = Number(n(1, true)); return new ReadExt(t, bytes(len)); }
      case 0xc8: { const len = Number(n(2)); const t = Number(n(1, true)); return new ReadExt(t, bytes(len)); }
      case 0xca: { const x = b.readFloatBE(pos); pos += 4; return x; }
      case 0xcb: { const x = b.readDoubleBE(pos); pos += 8; return x; }
      case 0xcc: return small(n(1));
      case 0xcd: return small(n(2));
      case 0xce: return small(n(4));
      case 0xcf: return small(n(8));
      case 0xd0: return small(n(1, true));
      case 0xd1: return small(n(2, true));
      case 0xd2: return small(n(4, true));
      case 0xd3: return small(n(8, true));
      case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: {
        const len = 1 << (c - 0xd4);
        const t = Number(n(1, true));
        return new ReadExt(t, bytes(len));
      }
      case 0xd9: return str(Number(n(1)));
      case 0xda: return str(Number(n(2)));
      case 0xdb: return str(Number(n(4)));
      case 0xdc: return arr(Number(n(2)));
      case 0xdd: return arr(Number(n(4)));
      case 0xde: return mp(Number(n(2)));
      case 0xdf: return mp(Number(n(4)));
    }
    throw new Error(`msgpack: unsupported byte 0x${c.toString(16)} at ${pos - 1}`);
  };
  const v = read();
  if (pos !== b.length) throw new Error(`msgpack: ${b.length - pos} trailing bytes`);
  return v;
}
