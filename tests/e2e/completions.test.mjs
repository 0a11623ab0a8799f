// POST /v1/completions through the openai SDK: shapes, usage, streaming, determinism
// against `dizuo run`, max_tokens, n, seed, stop strings, logprobs, prompt forms.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, cli, collect, completionText, pickStop, checkUsage, MODEL, MODEL_ID, THREADS, nowSec,
} from './helper.mjs';

const PROMPT = 'Once upon a time';
const N = 24;

describe('completions', { timeout: 90_000 }, () => {
  let srv, client, greedy, promptIds;
  const t0 = nowSec();

  before(async () => {
    srv = await startServer({ main: { tenant: 'alpha' } });
    client = srv.client('main');
    promptIds = await srv.tokenize(PROMPT, true);
  });
  after(async () => { await srv?.stop(); });

  it('non-streamed: shape, ids, usage, X-Request-Id', async () => {
    const { data: r, response } = await client.completions
      .create({ model: MODEL_ID, prompt: PROMPT, max_tokens: N, temperature: 0 })
      .withResponse();
    assert.match(r.id, /^cmpl-[0-9a-f]{24}$/);
    assert.equal(response.headers.get('x-request-id'), r.id);
    assert.equal(r.object, 'text_completion');
    assert.equal(r.model, MODEL_ID);
    assert.ok(Number.isInteger(r.created) && r.created >= t0 - 5 && r.created <= nowSec() + 5, `created ${r.created}`);
    assert.equal(r.choices.length, 1);
    const c = r.choices[0];
    assert.equal(c.index, 0);
    assert.equal(typeof c.text, 'string');
    assert.ok(c.text.length > 0, 'some text');
    assert.ok(['stop', 'length'].includes(c.finish_reason));
    checkUsage(assert, r.usage);
    assert.equal(r.usage.prompt_tokens, promptIds.length, 'prompt_tokens = /tokenize count (add_special)');
    assert.ok(r.usage.completion_tokens <= N);
    if (c.finish_reason === 'length') assert.equal(r.usage.completion_tokens, N);
    greedy = c.text;
  });

  it('greedy text equals `dizuo run --temp 0` (same BOS handling)', async () => {
    const run = await cli(['run', '-m', MODEL, '-p', PROMPT, '-n', String(N), '--temp', '0', '--no-echo', '-t', THREADS]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(greedy, run.stdout);
  });

  it('temperature 0 is deterministic', async () => {
    const r = await client.completions.create({ model: MODEL_ID, prompt: PROMPT, max_tokens: N, temperature: 0 });
    assert.equal(r.choices[0].text, greedy);
  });

  it('streamed: chunks, concatenation equals the non-streamed text, no usage without include_usage', async () => {
    const stream = await client.completions.create({ model: MODEL_ID, prompt: PROMPT, max_tokens: N, temperature: 0, stream: true });
    const { chunks, text, finish } = await collect(stream, completionText);
    assert.ok(chunks.length >= 2, `${chunks.length} chunks`);
    const id = chunks[0].id;
    assert.match(id, /^cmpl-[0-9a-f]{24}$/);
    for (const ch of chunks) {
      assert.equal(ch.id, id, 'one id for every chunk');
      assert.equal(ch.object, 'text_completion');
      assert.equal(ch.model, MODEL_ID);
      assert.ok(Number.isInteger(ch.created));
      assert.equal(ch.choices.length, 1);
      assert.ok(ch.usage == null, `usage without include_usage: ${JSON.stringify(ch.usage)}`);
    }
    assert.equal(text[0], greedy);
    assert.ok(['stop', 'length'].includes(finish[0]));
    assert.ok(chunks.at(-1).choices[0].finish_reason, 'the last chunk carries the finish_reason');
  });

  it('stream_options.include_usage: usage null on every chunk, a final chunk with choices [] and usage', async () => {
    const stream = await client.completions.create({
      model: MODEL_ID, prompt: PROMPT, max_tokens: N, temperature: 0, stream: true, stream_options: { include_usage: true },
    });
    const { chunks, text } = await collect(stream, completionText);
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    checkUsage(assert, last.usage);
    assert.equal(last.usage.prompt_tokens, promptIds.length);
    for (const ch of chunks.slice(0, -1)) {
      assert.ok('usage' in ch, 'every chunk has the usage key');
      assert.equal(ch.usage, null);
      assert.equal(ch.choices.length, 1);
    }
    assert.equal(text[0], greedy);
    const nonStream = await client.completions.create({ model: MODEL_ID, prompt: PROMPT, max_tokens: N, temperature: 0 });
    assert.equal(last.usage.completion_tokens, nonStream.usage.completion_tokens);
    assert.equal(last.usage.prompt_tokens, nonStream.usage.prompt_tokens);
  });

  it('SSE on the wire: text/event-stream, data: JSON events, data: [DONE] last, X-Request-Id = chunk id', async () => {
    const r = await fetch(`${srv.baseURL}/completions`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${srv.keys.main}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: MODEL_ID, prompt: PROMPT, max_tokens: 6, temperature: 0, stream: true }),
      signal: AbortSignal.timeout(30_000),
    });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/event-stream/);
    const body = await r.text();
    assert.ok(body.endsWith('data: [DONE]\n\n'), `ends with [DONE]: ${JSON.stringify(body.slice(-40))}`);
    const events = body.split('\n\n').filter((e) => e.length > 0);
    const data = events.filter((e) => !e.startsWith(':')).map((e) => {
      assert.match(e, /^data: /, `event ${JSON.stringify(e)}`);
      return e.slice(6);
    });
    assert.equal(data.at(-1), '[DONE]');
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    for (const c of chunks) assert.equal(c.id, r.headers.get('x-request-id'));
    assert.equal(chunks.map((c) => c.choices[0]?.text ?? '').join(''), greedy.slice(0, chunks.map((c) => c.choices[0]?.text ?? '').join('').length));
  });

  it('max_tokens reached: finish_reason "length", completion_tokens == max_tokens', async () => {
    const r = await client.completions.create({ model: MODEL_ID, prompt: PROMPT, max_tokens: 5, temperature: 0 });
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.equal(r.usage.completion_tokens, 5);
    assert.equal(r.usage.prompt_tokens, promptIds.length);
    assert.ok(greedy.startsWith(r.choices[0].text), 'a prefix of the longer greedy text');
    const s = await client.completions.create({ model: MODEL_ID, prompt: PROMPT, max_tokens: 5, temperature: 0, stream: true, stream_options: { include_usage: true } });
    const { chunks, text, finish } = await collect(s, completionText);
    assert.equal(finish[0], 'length');
    assert.equal(text[0], r.choices[0].text);
    assert.equal(chunks.at(-1).usage.completion_tokens, 5);
  });

  it('prompt_tokens equals /tokenize for another prompt', async () => {
    const p = 'The little dog ran to the park and saw a big red ball.';
    const ids = await srv.tokenize(p, true);
    const r = await client.completions.create({ model: MODEL_ID, prompt: p, max_tokens: 3, temperature: 0 });
    assert.equal(r.usage.prompt_tokens, ids.length);
    const noBos = await srv.tokenize(p, false);
    assert.equal(ids.length, noBos.length + 1, 'add_special adds the BOS of this SPM model');
  });

  it('prompt as token ids (from /tokenize) gives the same text as the string', async () => {
    const r = await client.completions.create({ model: MODEL_ID, prompt: promptIds, max_tokens: N, temperature: 0 });
    assert.equal(r.choices[0].text, greedy);
    assert.equal(r.usage.prompt_tokens, promptIds.length);
  });

  it('prompt as a list of strings: one choice per prompt', async () => {
    const other = 'Lily had a cat';
    const first = await client.completions.create({ model: MODEL_ID, prompt: PROMPT, max_tokens: 8, temperature: 0 });
    const single = await client.completions.create({ model: MODEL_ID, prompt: other, max_tokens: 8, temperature: 0 });
    const r = await client.completions.create({ model: MODEL_ID, prompt: [PROMPT, other], max_tokens: 8, temperature: 0 });
    assert.equal(r.choices.length, 2);
    const byIndex = [...r.choices].sort((a, b) => a.index - b.index);
    assert.deepEqual(byIndex.map((c) => c.index), [0, 1]);
    assert.equal(byIndex[0].text, first.choices[0].text);
    assert.equal(byIndex[1].text, single.choices[0].text);
    assert.equal(r.usage.completion_tokens, first.usage.completion_tokens + single.usage.completion_tokens);
    assert.equal(r.usage.prompt_tokens, first.usage.prompt_tokens + single.usage.prompt_tokens);
    checkUsage(assert, r.usage);
  });

  it('n=2: two choices, usage sums both', async () => {
    const r = await client.completions.create({ model: MODEL_ID, prompt: PROMPT, max_tokens: 6, temperature: 0, n: 2 });
    assert.equal(r.choices.length, 2);
    const byIndex = [...r.choices].sort((a, b) => a.index - b.index);
    assert.deepEqual(byIndex.map((c) => c.index), [0, 1]);
    for (const c of byIndex) {
      assert.equal(c.text, byIndex[0].text, 'greedy choices agree');
      assert.equal(c.finish_reason, 'length');
    }
    assert.ok(greedy.startsWith(byIndex[0].text));
    checkUsage(assert, r.usage);
    assert.equal(r.usage.completion_tokens, 12, 'completion_tokens sums the choices');
    // SERVE.md / docs/serve.md: the prompt counts once per choice computed
    assert.equal(r.usage.prompt_tokens, 2 * promptIds.length, 'prompt_tokens: once per choice');

    const s = await client.completions.create({ model: MODEL_ID, prompt: PROMPT, max_tokens: 6, temperature: 0, n: 2, stream: true, stream_options: { include_usage: true } });
    const { chunks, text, finish } = await collect(s, completionText);
    assert.deepEqual(text, [byIndex[0].text, byIndex[1].text]);
    assert.deepEqual(finish, ['length', 'length']);
    assert.equal(chunks.at(-1).usage.completion_tokens, 12);
    assert.equal(chunks.at(-1).usage.prompt_tokens, r.usage.prompt_tokens);
  });

  it('seed: the same seed at temperature > 0 reproduces the text; other seeds differ', async () => {
    const req = (seed) => client.completions.create({ model: MODEL_ID, prompt: PROMPT, max_tokens: 32, temperature: 1.0, seed });
    const a = await req(1234);
    const b = await req(1234);
    assert.equal(a.choices[0].text, b.choices[0].text);
    const others = await Promise.all([1, 2, 3].map(req));
    assert.ok(others.some((o) => o.choices[0].text !== a.choices[0].text), 'some other seed gives other text');
    const s = await client.completions.create({ model: MODEL_ID, prompt: PROMPT, max_tokens: 32, temperature: 1.0, seed: 1234, stream: true });
    const { text } = await collect(s, completionText);
    assert.equal(text[0], a.choices[0].text, 'streaming samples the same');
  });

  it('stop strings end the text before the stop string, finish_reason "stop"', async () => {
    // a piece of the greedy continuation, away from its start
    const picked = pickStop(greedy);
    assert.ok(picked, `a stop string in ${JSON.stringify(greedy)}`);
    const { stop, expected } = picked;
    const r = await client.completions.create({ model: MODEL_ID, prompt: PROMPT, max_tokens: N, temperature: 0, stop: [stop, 'zzzqqq'] });
    assert.equal(r.choices[0].text, expected);
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.ok(r.usage.completion_tokens < N);
    const s = await client.completions.create({ model: MODEL_ID, prompt: PROMPT, max_tokens: N, temperature: 0, stop, stream: true });
    const { text, finish } = await collect(s, completionText);
    assert.equal(text[0], expected, 'streamed text never shows the stop string');
    assert.equal(finish[0], 'stop');
  });

  it('logprobs: tokens, token_logprobs, top_logprobs, text_offset', async () => {
    const r = await client.completions.create({ model: MODEL_ID, prompt: PROMPT, max_tokens: 8, temperature: 0, logprobs: 3 });
    const c = r.choices[0];
    const lp = c.logprobs;
    assert.ok(lp, 'logprobs present');
    const n = r.usage.completion_tokens;
    assert.equal(lp.tokens.length, n);
    assert.equal(lp.token_logprobs.length, n);
    assert.equal(lp.top_logprobs.length, n);
    assert.equal(lp.text_offset.length, n);
    assert.equal(lp.tokens.join(''), c.text, 'the tokens spell the text');
    for (let i = 0; i < n; i++) {
      assert.equal(typeof lp.tokens[i], 'string');
      assert.ok(lp.token_logprobs[i] <= 0 && Number.isFinite(lp.token_logprobs[i]));
      const top = Object.entries(lp.top_logprobs[i]);
      assert.ok(top.length >= 1 && top.length <= 3, `${top.length} top entries`);
      const best = Math.max(...top.map(([, v]) => v));
      assert.ok(Math.abs(best - lp.token_logprobs[i]) < 1e-4, 'greedy picks the most likely token');
      assert.ok(lp.tokens[i] in lp.top_logprobs[i], 'the chosen token is among the top');
      if (i > 0) assert.ok(lp.text_offset[i] >= lp.text_offset[i - 1]);
    }
    assert.equal(c.text, greedy.slice(0, c.text.length));
  });
});
