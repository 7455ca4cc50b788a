// Validate an AsyncAPI document with the official parser (@asyncapi/parser, pinned in
// package.json next to this file). Prints every diagnostic; exits 1 when any is an error
// (severity 0) or the document cannot be parsed. Run by tests/unit/docs/test_asyncapi.py:
//   node scripts/asyncapi/validate.mjs docs/asyncapi.json
// with NODE_PATH pointing at the node_modules scripts/setup.sh installed in .cache/asyncapi.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(process.env.ASYNCAPI_NODE_MODULES + "/");
const { Parser } = require("@asyncapi/parser");

const path = process.argv[2];
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(path, "utf8"), { source: path });
const severity = ["error", "warning", "info", "hint"];
for (const d of diagnostics) {
  console.log(`${severity[d.severity]} ${d.code} at ${d.path.join(".")}: ${d.message}`);
}
const errors = diagnostics.filter((d) => d.severity === 0);
if (!document || errors.length) {
  console.log(`${path}: ${errors.length} error(s): not a valid AsyncAPI document`);
  process.exit(1);
}
console.log(`${path}: valid AsyncAPI ${document.version()} (${document.channels().length} channels, ` +
            `${document.operations().length} operations, ${diagnostics.length} diagnostics)`);
