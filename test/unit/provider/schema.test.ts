// The schema model: implied cty type, Terraform's InternalValidate rules, the tfplugin6 shape and the
// `terraform providers schema -json` shape the CDKTF generator reads.
import test from "ava";
import { typeToJson, types } from "../../../provider/src/plugin/cty.js";
import { checkPluginEnv, handshakeLine, MAGIC_COOKIE_VALUE, NOT_A_PLUGIN_MESSAGE } from "../../../provider/src/plugin/handshake.js";
import { formatPath, parsePath } from "../../../provider/src/plugin/diagnostics.js";
import { impliedType, type Schema, schemaToJson, schemaToProto, validateSchema } from "../../../provider/src/plugin/schema.js";
import { providerSchemasDocument } from "../../../provider/src/plugin/schema-document.js";
import { mckoProvider } from "../../../provider/src/provider.js";

const schema: Schema = {
  version: 2,
  block: {
    description: "A key.",
    attributes: {
      id: { type: types.string, computed: true, description: "Id." },
      name: { type: types.string, required: true, requiresReplace: true, description: "Name." },
      labels: { type: types.map(types.string), optional: true, description: "Labels." },
      secret_wo: { type: types.string, optional: true, writeOnly: true, sensitive: true, description: "Secret." },
      versions: { nested: { nesting: "list", attributes: { number: { type: types.number, computed: true, description: "N." } } }, computed: true, description: "Versions." },
    },
    blocks: {
      aws_kms: { nesting: "single", maxItems: 1, block: { attributes: { region: { type: types.string, required: true, description: "Region." } } } },
      rule: { nesting: "set", block: { attributes: { port: { type: types.number, optional: true, description: "Port." } } } },
    },
  },
};

test("implied type: attributes, nested attributes, blocks by nesting mode", (t) => {
  t.deepEqual(typeToJson(impliedType(schema.block)), [
    "object",
    {
      aws_kms: ["object", { region: "string" }],
      id: "string",
      labels: ["map", "string"],
      name: "string",
      rule: ["set", ["object", { port: "number" }]],
      secret_wo: "string",
      versions: ["list", ["object", { number: "number" }]],
    },
  ]);
});

test("validateSchema applies Terraform's InternalValidate rules", (t) => {
  t.deepEqual(validateSchema(schema), []);
  const bad: Schema = {
    version: 0,
    block: {
      attributes: {
        "Bad-Name": { type: types.string, optional: true, description: "" },
        both: { type: types.string, required: true, optional: true, description: "" },
        none: { type: types.string, description: "" },
        wo: { type: types.string, computed: true, writeOnly: true, description: "" },
        rule: { type: types.string, optional: true, description: "" },
      },
      blocks: { rule: { nesting: "map", minItems: 1, block: { attributes: {} } } },
    },
  };
  const problems = validateSchema(bad).join("\n");
  for (const re of [/Bad-Name: invalid name/, /both: required and optional/, /none: one of required/, /wo: write-only/, /rule: name used by an attribute and a block/, /rule: map blocks take no min\/max/]) {
    t.regex(problems, re);
  }
});

test("tfplugin6 shape: type bytes as JSON, nesting enums, write_only, schema version", (t) => {
  const p = schemaToProto(schema);
  t.is(p.version, 2n);
  const byName = Object.fromEntries((p.block?.attributes ?? []).map((a) => [a.name, a]));
  t.is(byName["labels"]?.type.toString(), '["map","string"]');
  t.true(byName["secret_wo"]?.writeOnly);
  t.is(byName["versions"]?.type.length, 0);
  t.is(byName["versions"]?.nestedType?.nesting, 2);
  t.deepEqual(p.block?.blockTypes.map((b) => [b.typeName, b.nesting, b.maxItems]), [["aws_kms", 1, 1n], ["rule", 3, 0n]]);
});

test("schema JSON shape (terraform providers schema -json)", (t) => {
  const j = schemaToJson(schema);
  t.is(j.version, 2);
  t.deepEqual(j.block.attributes?.["name"], { type: "string", description: "Name.", description_kind: "plain", required: true });
  t.deepEqual(j.block.attributes?.["secret_wo"], { type: "string", description: "Secret.", description_kind: "plain", optional: true, sensitive: true, write_only: true });
  t.deepEqual(j.block.attributes?.["versions"]?.nested_type?.nesting_mode, "list");
  t.deepEqual(j.block.block_types?.["aws_kms"], {
    nesting_mode: "single",
    max_items: 1,
    block: { attributes: { region: { type: "string", description: "Region.", description_kind: "plain", required: true } }, description_kind: "plain" },
  });
});

test("the whole provider document for the MCKO provider", (t) => {
  const doc = providerSchemasDocument("registry.terraform.io/mcko/mcko", mckoProvider({ env: {} }));
  t.is(doc.format_version, "1.0");
  const p = doc.provider_schemas["registry.terraform.io/mcko/mcko"];
  t.truthy(p?.provider.block.attributes?.["address"]);
  t.true(p?.provider.block.attributes?.["client_key"]?.sensitive);
  t.deepEqual(Object.keys(p?.resource_schemas ?? {}).sort(), ["mcko_key", "mcko_key_distribution", "mcko_keystore", "mcko_vault"]);
  t.deepEqual(Object.keys(p?.data_source_schemas ?? {}).sort(), ["mcko_key", "mcko_keys", "mcko_keystore"]);
  const provider = mckoProvider({ env: {} });
  t.deepEqual(validateSchema(provider.schema), []);
  for (const r of [...provider.resources, ...provider.dataSources]) t.deepEqual(validateSchema(r.schema), [], r.typeName);
});

test("attribute paths parse and format", (t) => {
  t.deepEqual(parsePath('aws_kms[0].region'), [{ attribute: "aws_kms" }, { index: 0 }, { attribute: "region" }]);
  t.deepEqual(parsePath('labels["env"]'), [{ attribute: "labels" }, { key: "env" }]);
  t.is(formatPath(parsePath('a.b[2]["k.x"]')), 'a.b[2]["k.x"]');
  t.throws(() => parsePath("a..b"));
});

test("handshake checks and line", (t) => {
  t.deepEqual(checkPluginEnv({ magicCookie: undefined, protocolVersions: "5,6", clientCertPem: undefined }), { ok: false, message: NOT_A_PLUGIN_MESSAGE });
  t.deepEqual(checkPluginEnv({ magicCookie: MAGIC_COOKIE_VALUE, protocolVersions: "6,5", clientCertPem: undefined }), { ok: true });
  t.false(checkPluginEnv({ magicCookie: MAGIC_COOKIE_VALUE, protocolVersions: "4,5", clientCertPem: undefined }).ok);
  t.is(handshakeLine("tcp", "127.0.0.1:1234", Buffer.from([1, 2, 3, 4])), "1|6|tcp|127.0.0.1:1234|grpc|AQIDBA\n");
  t.is(handshakeLine("unix", "/tmp/p.sock"), "1|6|unix|/tmp/p.sock|grpc|\n");
});
