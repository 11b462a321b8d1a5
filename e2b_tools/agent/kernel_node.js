// A stateful JavaScript / TypeScript code context: a child process of the agent.
//
// Requests arrive as JSON lines on the fd in argv[2]; results, errors and "done" go
// back as JSON lines on the fd in argv[3]; console output goes to this process's
// stdout/stderr (pipes the agent forwards; writes to pipes are synchronous on Linux,
// so output always precedes the result that follows it).
//
// Code runs in this realm with vm.runInThisContext: globals and top-level let/const/
// class declarations persist across calls. Code with top-level `await`, ESM `import`
// or `export` statements is rewritten (with acorn, as Node's REPL does) into an async
// function whose declarations and imported names become globals and whose last
// expression is returned. Imports load through import() (ESM and CommonJS alike),
// resolved from the working directory as require() resolves (./node_modules, then
// NODE_PATH), so `import x from "x"` finds what `npm install x` put there.
"use strict";

const fs = require("fs");
const path = require("path");
const readline = require("readline");
const util = require("util");
const vm = require("vm");
const { builtinModules, createRequire } = require("module");
const { pathToFileURL } = require("url");

const reqFd = Number(process.argv[2]);
const ctlFd = Number(process.argv[3]);
const typescript = process.argv[4] === "typescript";
let count = 0;

function send(msg) {
  fs.writeSync(ctlFd, JSON.stringify(msg) + "\n");
}

function load(name) {
  try {
    return require(name);
  } catch (err) {
    return null;
  }
}

// The acorn package (Debian's node-acorn, npm i -g acorn), else the copy inside node
// itself (the one its REPL uses; reachable because the agent passes --expose-internals).
// Loaded for the first cell that needs it, so a context starts without it.
let acorn;
function parser() {
  if (acorn === undefined) acorn = load("acorn") || load("internal/deps/acorn/acorn/dist/acorn");
  return acorn;
}
const ts = typescript ? load("typescript") : null;

globalThis.require = createRequire(path.join(process.cwd(), "__e2b_tools_cell__.js"));
globalThis.module = { exports: {} };
globalThis.exports = globalThis.module.exports;
globalThis.display = (...values) => {
  for (const value of values) sendResult(value, false);
};

function transpile(code) {
  if (!typescript) return code;
  if (!ts) throw new Error("TypeScript is not installed in this sandbox (npm i -g typescript)");
  // Keep every import a cell writes, used or not (a later cell may use it); only
  // `import type` goes. TypeScript 5 says so with verbatimModuleSyntax, 4.x with
  // preserveValueImports.
  const major = Number(String(ts.versionMajorMinor || "0").split(".")[0]);
  const keepImports =
    major >= 5
      ? { verbatimModuleSyntax: true }
      : { preserveValueImports: true, isolatedModules: true };
  const out = ts.transpileModule(code, {
    compilerOptions: {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      alwaysStrict: false,
      esModuleInterop: true,
      ...keepImports,
    },
    reportDiagnostics: false,
  });
  return out.outputText.replace(/^export \{\};\s*$/m, "");
}

// -- imports ---------------------------------------------------------------------------
// Rewritten cells call these (a global the cell can reach but does not list).
const IMPORTER = "__e2b_tools_import__";
const BUILTINS = new Set(builtinModules);

function notFound(specifier, from) {
  const where = /^\.{0,2}\//.test(specifier)
    ? `no such file, relative to ${from}`
    : `searched node_modules in ${from} and its parents, and NODE_PATH; ` +
      `install it with: npm install ${specifier}`;
  const err = new Error(`Cannot find module '${specifier}' (${where})`);
  err.code = "ERR_MODULE_NOT_FOUND";
  return err;
}

// What import() is given for a specifier: builtins and URLs as they are; paths and
// package names resolved from the working directory as require() resolves them.
function resolveSpecifier(specifier) {
  if (BUILTINS.has(specifier) || /^[a-z][a-z0-9+.-]+:/i.test(specifier)) return specifier;
  const from = process.cwd();
  const req = createRequire(path.join(from, "__e2b_tools_cell__.js"));
  try {
    return pathToFileURL(req.resolve(specifier)).href;
  } catch (err) {
    const file = path.resolve(from, specifier);
    if (/^\.{0,2}\//.test(specifier) && fs.existsSync(file)) return pathToFileURL(file).href;
    if (err && err.code === "ERR_PACKAGE_PATH_NOT_EXPORTED") {
      const target = importTarget(req, specifier);
      if (target) return target;
      throw err; // names the package and the subpath it does not export
    }
    throw notFound(specifier, from);
  }
}

// A package whose "exports" offer no `require` entry (ESM only): its `import` one.
function importTarget(req, specifier) {
  const parts = specifier.split("/");
  const name = parts.slice(0, specifier.startsWith("@") ? 2 : 1).join("/");
  const subpath = ["."].concat(parts.slice(name.split("/").length)).join("/");
  for (const dir of req.resolve.paths(specifier) || []) {
    let manifest;
    try {
      manifest = JSON.parse(fs.readFileSync(path.join(dir, name, "package.json"), "utf8"));
    } catch (err) {
      continue;
    }
    let exp = manifest.exports;
    const bySubpath = exp && typeof exp === "object" && Object.keys(exp).some((k) => k[0] === ".");
    if (bySubpath) exp = exp[subpath];
    else if (subpath !== ".") exp = null;
    while (exp && typeof exp === "object") {
      const key = ["node", "import", "default"].find((k) => k in exp);
      exp = key ? exp[key] : null;
    }
    return typeof exp === "string" ? pathToFileURL(path.join(dir, name, exp)).href : null;
  }
  return null;
}

function missingExport(specifier, name) {
  return new SyntaxError(
    `The requested module '${specifier}' does not provide an export named '${name}'`,
  );
}

Object.defineProperty(globalThis, IMPORTER, {
  enumerable: false,
  value: Object.freeze({
    // import(specifier, options), as the cell would call it.
    load(specifier, options) {
      return options === undefined
        ? import(resolveSpecifier(String(specifier)))
        : import(resolveSpecifier(String(specifier)), options);
    },
    // One imported name of a module's namespace. CommonJS modules also lend the names
    // Node's export scan missed from module.exports (their `default`), as bundlers do.
    // TypeScript cells keep imports of types too: those come back undefined.
    binding(ns, name, specifier) {
      if (name in ns) return ns[name];
      const cjs = ns.default;
      if (cjs !== null && (typeof cjs === "object" || typeof cjs === "function") && name in cjs) {
        return cjs[name];
      }
      if (typescript) return undefined;
      throw missingExport(specifier, name);
    },
  }),
});

// -- rewriting a cell --------------------------------------------------------------------
// `import` statements become awaited import() bindings (hoisted, as ESM hoists them),
// import() calls go through the same resolver, `export` drops off declarations, and
// when the cell has any of those or top-level `await`, it becomes
// `var <names>; (async () => { ...; return <last expr> })()` with its declarations
// turned into assignments to globals so they outlive the call. Returns
// {code, wrapped}, or null when there is nothing to rewrite or no acorn to do it.
// A cell acorn cannot parse throws acorn's SyntaxError, pointing at the cell's line.
function rewrite(code, wrap, filename) {
  if (!parser()) return null;
  let ast;
  try {
    ast = acorn.parse(code, {
      ecmaVersion: "latest",
      allowAwaitOutsideFunction: true,
      allowImportExportEverywhere: true,
    });
  } catch (err) {
    if (!err.loc) throw err;
    const { line, column } = err.loc;
    const error = new SyntaxError(err.message.replace(/ \(\d+:\d+\)$/, ""));
    const source = code.split("\n")[line - 1] || "";
    const caret = `${" ".repeat(column)}^`;
    error.stack = `${filename}:${line}\n${source}\n${caret}\n\nSyntaxError: ${error.message}`;
    throw error;
  }
  const edits = [];
  const dynamic = [];
  findImportCalls(ast, dynamic);
  for (const node of dynamic) edits.push([node.start, node.source.start, `${IMPORTER}.load(`]);
  if (!wrap) return dynamic.length ? { code: apply(code, edits), wrapped: false } : null;

  const names = [];
  const prologue = [];
  // A statement that goes leaves its newlines: the lines after it keep their numbers.
  const blank = (node) =>
    edits.push([node.start, node.end, code.slice(node.start, node.end).replace(/[^\n]/g, "")]);
  for (let node of ast.body) {
    if (node.type === "ImportDeclaration") {
      prologue.push(importBindings(node, prologue.length, names));
      blank(node);
      continue;
    }
    if (node.type === "ExportNamedDeclaration" || node.type === "ExportDefaultDeclaration") {
      // `export` before a declaration goes (`export default` before a named function
      // or class too); `export { a }` goes; `export default <expr>` stays and fails.
      const decl = node.declaration;
      const named =
        node.type === "ExportNamedDeclaration" ||
        (decl.id && /^(Function|Class)Declaration$/.test(decl.type));
      if (!decl || !named) {
        if (node.type === "ExportNamedDeclaration") blank(node);
        continue;
      }
      edits.push([node.start, decl.start, ""]);
      node = decl;
    } else if (node.type === "ExportAllDeclaration") {
      blank(node);
      continue;
    }
    if (node.type === "VariableDeclaration") {
      edits.push([node.start, node.start + node.kind.length, ""]);
      for (const d of node.declarations) {
        collectNames(d.id, names);
        if (d.id.type !== "Identifier") {
          edits.push([d.start, d.start, "("]);
          edits.push([d.end, d.end, ")"]);
        }
        if (!d.init) edits.push([d.end, d.end, " = undefined"]);
      }
    } else if (node.type === "FunctionDeclaration" || node.type === "ClassDeclaration") {
      names.push(node.id.name);
      edits.push([node.start, node.start, `${node.id.name} = `]);
    }
  }
  const last = ast.body[ast.body.length - 1];
  if (last && last.type === "ExpressionStatement") {
    edits.push([last.start, last.start, "return ("]);
    edits.push([last.expression.end, last.expression.end, ")"]);
  }
  const body = apply(code, edits);
  const decl = names.length ? `var ${[...new Set(names)].join(", ")}; ` : "";
  // One line of preamble, on the cell's first line: error lines stay the cell's lines.
  return { code: `${decl}(async () => { ${prologue.join(" ")}${body}\n})()`, wrapped: true };
}

function apply(code, edits) {
  // Back to front; at one position the longer replacement first, then insertions.
  edits.sort((a, b) => b[0] - a[0] || b[1] - a[1]);
  let out = code;
  for (const [start, end, text] of edits) out = out.slice(0, start) + text + out.slice(end);
  return out;
}

function importBindings(node, index, names) {
  const source = JSON.stringify(node.source.value);
  const attributes = node.attributes || node.assertions || [];
  let options = "";
  if (attributes.length) {
    const pair = (a) =>
      `${JSON.stringify(a.key.name ?? a.key.value)}: ${JSON.stringify(a.value.value)}`;
    options = `, { with: { ${attributes.map(pair).join(", ")} } }`;
  }
  const ns = `__e2b_tools_module_${index}__`;
  const parts = [`const ${ns} = await ${IMPORTER}.load(${source}${options});`];
  for (const s of node.specifiers) {
    const local = s.local.name;
    names.push(local);
    if (s.type === "ImportNamespaceSpecifier") {
      parts.push(`${local} = ${ns};`);
    } else {
      const imported =
        s.type === "ImportDefaultSpecifier" ? "default" : s.imported.name ?? s.imported.value;
      const key = JSON.stringify(imported);
      parts.push(`${local} = ${IMPORTER}.binding(${ns}, ${key}, ${source});`);
    }
  }
  return parts.join(" ");
}

function collectNames(pattern, out) {
  if (!pattern) return;
  switch (pattern.type) {
    case "Identifier":
      out.push(pattern.name);
      break;
    case "ObjectPattern":
      for (const p of pattern.properties) collectNames(p.type === "RestElement" ? p.argument : p.value, out);
      break;
    case "ArrayPattern":
      for (const e of pattern.elements) collectNames(e && e.type === "RestElement" ? e.argument : e, out);
      break;
    case "AssignmentPattern":
      collectNames(pattern.left, out);
      break;
    case "RestElement":
      collectNames(pattern.argument, out);
      break;
  }
}

function findImportCalls(root, out) {
  // Iterative: a deeply nested expression must not overflow the stack here.
  const stack = [root];
  while (stack.length) {
    const node = stack.pop();
    if (Array.isArray(node)) {
      for (const child of node) if (child && typeof child === "object") stack.push(child);
      continue;
    }
    if (typeof node.type !== "string") continue;
    if (node.type === "ImportExpression") out.push(node);
    for (const key of Object.keys(node)) {
      const value = node[key];
      if (value && typeof value === "object") stack.push(value);
    }
  }
}

// Caps on what one result or error carries (characters), as in kernel_python.py.
const TEXT_LIMIT = 1 << 20;
const ERROR_LIMIT = 64 << 10;

function capped(text, limit) {
  if (typeof text !== "string" || text.length <= limit) return text;
  const half = Math.floor(limit / 2);
  return (
    `${text.slice(0, half)}\n[... ${text.length - 2 * half} characters omitted by e2b-tools: ` +
    `the value is ${text.length} characters long ...]\n${text.slice(-half)}`
  );
}

function sendResult(value, main) {
  // A string is its own text, as in E2B (`"Hello"` gives Hello, not 'Hello').
  const data = {
    "text/plain": typeof value === "string" ? value : util.inspect(value, { depth: 4 }),
  };
  if (value !== null && typeof value === "object") {
    try {
      const json = JSON.stringify(value);
      // A capped JSON text would not parse: past the limit, text/plain alone.
      if (json.length <= TEXT_LIMIT) data["application/json"] = json;
    } catch (err) {
      // circular or BigInt: text only
    }
  }
  data["text/plain"] = capped(data["text/plain"], TEXT_LIMIT);
  send({ type: "result", data, is_main_result: main });
}

function sendError(err) {
  const isError = err instanceof Error || (err && typeof err.stack === "string");
  const name = isError ? err.name || "Error" : "Error";
  const value = isError ? err.message : util.inspect(err);
  let stack = isError && typeof err.stack === "string" ? err.stack : `${name}: ${value}`;
  // Keep the user's frames; drop this kernel's and Node's internals.
  stack = stack
    .split("\n")
    .filter((line) => !line.includes(__filename) && !/\(node:|at node:/.test(line))
    .join("\n");
  send({
    type: "error",
    name: capped(String(name), ERROR_LIMIT),
    value: capped(String(value), ERROR_LIMIT),
    traceback: capped(stack, ERROR_LIMIT),
  });
}

async function execute(req) {
  count += 1;
  const filename = `<cell-${count}>`;
  const envs = req.envs || {};
  const saved = {};
  for (const [k, v] of Object.entries(envs)) {
    saved[k] = process.env[k];
    process.env[k] = String(v);
  }
  try {
    const code = transpile(String(req.code || ""));
    let script = null;
    let wrapped = false;
    let refused = null;
    try {
      script = new vm.Script(code, { filename });
    } catch (err) {
      // Node words these refusals many ways ("Unexpected identifier" for `await f()`).
      if (!(err instanceof SyntaxError) || !/\b(await|import|export)\b/.test(code)) throw err;
      refused = err;
    }
    // Only cells that need it are parsed: a refused one, or one that may call import().
    if (refused !== null || code.includes("import")) {
      let out = null;
      try {
        out = rewrite(code, refused !== null, filename);
      } catch (err) {
        // Node refuses any cell with import/export as "outside a module", whatever
        // its actual mistake: acorn's message names that mistake.
        if (refused !== null) throw /import|export/.test(refused.message) ? err : refused;
      }
      if (out === null && refused !== null) throw refused;
      if (out !== null) {
        try {
          script = new vm.Script(out.code, { filename });
        } catch (err) {
          // An import/export left inside a block: Node's own words, on the cell's line.
          throw refused !== null && /import|export/.test(String(err.message)) ? refused : err;
        }
        wrapped = out.wrapped;
      }
    }
    let value = script.runInThisContext({ breakOnSigint: true, displayErrors: false });
    if (wrapped) value = await value;
    if (value !== undefined) {
      globalThis._ = value;
      sendResult(value, true);
    }
  } catch (err) {
    sendError(err);
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    send({ type: "done", execution_count: count });
  }
}

// SIGINT interrupts synchronous code (breakOnSigint); while idle it is ignored.
process.on("SIGINT", () => {});
process.on("unhandledRejection", (reason) => {
  process.stderr.write(`Unhandled promise rejection: ${util.inspect(reason)}\n`);
});

const queue = [];
let busy = false;
async function pump() {
  if (busy) return;
  busy = true;
  while (queue.length) await execute(queue.shift());
  busy = false;
}

const rl = readline.createInterface({ input: fs.createReadStream(null, { fd: reqFd }) });
rl.on("line", (line) => {
  if (!line.trim()) return;
  queue.push(JSON.parse(line));
  pump();
});
rl.on("close", () => process.exit(0));
send({ type: "ready", pid: process.pid });
