// GET /v1/models, POST /v1/embeddings, /tokenize + /detokenize, /health, /ready,
// /metrics, and a clean SIGTERM exit.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, cli, MODEL_ID } from './helper.mjs';

const N_EMBD = 64; // stories260K's width

const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
function decodeB64(s) {
  const buf = Buffer.from(s, 'base64');
  assert.equal(buf.length % 4, 0);
  const out = [];
  for (let i = 0; i < buf.length; i += 4) out.push(buf.readFloatLE(i));
  return out;
}
function closeVec(a, b, tol = 1e-6) {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `element ${i}: ${a[i]} vs ${b[i]}`);
}

describe('models, embeddings, tokenize, ops routes', { timeout: 90_000 }, () => {
  let srv, client;
  before(async () => {
    srv = await startServer({ main: { tenant: 'delta' } }, ['-c', '2048']); // room for the drain test's long stream
    client = srv.client('main');
  });
  after(async () => { await srv?.stop(); });

  it('GET /health and /ready without a key', async () => {
    const h = await srv.http('GET', '/health', { key: null });
    assert.equal(h.status, 200);
    assert.deepEqual(h.body, { status: 'ok' });
    const r = await srv.http('GET', '/ready', { key: null });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { status: 'ready' });
  });

  it('models.list: the served model, OpenAI shape, owned_by dizuo', async () => {
    const page = await client.models.list();
    const models = [];
    for await (const m of page) models.push(m);
    const m = models.find((x) => x.id === MODEL_ID);
    assert.ok(m, `no ${MODEL_ID} in ${JSON.stringify(models)}`);
    assert.equal(m.object, 'model');
    assert.equal(m.owned_by, 'dizuo');
    assert.ok(Number.isInteger(m.created));
    const raw = await srv.http('GET', '/v1/models', { key: 'main' });
    assert.equal(raw.status, 200);
    assert.equal(raw.body.object, 'list');
    assert.ok(Array.isArray(raw.body.data));
  });

  it('models.retrieve: by file stem and by the alias "default"; unknown -> NotFoundError', async () => {
    const m = await client.models.retrieve(MODEL_ID);
    assert.equal(m.id, MODEL_ID);
    assert.equal(m.object, 'model');
    assert.equal(m.owned_by, 'dizuo');
    const d = await client.models.retrieve('default');
    assert.equal(d.object, 'model');
    assert.ok([MODEL_ID, 'default'].includes(d.id), `id ${d.id}`);
    await assert.rejects(client.models.retrieve('no-such-model'), (e) => {
      assert.equal(e.status, 404);
      assert.equal(e.constructor.name, 'NotFoundError');
      return true;
    });
  });

  it('/tokenize and /detokenize round-trip; add_special adds the BOS', async () => {
    const text = 'The cat sat on the mat.';
    const withBos = await srv.tokenize(text, true, 'main');
    const noBos = await srv.tokenize(text, false, 'main');
    assert.equal(withBos.length, noBos.length + 1);
    assert.deepEqual(withBos.slice(1), noBos);
    for (const t of withBos) assert.ok(Number.isInteger(t) && t >= 0 && t < 512);
    const d = await srv.http('POST', '/detokenize', { key: 'main', body: { tokens: noBos } });
    assert.equal(d.status, 200);
    assert.equal(d.body.content.trimStart(), text);
    const unauth = await srv.http('POST', '/tokenize', { key: null, body: { content: text } });
    assert.equal(unauth.status, 401);
  });

  it('embeddings: base64 (SDK default) = float, length 64, unit norm, usage', async () => {
    const input = 'A little girl played with her ball.';
    const ids = await srv.tokenize(input, true, 'main');
    const { data: r, response } = await client.embeddings.create({ model: MODEL_ID, input }).withResponse();
    assert.equal(r.object, 'list');
    assert.match(r.id ?? response.headers.get('x-request-id'), /^embd-[0-9a-f]{24}$/);
    assert.equal(r.model, MODEL_ID);
    assert.equal(r.data.length, 1);
    const e = r.data[0];
    assert.equal(e.object, 'embedding');
    assert.equal(e.index, 0);
    assert.equal(e.embedding.length, N_EMBD);
    assert.ok(Math.abs(norm(e.embedding) - 1) < 1e-4, `norm ${norm(e.embedding)}`);
    assert.equal(r.usage.prompt_tokens, ids.length);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens);

    const f = await client.embeddings.create({ model: MODEL_ID, input, encoding_format: 'float' });
    assert.ok(Array.isArray(f.data[0].embedding) && typeof f.data[0].embedding[0] === 'number');
    closeVec(e.embedding, f.data[0].embedding);

    const b = await client.embeddings.create({ model: MODEL_ID, input, encoding_format: 'base64' });
    assert.equal(typeof b.data[0].embedding, 'string', 'explicit base64 stays a string');
    const dec = decodeB64(b.data[0].embedding);
    assert.equal(dec.length, N_EMBD);
    closeVec(dec, f.data[0].embedding);
  });

  it('embeddings: list of strings and token-id inputs', async () => {
    const a = 'The sun was warm.';
    const b = 'Tom found a shiny stone near the river.';
    const r = await client.embeddings.create({ model: MODEL_ID, input: [a, b], encoding_format: 'float' });
    assert.equal(r.data.length, 2);
    const byIndex = [...r.data].sort((x, y) => x.index - y.index);
    assert.deepEqual(byIndex.map((x) => x.index), [0, 1]);
    for (const d of byIndex) {
      assert.equal(d.embedding.length, N_EMBD);
      assert.ok(Math.abs(norm(d.embedding) - 1) < 1e-4);
    }
    const ia = await srv.tokenize(a, true, 'main');
    const ib = await srv.tokenize(b, true, 'main');
    assert.equal(r.usage.prompt_tokens, ia.length + ib.length);
    const single = await client.embeddings.create({ model: MODEL_ID, input: b, encoding_format: 'float' });
    closeVec(byIndex[1].embedding, single.data[0].embedding, 1e-5);
    const dot = byIndex[0].embedding.reduce((s, x, i) => s + x * byIndex[1].embedding[i], 0);
    assert.ok(dot < 0.99999, 'different texts, different vectors');

    const tok = await client.embeddings.create({ model: MODEL_ID, input: ib, encoding_format: 'float' });
    closeVec(tok.data[0].embedding, single.data[0].embedding, 1e-5);
    assert.equal(tok.usage.prompt_tokens, ib.length);
    const toks = await client.embeddings.create({ model: MODEL_ID, input: [ia, ib], encoding_format: 'float' });
    assert.equal(toks.data.length, 2);
    closeVec([...toks.data].sort((x, y) => x.index - y.index)[0].embedding, byIndex[0].embedding, 1e-5);
  });

  it('unknown route -> 404 not_found; wrong method -> 405', async () => {
    const r = await srv.http('GET', '/v1/nothing-here', { key: 'main' });
    assert.equal(r.status, 404);
    assert.equal(r.body.error.code, 'not_found');
    const m = await srv.http('DELETE', '/v1/chat/completions', { key: 'main' });
    assert.equal(m.status, 405);
  });

  it('/metrics: Prometheus text with every metric name of SERVE.md', async () => {
    await client.completions.create({ model: MODEL_ID, prompt: 'Once upon a time', max_tokens: 4, temperature: 0 });
    const s = await client.completions.create({ model: MODEL_ID, prompt: 'Once upon a time', max_tokens: 4, temperature: 0, stream: true });
    for await (const _ of s); // eslint-disable-line no-unused-vars
    const r = await fetch(srv.url + '/metrics', { signal: AbortSignal.timeout(10_000) });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await r.text();
    const names = [
      'dizuo_requests_total', 'dizuo_prompt_tokens_total', 'dizuo_cached_tokens_total', 'dizuo_completion_tokens_total',
      'dizuo_time_to_first_token_seconds', 'dizuo_time_per_output_token_seconds', 'dizuo_request_duration_seconds',
      'dizuo_queue_length', 'dizuo_running_sequences', 'dizuo_kv_blocks_used', 'dizuo_kv_blocks_total',
      'dizuo_prefix_cache_queries_total', 'dizuo_prefix_cache_hits_total',
    ];
    const missing = names.filter((n) => !new RegExp(`^${n}(\\{|_bucket|_sum|_count| )`, 'm').test(text));
    assert.deepEqual(missing, [], 'metrics missing');
    for (const h of ['dizuo_time_to_first_token_seconds', 'dizuo_time_per_output_token_seconds', 'dizuo_request_duration_seconds']) {
      assert.match(text, new RegExp(`^# TYPE ${h} histogram$`, 'm'));
      assert.match(text, new RegExp(`^${h}_bucket\\{[^}]*le="\\+Inf"[^}]*\\} [0-9]`, 'm'));
    }
    assert.match(text, /^dizuo_requests_total\{(?=[^}]*route="[^"]+")(?=[^}]*status="200")[^}]*\} [1-9]/m);
    assert.match(text, /^dizuo_prompt_tokens_total\{[^}]*tenant="delta"[^}]*\} [1-9]/m);
    assert.match(text, /^dizuo_completion_tokens_total\{(?=[^}]*tenant="delta")(?=[^}]*model="stories260K")[^}]*\} [1-9]/m);
    const total = Number(/^dizuo_kv_blocks_total(?:\{[^}]*\})? ([0-9.e+]+)$/m.exec(text)?.[1]);
    assert.ok(total > 0, 'kv_blocks_total > 0');
    assert.ok(!text.includes(srv.keys.main), 'no secrets in metrics');
  });

  it('SIGTERM drains: a running stream finishes and is billed, /ready is 503, exit 0, no key in the logs', async () => {
    // long enough that /ready is polled while it runs (about 0.5 s without sanitizers), short enough to
    // finish well within the 30 s drain under ASan on a busy machine (about 10 ms a token there)
    const MAX = 1000;
    const stream = await client.completions.create({
      model: MODEL_ID, prompt: 'Once upon a time', max_tokens: MAX, temperature: 0.8, seed: 5, ignore_eos: true,
      stream: true, stream_options: { include_usage: true },
    });
    let text = '';
    let usage = null;
    let finish = null;
    let streaming = true;
    const seen = []; // /ready statuses after SIGTERM, while the stream runs
    let poller = null;
    const poll = async () => {
      while (streaming) {
        const st = await fetch(srv.url + '/ready', { signal: AbortSignal.timeout(5_000) })
          .then((r) => r.status, () => 'refused');
        seen.push(st);
        if (st !== 200) return;
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    for await (const ch of stream) {
      if (ch.usage) usage = ch.usage;
      for (const c of ch.choices) {
        text += c.text;
        if (c.finish_reason) finish = c.finish_reason;
      }
      if (!poller) {
        srv.proc.kill('SIGTERM');
        poller = poll();
      }
    }
    streaming = false;
    await poller;
    assert.equal(finish, 'length', 'the running stream was not cut');
    assert.equal(usage.completion_tokens, MAX);
    assert.ok(text.length > 0);
    const { code, signal } = await srv.stop({ keep: true });
    assert.equal(signal, null);
    assert.equal(code, 0);
    // new requests during the drain get 503 (SERVE.md); the first polls may precede the signal's handling
    assert.ok(seen.length > 0 && seen.at(-1) !== 200, `/ready after SIGTERM: ${seen.join(',')}`);
    assert.ok(seen.includes(503), `/ready never answered 503 while draining: ${seen.join(',')}`);
    const log = srv.log();
    for (const k of Object.values(srv.keys)) assert.ok(!log.includes(k), 'a key appeared on stdout/stderr');
    // the ledger, read after the exit, billed the drained stream
    const u = await cli(['usage', '--db', srv.db, '--tenant', 'delta', '--json']);
    srv.cleanup();
    assert.equal(u.code, 0, u.stderr);
    const row = JSON.parse(u.stdout).data.find((x) => x.tenant === 'delta');
    assert.ok(row, u.stdout);
    assert.ok(row.completion_tokens >= MAX, `ledger completion_tokens ${row.completion_tokens}`);
  });
});
