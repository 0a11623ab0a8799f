// Shared plumbing of the end-to-end tests: a temporary ledger with keys, a real
// `dizuo serve` on a free port, an openai client per key, and small HTTP helpers
// for the routes the SDK does not cover (admin, /tokenize, /metrics).
//
// Environment: DIZUO (path of the dizuo binary), SHARED (path of ../shared).
// run.sh checks both and skips (exit 77) before any test file loads this module.
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import OpenAI from 'openai';

export const DIZUO = process.env.DIZUO ? resolve(process.env.DIZUO) : '';
export const SHARED = resolve(process.env.SHARED || new URL('../../../shared', import.meta.url).pathname);
export const MODEL = join(SHARED, 'models', 'stories260K.gguf');
export const MODEL_ID = 'stories260K';
export const THREADS = '2';

/** Why the suite cannot run here, or null. */
export function skipReason() {
  if (!DIZUO || !existsSync(DIZUO)) return `DIZUO binary not found (${DIZUO || 'DIZUO unset'})`;
  if (!existsSync(MODEL)) return `model ${MODEL} absent`;
  return null;
}

/** Runs the dizuo CLI; resolves {code, stdout, stderr} (never rejects on exit codes). */
export function cli(args, { timeout = 60_000 } = {}) {
  return new Promise((res, rej) => {
    execFile(DIZUO, args, { timeout, maxBuffer: 16 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return rej(err);
      res({ code: err ? err.code : 0, stdout, stderr });
    });
  });
}

/** `dizuo keys create`; returns the printed key. opts: admin, quotaTokens, rpm, tpm, models. */
export async function createKey(db, tenant, opts = {}) {
  const args = ['keys', 'create', '--db', db, '--tenant', tenant];
  if (opts.admin) args.push('--admin');
  if (opts.quotaTokens != null) args.push('--quota-tokens', String(opts.quotaTokens));
  if (opts.rpm != null) args.push('--rpm', String(opts.rpm));
  if (opts.tpm != null) args.push('--tpm', String(opts.tpm));
  if (opts.models != null) args.push('--models', opts.models);
  const r = await cli(args);
  if (r.code !== 0) throw new Error(`dizuo ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  const key = r.stdout.trim();
  if (!/^dz-\S+$/.test(key)) throw new Error(`dizuo keys create printed ${JSON.stringify(r.stdout)}`);
  return key;
}

/**
 * Creates a temp dir and ledger, makes the keys (an object name -> {tenant, ...opts};
 * an "admin" key is always made), starts `dizuo serve` on port 0 and waits for its
 * "listening" line. Returns a server handle; call stop() in an after() hook.
 */
export async function startServer(keySpecs = {}, extraArgs = []) {
  const dir = mkdtempSync(join(tmpdir(), 'dizuo-e2e-'));
  try {
    return await launch(dir, keySpecs, extraArgs);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

async function launch(dir, keySpecs, extraArgs) {
  const db = join(dir, 'ledger.db');
  const keys = {};
  keys.admin = await createKey(db, 'ops', { admin: true });
  for (const [name, spec] of Object.entries(keySpecs)) keys[name] = await createKey(db, spec.tenant, spec);

  const args = ['serve', '-m', MODEL, '--port', '0', '--db', db, '-t', THREADS, ...extraArgs];
  const proc = spawn(DIZUO, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const killer = () => proc.kill('SIGKILL');
  process.on('exit', killer);
  let log = ''; // the tail of stdout + stderr, for failure messages
  const keep = (s) => { log = (log + s).slice(-20000); };
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', keep); // always drained: a full pipe would block the server
  const exited = new Promise((res) => proc.on('exit', (code, signal) => res({ code, signal })));

  const url = await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`dizuo serve did not print its listening line in 30 s:\n${log}`)), 30_000);
    const rl = createInterface({ input: proc.stdout });
    let found = false;
    rl.on('line', (line) => {
      keep(line + '\n');
      const m = /^dizuo serve: listening on (http:\/\/\S+?)\/?$/.exec(line);
      if (m && !found) { found = true; clearTimeout(timer); res(m[1]); }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      if (!found) rej(new Error(`dizuo serve exited (code ${code}, signal ${signal}) before listening:\n${log}`));
    });
    proc.on('error', (e) => { clearTimeout(timer); rej(e); });
  }).catch(async (e) => {
    proc.kill('SIGKILL');
    process.off('exit', killer);
    throw e;
  });

  let stopped = null;
  // A server that dies on its own (not through stop()) fails every later test with
  // "Connection error": say so once, with its last output (a sanitizer's report, say).
  exited.then(({ code, signal }) => {
    if (!stopped) process.stderr.write(`\ndizuo serve died during the tests (code ${code}, signal ${signal}); its last output:\n${log}\n`);
  });
  const server = {
    dir, db, keys, url, proc, exited,
    baseURL: `${url}/v1`,
    log: () => log,
    /** An openai client for the named key (or a literal key). */
    client(name = 'main', opts = {}) {
      return new OpenAI({ apiKey: keys[name] ?? name, baseURL: `${url}/v1`, maxRetries: 0, timeout: 30_000, ...opts });
    },
    cleanup() { rmSync(dir, { recursive: true, force: true }); },
    /** fetch() of a path with the named key; returns {status, headers, body (parsed JSON or text)}. */
    async http(method, path, { key = 'admin', body, headers = {} } = {}) {
      const h = { ...headers };
      if (key) h.Authorization = `Bearer ${keys[key] ?? key}`;
      if (body !== undefined) h['Content-Type'] = 'application/json';
      const r = await fetch(url + path, {
        method, headers: h, body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
      const text = await r.text();
      let parsed = text;
      try { parsed = JSON.parse(text); } catch { /* keep the text */ }
      return { status: r.status, headers: r.headers, body: parsed };
    },
    /** POST /tokenize; returns the token ids. */
    async tokenize(content, addSpecial = true, key = 'admin') {
      const r = await server.http('POST', '/tokenize', { key, body: { content, add_special: addSpecial } });
      if (r.status !== 200 || !Array.isArray(r.body?.tokens))
        throw new Error(`POST /tokenize -> ${r.status} ${JSON.stringify(r.body)}`);
      return r.body.tokens;
    },
    /**
     * SIGTERM, then waits (SIGKILL after 40 s); resolves {code, signal}. Idempotent.
     * The temp dir (ledger) is removed unless keep is true (then call cleanup()).
     */
    stop({ keep = false } = {}) {
      if (!stopped) {
        stopped = (async () => {
          if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
          const t = setTimeout(() => proc.kill('SIGKILL'), 40_000);
          const r = await exited;
          clearTimeout(t);
          process.off('exit', killer);
          if (!keep) server.cleanup();
          return r;
        })();
      }
      return stopped;
    },
  };
  return server;
}

/** Collects a streamed response: chunks, concatenated text per choice index, finish reasons. */
export async function collect(stream, textOf) {
  const chunks = [];
  const text = [];
  const finish = [];
  for await (const chunk of stream) {
    chunks.push(chunk);
    for (const c of chunk.choices ?? []) {
      text[c.index] = (text[c.index] ?? '') + (textOf(c) ?? '');
      if (c.finish_reason) finish[c.index] = c.finish_reason;
    }
  }
  return { chunks, text, finish };
}

export const completionText = (c) => c.text;
export const chatText = (c) => c.delta?.content;

/** Adds usage objects into a running total (for the /v1/usage comparison). */
export function addUsage(acc, u) {
  acc.requests += 1;
  acc.prompt_tokens += u.prompt_tokens;
  acc.completion_tokens += u.completion_tokens ?? 0;
  acc.total_tokens += u.total_tokens;
  acc.cached_tokens += u.prompt_tokens_details?.cached_tokens ?? 0;
  return acc;
}
export const zeroUsage = () => ({ requests: 0, prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, cached_tokens: 0 });

/** Asserts the usage object's shape and internal sums. */
export function checkUsage(assert, u, { completion = true } = {}) {
  assert.ok(u && typeof u === 'object', `usage missing: ${JSON.stringify(u)}`);
  assert.ok(Number.isInteger(u.prompt_tokens) && u.prompt_tokens > 0, `prompt_tokens ${u.prompt_tokens}`);
  if (completion) {
    assert.ok(Number.isInteger(u.completion_tokens) && u.completion_tokens >= 0, `completion_tokens ${u.completion_tokens}`);
    assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens, 'total = prompt + completion');
    assert.ok(u.prompt_tokens_details && Number.isInteger(u.prompt_tokens_details.cached_tokens),
      `prompt_tokens_details.cached_tokens missing: ${JSON.stringify(u)}`);
    assert.ok(u.prompt_tokens_details.cached_tokens >= 0 && u.prompt_tokens_details.cached_tokens <= u.prompt_tokens);
  } else {
    assert.equal(u.total_tokens, u.prompt_tokens);
  }
}

export const nowSec = () => Math.floor(Date.now() / 1000);

/**
 * A stop string taken from `text` (3 characters first occurring at offset >= 3,
 * not all spaces) and the text expected before it; null when there is none.
 */
export function pickStop(text) {
  for (let i = 3; i + 3 <= text.length; i++) {
    const s = text.slice(i, i + 3);
    if (s.trim() && text.indexOf(s) === i) return { stop: s, expected: text.slice(0, i) };
  }
  return null;
}
