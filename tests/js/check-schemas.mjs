// Reads every schema tidings emitted the way a JavaScript service would:
// ajv (JSON Schema 2020-12) compiles each payload schema and validates its
// golden sample, rejects broken samples, @asyncapi/parser parses the AsyncAPI
// document, and json-schema-to-typescript turns each payload into a type.
// Usage: node check-schemas.mjs <schemas dir>; prints one JSON line, exits 1 on any failure.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { Parser } from "@asyncapi/parser";
import { compile } from "json-schema-to-typescript";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node check-schemas.mjs <schemas dir>");
  process.exit(2);
}

function walk(d) {
  return readdirSync(d).flatMap((name) => {
    const p = join(d, name);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

const failures = [];
// Ajv's defaults (strict mode: an unknown keyword or format is an error)
// and the formats of ajv-formats, nothing else: what a JavaScript service
// that reads these schemas would write.
const ajv = new Ajv2020();
addFormats(ajv);

const files = walk(dir).filter((p) => /\/v\d+\.json$/.test(p));
let samples = 0;
let typescript = 0;
for (const file of files) {
  const rel = relative(dir, file);
  const schema = JSON.parse(readFileSync(file, "utf8"));
  if (!ajv.validateSchema(schema)) {
    failures.push(`${rel}: not a valid 2020-12 schema: ${ajv.errorsText(ajv.errors)}`);
    continue;
  }
  let validate;
  try {
    validate = ajv.compile(schema);
  } catch (e) {
    failures.push(`${rel}: ajv (strict, ajv-formats) refuses it: ${e.message}`);
    continue;
  }
  const sampleFile = file.replace(/\.json$/, ".sample.json");
  let sample;
  try {
    sample = JSON.parse(readFileSync(sampleFile, "utf8"));
  } catch (e) {
    failures.push(`${rel}: no readable sample beside it (${e.message})`);
  }
  if (sample !== undefined) {
    samples += 1;
    if (!validate(sample)) failures.push(`${rel}: its sample is rejected: ${ajv.errorsText(validate.errors)}`);
    if (validate({ ...sample, __not_a_field__: 1 })) failures.push(`${rel}: a sample with an unknown field is accepted (schema not closed)`);
    if (validate([])) failures.push(`${rel}: an array is accepted as the payload`);
    const required = schema.required ?? [];
    if (required.length > 0) {
      const broken = { ...sample };
      delete broken[required[0]];
      if (validate(broken)) failures.push(`${rel}: a sample without required \`${required[0]}\` is accepted`);
    }
  }
  try {
    const ts = await compile(schema, "Payload", { bannerComment: "", additionalProperties: false, cwd: dir });
    if (!/export (interface|type) \w+/.test(ts)) failures.push(`${rel}: json-schema-to-typescript produced no type`);
    else typescript += 1;
  } catch (e) {
    failures.push(`${rel}: json-schema-to-typescript failed: ${e.message}`);
  }
}

let asyncapi = "absent";
try {
  const doc = readFileSync(join(dir, "asyncapi.json"), "utf8");
  const parser = new Parser();
  const { document, diagnostics } = await parser.parse(doc);
  const errors = diagnostics.filter((d) => d.severity === 0);
  if (errors.length > 0 || !document) {
    failures.push(`asyncapi.json: ${errors.map((d) => `${d.message} at ${d.path.join("/")}`).join("; ")}`);
    asyncapi = "invalid";
  } else {
    asyncapi = `${document.channels().length} channels, ${document.messages().length} messages`;
  }
} catch (e) {
  failures.push(`asyncapi.json: ${e.message}`);
}

console.log(JSON.stringify({ schemas: files.length, samples, typescript, asyncapi, failures }));
process.exit(failures.length === 0 ? 0 : 1);
