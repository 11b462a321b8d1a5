// Drives the real E2B JavaScript SDKs (`e2b`, `@e2b/code-interpreter`, pinned in
// package.json) against `e2b-tools serve`. Run by tests/engine/test_serve_js.py with
// only E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY set; the SDKs read them themselves.
//
// Every check runs on its own: a failure is recorded as {"error": "<Name>: <message>"}
// under the check's key and the next check still runs. The last stdout line is one JSON
// object of all results, which the Python test asserts field by field.
//
// Node's fetch (undici) drops a response body after 300 s without a byte; the checks
// here are short, and envd's keepalive events cover long commands.

import { createHash, randomBytes } from 'node:crypto'

import {
  AuthenticationError,
  CommandExitError,
  Sandbox as BaseSandbox,
} from 'e2b'
import { Sandbox } from '@e2b/code-interpreter'

const out = {}
const RUN = `js-${process.pid}-${Date.now()}`
const MIB = 1024 * 1024

function errorText(err) {
  const name = err?.name || err?.constructor?.name || typeof err
  return `${name}: ${err?.message ?? String(err)}`
}

async function check(name, fn) {
  const started = performance.now()
  try {
    out[name] = await fn()
  } catch (err) {
    out[name] = { error: errorText(err) }
  }
  console.error(`[sdk.mjs] ${name}: ${Math.round(performance.now() - started)} ms`)
}

// What a call that should fail raised: its class name plus chosen fields.
async function failure(fn, pick = () => ({})) {
  try {
    const value = await fn()
    return { raised: null, value: String(value) }
  } catch (err) {
    return { raised: err?.constructor?.name ?? String(err), message: err?.message, ...pick(err) }
  }
}

function sha256(bytes) {
  return createHash('sha256').update(bytes).digest('hex')
}

function withDeadline(promise, ms, what) {
  let timer
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} still pending after ${ms} ms`)), ms)
  })
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer))
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

let sbx
let other
try {
  await check('create', async () => {
    sbx = await Sandbox.create({ metadata: { run: RUN, role: 'main' }, timeoutMs: 300_000 })
    return { id: sbx.sandboxId, ok: typeof sbx.sandboxId === 'string' }
  })
  if (!sbx) throw new Error('create failed: ' + JSON.stringify(out.create))

  await check('create_base', async () => {
    other = await BaseSandbox.create('base', { metadata: { run: RUN, role: 'other' } })
    return { id: other.sandboxId }
  })

  // ---- commands ----
  await check('run', async () => {
    const r = await sbx.commands.run('echo hello; echo oops >&2; echo "$PWD"')
    return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode }
  })

  await check('run_envs_cwd', async () => {
    const r = await sbx.commands.run('echo "$GREETING" && pwd', { envs: { GREETING: 'hey' }, cwd: '/tmp' })
    return r.stdout
  })

  await check('exit_error', () =>
    failure(() => sbx.commands.run('echo partial; echo bad >&2; exit 3'), (err) => ({
      isCommandExitError: err instanceof CommandExitError,
      exitCode: err.exitCode,
      stdout: err.stdout,
      stderr: err.stderr,
    })),
  )

  await check('missing_cwd', () => failure(() => sbx.commands.run('pwd', { cwd: '/no/such/dir' })))

  await check('stream', async () => {
    const chunks = []
    const errs = []
    const r = await sbx.commands.run(
      'for i in 1 2 3; do echo line$i; echo err$i >&2; sleep 0.3; done',
      { onStdout: (d) => chunks.push(d), onStderr: (d) => errs.push(d) },
    )
    return { chunks: chunks.length, joined: chunks.join(''), stderr: errs.join(''), stdout: r.stdout }
  })

  await check('timeout', async () => {
    const result = await failure(() => sbx.commands.run('sleep 31', { timeoutMs: 1000 }))
    // envd kills a command at its deadline; give the kill a moment to land.
    let left = -1
    for (let i = 0; i < 20 && left !== 0; i++) {
      await sleep(250)
      left = (await sbx.commands.list()).filter((p) => [p.cmd, ...p.args].join(' ').includes('sleep 31')).length
    }
    return { raised: result.raised, left }
  })

  await check('flood', async () => {
    // 8 MB of output in one call, and the lines arrive in order.
    let chunks = 0
    const r = await sbx.commands.run('seq 1 1000000 | head -c 8000000; echo', {
      onStdout: () => chunks++,
    })
    const lines = r.stdout.split('\n')
    return { length: r.stdout.length, chunks: chunks > 1, first: lines[0], ordered: lines[99999] === '100000' }
  })

  await check('parallel', async () => {
    const runs = Array.from({ length: 8 }, (_, i) => sbx.commands.run(`sleep 0.5; echo job${i}`))
    const started = performance.now()
    const outs = (await Promise.all(runs)).map((r) => r.stdout)
    return { outs, overlapped: performance.now() - started < 3500 }
  })

  await check('background_kill', async () => {
    const h = await sbx.commands.run('sleep 600', { background: true })
    const listed = (await sbx.commands.list()).map((p) => p.pid)
    const killed = await h.kill()
    const waited = await failure(() => withDeadline(h.wait(), 20_000, 'wait after kill'), (err) => ({
      exitCode: err.exitCode,
    }))
    const after = (await sbx.commands.list()).map((p) => p.pid)
    const killedAgain = await sbx.commands.kill(h.pid)
    return {
      pidIsNumber: Number.isInteger(h.pid) && h.pid > 0,
      listed: listed.includes(h.pid),
      killed,
      waited,
      listedAfter: after.includes(h.pid),
      killedAgain,
    }
  })

  await check('background_output', async () => {
    const seen = []
    const h = await sbx.commands.run('sleep 0.3; echo done-bg', { background: true, onStdout: (d) => seen.push(d) })
    const r = await h.wait()
    return { stdout: r.stdout, callback: seen.join(''), exitCode: r.exitCode }
  })

  await check('stdin', async () => {
    const h = await sbx.commands.run('read line; echo "got:$line"', { background: true, stdin: true })
    await h.sendStdin('hi there\n')
    const r = await withDeadline(h.wait(), 20_000, 'read from stdin')
    return r.stdout
  })

  await check('stdin_close', async () => {
    const h = await sbx.commands.run('cat; echo "[eof]"', { background: true, stdin: true })
    await sbx.commands.sendStdin(h.pid, 'abc')
    await sbx.commands.sendStdin(h.pid, new Uint8Array([0x64, 0x65, 0x0a]))
    await sbx.commands.closeStdin(h.pid)
    const r = await withDeadline(h.wait(), 20_000, 'cat after closeStdin')
    return r.stdout
  })

  await check('connect_command', async () => {
    const h = await sbx.commands.run('sleep 1; echo attached', { background: true })
    const again = await sbx.commands.connect(h.pid)
    const r = await withDeadline(again.wait(), 20_000, 'connected handle')
    return { pidMatches: again.pid === h.pid, stdout: r.stdout }
  })

  // ---- files ----
  await check('text', async () => {
    const text = 'héllo ✓ wörld\nline 2\n'
    const info = await sbx.files.write('/home/user/hello.txt', text)
    const back = await sbx.files.read('/home/user/hello.txt')
    const relative = await sbx.files.read('hello.txt')
    return { same: back === text, relative: relative === text, name: info.name, path: info.path }
  })

  const big = randomBytes(10 * MIB + 7)
  const bigSha = sha256(big)
  const inSandboxSha = async (path) =>
    (await sbx.commands.run(`sha256sum ${path}`)).stdout.split(' ')[0]

  await check('upload_arraybuffer', async () => {
    // The default (multipart) upload of an ArrayBuffer.
    const ab = big.buffer.slice(big.byteOffset, big.byteOffset + big.byteLength)
    await sbx.files.write('/home/user/big-ab.bin', ab)
    return { sandboxSha: (await inSandboxSha('/home/user/big-ab.bin')) === bigSha }
  })

  await check('download_bytes', async () => {
    const back = await sbx.files.read('/home/user/big-ab.bin', { format: 'bytes' })
    return { isUint8Array: back instanceof Uint8Array, length: back.length, same: sha256(back) === bigSha }
  })

  await check('upload_blob_octet', async () => {
    await sbx.files.write('/home/user/big-blob.bin', new Blob([big]), { useOctetStream: true })
    const back = await sbx.files.read('/home/user/big-blob.bin', { format: 'blob' })
    const bytes = new Uint8Array(await back.arrayBuffer())
    return {
      sandboxSha: (await inSandboxSha('/home/user/big-blob.bin')) === bigSha,
      isBlob: back instanceof Blob,
      same: sha256(bytes) === bigSha,
    }
  })

  await check('upload_gzip', async () => {
    await sbx.files.write('/home/user/big-gz.bin', new Blob([big]), { gzip: true })
    return { sandboxSha: (await inSandboxSha('/home/user/big-gz.bin')) === bigSha }
  })

  await check('stream_both_ways', async () => {
    const upload = new ReadableStream({
      start(controller) {
        for (let at = 0; at < big.length; at += MIB) controller.enqueue(big.subarray(at, at + MIB))
        controller.close()
      },
    })
    await sbx.files.write('/home/user/big-stream.bin', upload)
    const stream = await sbx.files.read('/home/user/big-stream.bin', { format: 'stream' })
    const hash = createHash('sha256')
    let length = 0
    for await (const part of stream) {
      hash.update(part)
      length += part.length
    }
    return { length, same: hash.digest('hex') === bigSha }
  })

  await check('sandbox_made_binary', async () => {
    // Bytes made inside the sandbox (every byte value, then random) come back exact.
    const made = await sbx.commands.run(
      "python3 -c \"import sys; sys.stdout.buffer.write(bytes(range(256)))\" > /tmp/made.bin" +
        ' && head -c 10485760 /dev/urandom >> /tmp/made.bin && sha256sum /tmp/made.bin',
    )
    const back = await sbx.files.read('/tmp/made.bin', { format: 'bytes' })
    return {
      length: back.length,
      same: sha256(back) === made.stdout.split(' ')[0],
      head: Array.from(back.subarray(0, 4)),
    }
  })

  await check('empty_file', async () => {
    await sbx.files.write('/home/user/empty.txt', '')
    const text = await sbx.files.read('/home/user/empty.txt')
    const bytes = await sbx.files.read('/home/user/empty.txt', { format: 'bytes' })
    return { text, bytes: bytes.length }
  })

  await check('write_many', async () => {
    const infos = await sbx.files.write([
      { path: '/home/user/many/a.txt', data: 'A' },
      { path: '/home/user/many/b.bin', data: new Uint8Array([0, 255, 1]).buffer },
    ])
    const a = await sbx.files.read('/home/user/many/a.txt')
    const b = await sbx.files.read('/home/user/many/b.bin', { format: 'bytes' })
    return { count: infos.length, a, b: Array.from(b) }
  })

  await check('dirs', async () => {
    const made = await sbx.files.makeDir('/home/user/d/sub')
    const madeAgain = await sbx.files.makeDir('/home/user/d/sub')
    await sbx.files.write('/home/user/d/a.txt', 'x')
    const entries = await sbx.files.list('/home/user/d')
    const listed = entries.map((e) => [e.name, e.type, e.path]).sort()
    const deep = (await sbx.files.list('/home/user/d', { depth: 2 })).map((e) => e.path).sort()
    const info = await sbx.files.getInfo('/home/user/d/a.txt')
    const existed = await sbx.files.exists('/home/user/d/a.txt')
    const renamed = await sbx.files.rename('/home/user/d/a.txt', '/home/user/d/b.txt')
    const after = [await sbx.files.exists('/home/user/d/a.txt'), await sbx.files.exists('/home/user/d/b.txt')]
    await sbx.files.remove('/home/user/d')
    return {
      made,
      madeAgain,
      listed,
      deep,
      info: { name: info.name, type: info.type, size: info.size },
      existed,
      renamed: { name: renamed.name, path: renamed.path },
      after,
      removed: !(await sbx.files.exists('/home/user/d')),
      missing: await sbx.files.exists('/home/user/no-such-file'),
    }
  })

  await check('presigned', async () => {
    // Pre-signed URLs carry no sandbox header: the server finds the sandbox by signature.
    const up = await sbx.uploadUrl('/home/user/signed.txt')
    const form = new FormData()
    form.append('file', new Blob(['signed ✓']), 'signed.txt')
    const put = await fetch(up, { method: 'POST', body: form })
    await put.arrayBuffer()
    const down = await sbx.downloadUrl('/home/user/signed.txt', { useSignatureExpiration: 60 })
    const got = await fetch(down)
    const forgedUrl = new URL(down)
    forgedUrl.searchParams.set('signature', 'v1_' + 'A'.repeat(43))
    const forged = await fetch(forgedUrl)
    await forged.arrayBuffer()
    const bareUrl = new URL(down)
    bareUrl.searchParams.delete('signature')
    bareUrl.searchParams.delete('signature_expiration')
    const bare = await fetch(bareUrl)
    await bare.arrayBuffer()
    return {
      upload: put.status,
      download: got.status,
      text: await got.text(),
      forged: forged.status,
      unsigned: bare.status,
    }
  })

  await check('read_missing', () => failure(() => sbx.files.read('/home/user/no-such-file')))
  await check('read_dir', () => failure(() => sbx.files.read('/home/user')))

  // ---- code interpreter ----
  await check('code_state', async () => {
    await sbx.runCode('x = 41')
    const e = await sbx.runCode('x + 1')
    const printed = await sbx.runCode('print("hi"); import sys; print("warn", file=sys.stderr)')
    return { text: e.text, stdout: printed.logs.stdout, stderr: printed.logs.stderr, error: e.error ?? null }
  })

  await check('code_callbacks', async () => {
    const seen = []
    const results = []
    await sbx.runCode('for i in range(3): print(i)\n"last"', {
      onStdout: (m) => seen.push(m.line),
      onResult: (r) => results.push(r.text),
    })
    return { stdout: seen.join(''), results }
  })

  await check('png', async () => {
    const e = await sbx.runCode(
      'import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.title("t")\nplt.show()',
    )
    const png = e.results.find((r) => r.png)?.png
    const head = png ? Array.from(Buffer.from(png, 'base64').subarray(0, 4)) : null
    return { results: e.results.length, head, formats: e.results.map((r) => r.formats()), error: e.error ?? null }
  })

  await check('code_error', async () => {
    const e = await sbx.runCode('1 / 0')
    return {
      name: e.error?.name,
      value: e.error?.value,
      traceback: (e.error?.traceback ?? '').includes('ZeroDivisionError'),
    }
  })

  await check('code_timeout', async () => {
    const timedOut = await failure(() => sbx.runCode('import time; time.sleep(30)', { timeoutMs: 1500 }))
    const next = await sbx.runCode('x')
    return { timedOut, nextText: next.text }
  })

  await check('contexts', async () => {
    const ctx = await sbx.createCodeContext({ cwd: '/tmp' })
    const cwd = await sbx.runCode('import os; y = 5; print(os.getcwd())', { context: ctx })
    const y = await sbx.runCode('y', { context: ctx })
    const notInDefault = await sbx.runCode('y')
    const listed = (await sbx.listCodeContexts()).map((c) => c.id).includes(ctx.id)
    await sbx.restartCodeContext(ctx)
    const afterRestart = await sbx.runCode('y', { context: ctx })
    await sbx.removeCodeContext(ctx.id)
    const listedAfter = (await sbx.listCodeContexts()).map((c) => c.id).includes(ctx.id)
    // A short request timeout: on an error answer, @e2b/code-interpreter 2.8.0 leaves its
    // request timer (60 s by default) running, which keeps node alive until it fires.
    const removedRun = await failure(() => sbx.runCode('1', { context: ctx, requestTimeoutMs: 2000 }))
    return {
      language: ctx.language,
      cwd: cwd.logs.stdout.join(''),
      y: y.text,
      notInDefault: notInDefault.error?.name,
      listed,
      afterRestart: afterRestart.error?.name,
      listedAfter,
      removedRun: removedRun.raised,
    }
  })

  await check('code_js', async () => {
    const e = await sbx.runCode('const a = 20; a + 22', { language: 'js' })
    return { text: e.text, error: e.error ?? null }
  })

  await check('code_both', () => failure(() => sbx.runCode('1', { language: 'python', context: { id: 'x' } })))

  // ---- lifecycle ----
  await check('list', async () => {
    const mine = await Sandbox.list({ query: { metadata: { run: RUN, role: 'main' } } }).nextItems()
    const both = await BaseSandbox.list({ query: { metadata: { run: RUN } } }).nextItems()
    const none = await Sandbox.list({ query: { metadata: { run: 'no-such-run' } } }).nextItems()
    return {
      mine: mine.map((s) => s.sandboxId),
      both: both.map((s) => s.sandboxId).sort(),
      none: none.length,
      metadata: mine[0]?.metadata ?? null,
    }
  })

  await check('set_timeout', async () => {
    await sbx.setTimeout(600_000)
    const info = await sbx.getInfo()
    return { secondsLeft: Math.round((info.endAt.getTime() - Date.now()) / 1000) }
  })

  await check('get_info', async () => {
    const info = await sbx.getInfo()
    return {
      sandboxId: info.sandboxId,
      templateId: info.templateId,
      state: info.state,
      metadata: info.metadata,
      startedAtIsDate: info.startedAt instanceof Date && !Number.isNaN(info.startedAt.getTime()),
      running: await sbx.isRunning(),
    }
  })

  await check('connect', async () => {
    const again = await Sandbox.connect(sbx.sandboxId)
    const r = await again.commands.run('cat /home/user/hello.txt | head -1')
    const code = await again.runCode('x')
    return { sandboxId: again.sandboxId, stdout: r.stdout, x: code.text }
  })

  await check('killed_mid_call', async () => {
    // A sandbox killed while a command runs in it: the call fails, it does not hang.
    const running = other.commands.run('sleep 600', { timeoutMs: 0 })
    running.catch(() => {})
    await sleep(1000)
    const killed = await BaseSandbox.kill(other.sandboxId)
    const result = await failure(() => withDeadline(running, 60_000, 'command in a killed sandbox'))
    return { killed, raised: result.raised, message: result.message }
  })

  await check('kill', async () => {
    const again = await BaseSandbox.kill(other.sandboxId)
    const running = await other.isRunning()
    const connect = await failure(() => BaseSandbox.connect(other.sandboxId))
    const info = await failure(() => BaseSandbox.getInfo(other.sandboxId))
    const command = await failure(() => other.commands.run('echo nope'))
    return { again, running, connect: connect.raised, info: info.raised, command: command.raised }
  })

  await check('wrong_key', async () => {
    const key = 'e2b_' + '0'.repeat(40)
    const create = await failure(() => Sandbox.create({ apiKey: key }))
    const list = await failure(() => Sandbox.list({ apiKey: key }).nextItems())
    return {
      create: create.raised,
      createIsAuth: create.raised === AuthenticationError.name,
      list: list.raised,
    }
  })

  await check('final_kill', async () => {
    const killed = await sbx.kill()
    const left = await BaseSandbox.list({ query: { metadata: { run: RUN } } }).nextItems()
    sbx = undefined
    return { killed, left: left.length }
  })
} catch (err) {
  out.fatal = errorText(err)
} finally {
  for (const s of [sbx, other]) {
    if (s) await s.kill().catch(() => {})
  }
}

console.log(JSON.stringify(out))
