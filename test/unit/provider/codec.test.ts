// The cty codec against hand-built byte vectors (go-cty's wire format, TFPLUGIN.md §3) and the independent test
// encoder, not only against itself.
import test from "ava";
import { CodecError, decodeJson, decodeMsgpack, encodeJson, encodeMsgpack } from "../../../provider/src/plugin/codec.js";
import { Dynamic, isUnknown, type CtyValue, types, Unknown, UNKNOWN, typeFromJson, typeToJson, isWhollyKnown, valuesEqual } from "../../../provider/src/plugin/cty.js";
import { bin, ext, f64, map, mapOf, pack, ReadExt, unpack, UNKNOWN_MP } from "../../support/tf-msgpack.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const fromHex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ""), "hex");

test("primitives decode from go-cty byte vectors", (t) => {
  t.is(decodeMsgpack(types.string, fromHex("a3 61 62 63")), "abc");
  t.is(decodeMsgpack(types.bool, fromHex("c3")), true);
  t.is(decodeMsgpack(types.bool, fromHex("c2")), false);
  t.is(decodeMsgpack(types.number, fromHex("2a")), 42);
  t.is(decodeMsgpack(types.number, fromHex("d0 9c")), -100);
  t.is(decodeMsgpack(types.number, fromHex("cb 3f f8 00 00 00 00 00 00")), 1.5);
  // int64 beyond 2^53 stays exact as bigint
  t.is(decodeMsgpack(types.number, fromHex("d3 7f ff ff ff ff ff ff ff")), 9223372036854775807n);
  // go-cty's decimal-string form for numbers beyond int64/float64
  t.is(decodeMsgpack(types.number, pack("123456789012345678901234567890")), 123456789012345678901234567890n);
  t.is(decodeMsgpack(types.number, pack("0.25")), 0.25);
  t.is(decodeMsgpack(types.string, fromHex("c0")), null);
  t.is(decodeMsgpack(types.string, new Uint8Array()), null, "empty DynamicValue means null");
});

test("primitives encode to go-cty's bytes", (t) => {
  t.is(hex(encodeMsgpack(types.string, "abc")), "a3616263");
  t.is(hex(encodeMsgpack(types.number, 42)), "2a");
  t.is(hex(encodeMsgpack(types.number, 1.5)), "cb3ff8000000000000");
  t.is(hex(encodeMsgpack(types.bool, true)), "c3");
  t.is(hex(encodeMsgpack(types.string, null)), "c0");
  t.is(unpack(encodeMsgpack(types.number, 9223372036854775807n)), 9223372036854775807n, "int64 max stays an integer");
  t.is(hex(encodeMsgpack(types.number, -(2n ** 63n))), "d38000000000000000");
  t.deepEqual(unpack(encodeMsgpack(types.number, 2n ** 70n)), String(2n ** 70n), "wider than int64 goes out as a decimal string");
  t.throws(() => encodeMsgpack(types.number, Number.NaN), { instanceOf: CodecError });
});

test("unknown: ext 0 encodes as d4 00 00 and any extension type decodes as unknown", (t) => {
  t.is(hex(encodeMsgpack(types.string, UNKNOWN)), "d40000");
  t.true(isUnknown(decodeMsgpack(types.string, fromHex("d4 00 00"))));
  // other ext types and lengths are unknowns too
  t.true(isUnknown(decodeMsgpack(types.number, pack(ext(5, [1, 2, 3])))));
  t.true(isUnknown(decodeMsgpack(types.list(types.string), pack(ext(0, [0, 0])))));
});

test("refined unknown (ext 12) as Terraform 1.11 sent it: {1:false, 2:'dep-'}", (t) => {
  // verified payload from TFPLUGIN.md §3.3: 82 01 c2 02 a4 "dep-"
  const bytes = fromHex("c7 09 0c 82 01 c2 02 a4 64 65 70 2d");
  const v = decodeMsgpack(types.string, bytes);
  t.true(v instanceof Unknown);
  t.deepEqual((v as Unknown).refinements, { nullable: false, stringPrefix: "dep-" });
  // and written back byte for byte
  t.is(hex(encodeMsgpack(types.string, v)), hex(bytes));
});

test("refined unknown with number and length bounds; unknown keys ignored", (t) => {
  const payload = pack(mapOf([[3, [1, true]], [4, [f64(9.5), false]], [5, 2], [6, 10], [99, "ignored"]]));
  const v = decodeMsgpack(types.number, pack(ext(12, payload)));
  t.deepEqual((v as Unknown).refinements, { numberLower: [1, true], numberUpper: [9.5, false], lengthLower: 2, lengthUpper: 10 });
  const garbage = decodeMsgpack(types.number, pack(ext(12, [0xc1])));
  t.true(garbage instanceof Unknown && !garbage.isRefined, "an unreadable payload is a plain unknown");
  t.is(hex(encodeMsgpack(types.string, new Unknown({}))), "d40000", "no refinements: always ext 0, never ext 12 with an empty map");
});

test("collections and structural types against the independent encoder", (t) => {
  const ty = types.object({
    s: types.string,
    l: types.list(types.number),
    st: types.set(types.string),
    m: types.map(types.bool),
    tu: types.tuple([types.string, types.number]),
    o: types.object({ x: types.number }),
  });
  const wire = pack(
    map({
      s: "x",
      l: [1, 2, f64(3.5)],
      st: ["a", "b"],
      m: map({ k: true }),
      tu: ["z", 7],
      o: map({ x: null }),
    }),
  );
  const v = decodeMsgpack(ty, wire);
  t.deepEqual(v, { s: "x", l: [1, 2, 3.5], st: ["a", "b"], m: { k: true }, tu: ["z", 7], o: { x: null } });
  // keys come back sorted, every attribute present
  t.deepEqual(unpack(encodeMsgpack(ty, v)), { l: [1, 2, 3.5], m: { k: true }, o: { x: null }, s: "x", st: ["a", "b"], tu: ["z", 7] });
  t.is(hex(encodeMsgpack(types.object({ b: types.string, a: types.number }), { a: 1, b: "q" })), "82a16101a162a171");
});

test("objects: every attribute present in output, null where absent; unknown attribute rejected", (t) => {
  const ty = types.object({ a: types.string, b: types.number, c: types.list(types.string) });
  t.deepEqual(unpack(encodeMsgpack(ty, { a: "x" })), { a: "x", b: null, c: null });
  t.throws(() => encodeMsgpack(ty, { a: "x", zz: 1 }), { instanceOf: CodecError, message: /unsupported attribute "zz"/ });
  t.throws(() => decodeMsgpack(ty, pack(map({ a: "x", zz: 1 }))), { instanceOf: CodecError });
  t.throws(() => decodeMsgpack(ty, pack(map({ a: 5 }))), { message: /\.a: string required, got number/ });
  t.deepEqual(decodeMsgpack(ty, pack(map({ a: "x", b: UNKNOWN_MP, c: [] }))), { a: "x", b: UNKNOWN, c: [] });
});

test("dynamic: [typeJSON as bin, value]; str type accepted; wholly unknown is a bare ext; null is nil", (t) => {
  const dynTy = types.object({ anything: types.dynamic });
  // what Terraform 1.11 sent (TFPLUGIN.md §3.2)
  const wire = pack(map({ anything: [bin('["object",{"x":"number","y":["tuple",["string"]]}]'), map({ x: 1, y: ["z"] })] }));
  const v = decodeMsgpack(dynTy, wire) as { anything: Dynamic };
  t.true(v.anything instanceof Dynamic);
  t.deepEqual(v.anything.value, { x: 1, y: ["z"] });
  t.deepEqual(typeToJson(v.anything.type), ["object", { x: "number", y: ["tuple", ["string"]] }]);
  // round trip keeps the type as bin
  const back = unpack(encodeMsgpack(dynTy, v)) as { anything: [Uint8Array, unknown] };
  t.true(back.anything[0] instanceof Uint8Array);
  t.is(new TextDecoder().decode(back.anything[0]), '["object",{"x":"number","y":["tuple",["string"]]}]');
  t.deepEqual(back.anything[1], { x: 1, y: ["z"] });
  // type as str
  const s = decodeMsgpack(types.dynamic, pack(['"string"', "hi"])) as Dynamic;
  t.is(s.value, "hi");
  t.is(s.type.kind, "string");
  t.true(isUnknown(decodeMsgpack(types.dynamic, pack(UNKNOWN_MP))));
  t.is(hex(encodeMsgpack(types.dynamic, UNKNOWN)), "d40000");
  t.is(decodeMsgpack(types.dynamic, pack(null)), null);
  // unknown of a known type inside a dynamic slot stays wrapped
  const wrapped = decodeMsgpack(types.dynamic, pack([bin('"number"'), UNKNOWN_MP])) as Dynamic;
  t.true(isUnknown(wrapped.value));
  // plain JS values in a dynamic slot get an inferred type
  const inferred = unpack(encodeMsgpack(types.dynamic, { n: 1, s: ["a"] })) as [Uint8Array, unknown];
  t.is(new TextDecoder().decode(inferred[0]), '["object",{"n":"number","s":["tuple",["string"]]}]');
});

test("type JSON round trips", (t) => {
  for (const j of ['"string"', '["list","number"]', '["map",["set","bool"]]', '["object",{"a":"string","b":["tuple",["number","dynamic"]]}]', '["object",{"a":"string"},["a"]]']) {
    t.is(JSON.stringify(typeToJson(typeFromJson(JSON.parse(j)))), j);
  }
  t.throws(() => typeFromJson("strin"));
  t.throws(() => typeFromJson(["list"]));
});

test("JSON form: state JSON with dynamic {value,type}, missing and dropped attributes", (t) => {
  const ty = types.object({ name: types.string, n: types.number, anything: types.dynamic, tags: types.map(types.string) });
  const state = '{"name":"a","old_attr":3,"anything":{"value":{"x":1},"type":["object",{"x":"number"}]}}';
  t.throws(() => decodeJson(ty, state), { instanceOf: CodecError });
  const v = decodeJson(ty, state, { ignoreUnknownAttributes: true }) as Record<string, CtyValue>;
  t.is(v["name"], "a");
  t.is(v["n"], null);
  t.is(v["tags"], null);
  t.deepEqual((v["anything"] as Dynamic).value, { x: 1 });
  // re-encoded as msgpack per the schema: [type, value] for the dynamic, nil for the missing ones
  const wire = unpack(encodeMsgpack(ty, v)) as Record<string, unknown>;
  t.deepEqual(Object.keys(wire), ["anything", "n", "name", "tags"]);
  t.is(new TextDecoder().decode((wire["anything"] as [Uint8Array])[0]), '["object",{"x":"number"}]');
  t.is(wire["n"], null);
  t.deepEqual(JSON.parse(encodeJson(ty, v)), {
    name: "a",
    n: null,
    anything: { value: { x: 1 }, type: ["object", { x: "number" }] },
    tags: null,
  });
  t.throws(() => encodeJson(types.string, UNKNOWN), { instanceOf: CodecError });
});

test("helpers: isWhollyKnown and valuesEqual", (t) => {
  t.true(isWhollyKnown({ a: [1, { b: "x" }] }));
  t.false(isWhollyKnown({ a: [1, { b: UNKNOWN }] }));
  t.true(valuesEqual({ a: [1, "x"], b: null }, { b: null, a: [1, "x"] }));
  t.false(valuesEqual({ a: 1 }, { a: 2 }));
  t.true(valuesEqual(5, 5n));
  t.false(valuesEqual(null, "x"));
});

test("an ExtData-looking ReadExt from the test reader is what the provider wrote", (t) => {
  const r = unpack(encodeMsgpack(types.string, new Unknown({ nullable: false })));
  t.true(r instanceof ReadExt);
  t.is((r as ReadExt).ext, 12);
  t.deepEqual(unpack((r as ReadExt).data), { "1": false });
});
