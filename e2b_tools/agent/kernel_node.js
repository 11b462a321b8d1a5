// A stateful JavaScript / TypeScript code context: a child process of the agent.
//
// Requests arrive as JSON lines on the fd in argv[2]; results, errors and "done" go
// back as JSON lines on the fd in argv[3]; console output goes to this process's
// stdout/stderr (pipes the agent forwards; writes to pipes are synchronous on Linux,
// so output always precedes the result that follows it).
//
// Code runs in this realm with vm.runInThisContext: globals and top-level let/const/
// class declarations persist across calls. Code with top-level `await` is rewritten
// (with acorn, as Node's REPL does) into an async function whose declarations become
// globals and whose last expression is returned.
"use strict";

const fs = require("fs");
const path = require("path");
const readline = require("readline");
const util = require("util");
const vm = require("vm");
const { createRequire } = require("module");

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

const acorn = load("acorn");
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
  const out = ts.transpileModule(code, {
    compilerOptions: {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      alwaysStrict: false,
      esModuleInterop: true,
    },
    reportDiagnostics: false,
  });
  return out.outputText.replace(/^export \{\};\s*$/m, "");
}

// Top-level await: turn the cell into `(async () => { ...; return <last expr> })()`,
// with its declarations turned into assignments to globals so they outlive the call.
function wrapAwait(code) {
  if (!acorn) return null;
  let ast;
  try {
    ast = acorn.parse(code, { ecmaVersion: "latest", allowAwaitOutsideFunction: true });
  } catch (err) {
    return null;
  }
  const edits = [];
  const names = [];
  for (const node of ast.body) {
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
  edits.sort((a, b) => b[0] - a[0] || b[1] - a[1]);
  let body = code;
  for (const [start, end, text] of edits) body = body.slice(0, start) + text + body.slice(end);
  const decl = names.length ? `var ${[...new Set(names)].join(", ")};\n` : "";
  return `${decl}(async () => {\n${body}\n})()`;
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
  const data = {
    "text/plain": typeof value === "string" ? `'${value}'` : util.inspect(value, { depth: 4 }),
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
    let script;
    let wrapped = false;
    try {
      script = new vm.Script(code, { filename });
    } catch (err) {
      const asyncCode = err instanceof SyntaxError && /await/.test(err.message) ? wrapAwait(code) : null;
      if (asyncCode === null) throw err;
      script = new vm.Script(asyncCode, { filename });
      wrapped = true;
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
