// POST /v1/chat/completions through the openai SDK: shapes, usage, streaming,
// the built-in ChatML rendering, max_tokens, n, seed, stop, logprobs, and the
// per-tenant prefix cache (prompt_tokens_details.cached_tokens).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, collect, chatText, pickStop, checkUsage, MODEL_ID, nowSec } from './helper.mjs';

const USER = 'Tell me a story about a dog.';
// stories260K has no tokenizer.chat_template: the server renders the built-in ChatML.
const CHATML = `<|im_start|>user\n${USER}<|im_end|>\n<|im_start|>assistant\n`;
const N = 20;

describe('chat completions', { timeout: 90_000 }, () => {
  let srv, client, greedy, promptIds;
  const t0 = nowSec();
  const messages = [{ role: 'user', content: USER }];

  before(async () => {
    srv = await startServer({ main: { tenant: 'beta' }, cache: { tenant: 'beta-cache' }, other: { tenant: 'gamma' } });
    client = srv.client('main');
    promptIds = await srv.tokenize(CHATML, true);
  });
  after(async () => { await srv?.stop(); });

  it('non-streamed: shape, ids, message, usage', async () => {
    const { data: r, response } = await client.chat.completions
      .create({ model: MODEL_ID, messages, max_tokens: N, temperature: 0 })
      .withResponse();
    assert.match(r.id, /^chatcmpl-[0-9a-f]{24}$/);
    assert.equal(response.headers.get('x-request-id'), r.id);
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.model, MODEL_ID);
    assert.ok(Number.isInteger(r.created) && r.created >= t0 - 5 && r.created <= nowSec() + 5, `created ${r.created}`);
    assert.equal(r.choices.length, 1);
    const c = r.choices[0];
    assert.equal(c.index, 0);
    assert.equal(c.message.role, 'assistant');
    assert.equal(typeof c.message.content, 'string');
    assert.ok(c.message.content.length > 0);
    assert.ok(['stop', 'length'].includes(c.finish_reason));
    checkUsage(assert, r.usage);
    assert.ok(r.usage.completion_tokens <= N);
    if (c.finish_reason === 'length') assert.equal(r.usage.completion_tokens, N);
    greedy = c.message.content;
  });

  it('the prompt is the ChatML rendering tokenized with the default BOS', async () => {
    const r = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: N, temperature: 0 });
    assert.equal(r.usage.prompt_tokens, promptIds.length);
    const c = await client.completions.create({ model: MODEL_ID, prompt: CHATML, max_tokens: N, temperature: 0 });
    assert.equal(c.choices[0].text, greedy, 'chat = completion of the rendered prompt');
    assert.equal(r.choices[0].message.content, greedy, 'temperature 0 is deterministic');
  });

  it('text-part content equals string content; "default" names the model', async () => {
    const r = await client.chat.completions.create({
      model: 'default', max_tokens: N, temperature: 0,
      messages: [{ role: 'user', content: [{ type: 'text', text: USER }] }],
    });
    assert.equal(r.choices[0].message.content, greedy);
    assert.equal(r.usage.prompt_tokens, promptIds.length);
  });

  it('streamed: role first, chunk shapes, concatenation equals the non-streamed text', async () => {
    const stream = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: N, temperature: 0, stream: true });
    const { chunks, text, finish } = await collect(stream, chatText);
    assert.ok(chunks.length >= 2);
    const id = chunks[0].id;
    assert.match(id, /^chatcmpl-[0-9a-f]{24}$/);
    assert.equal(chunks[0].choices[0].delta.role, 'assistant', 'the first delta carries the role');
    for (const ch of chunks) {
      assert.equal(ch.id, id);
      assert.equal(ch.object, 'chat.completion.chunk');
      assert.equal(ch.model, MODEL_ID);
      assert.ok(Number.isInteger(ch.created));
      assert.equal(ch.choices.length, 1);
      assert.ok(ch.usage == null);
    }
    assert.equal(text[0], greedy);
    assert.ok(['stop', 'length'].includes(finish[0]));
    assert.ok(chunks.at(-1).choices[0].finish_reason);
  });

  it('stream_options.include_usage: usage null on every chunk, final chunk choices [] with usage', async () => {
    const stream = await client.chat.completions.create({
      model: MODEL_ID, messages, max_tokens: N, temperature: 0, stream: true, stream_options: { include_usage: true },
    });
    const { chunks, text } = await collect(stream, chatText);
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    checkUsage(assert, last.usage);
    assert.equal(last.usage.prompt_tokens, promptIds.length);
    assert.equal(last.object, 'chat.completion.chunk');
    for (const ch of chunks.slice(0, -1)) {
      assert.ok('usage' in ch);
      assert.equal(ch.usage, null);
      assert.equal(ch.choices.length, 1);
    }
    assert.equal(text[0], greedy);
  });

  it('max_tokens and max_completion_tokens: finish_reason "length", completion_tokens == limit', async () => {
    for (const lim of [{ max_tokens: 4 }, { max_completion_tokens: 4 }]) {
      const r = await client.chat.completions.create({ model: MODEL_ID, messages, temperature: 0, ...lim });
      assert.equal(r.choices[0].finish_reason, 'length', JSON.stringify(lim));
      assert.equal(r.usage.completion_tokens, 4, JSON.stringify(lim));
      assert.ok(greedy.startsWith(r.choices[0].message.content));
      const s = await client.chat.completions.create({ model: MODEL_ID, messages, temperature: 0, stream: true, stream_options: { include_usage: true }, ...lim });
      const { chunks, text, finish } = await collect(s, chatText);
      assert.equal(finish[0], 'length');
      assert.equal(text[0], r.choices[0].message.content);
      assert.equal(chunks.at(-1).usage.completion_tokens, 4);
    }
  });

  it('system and multi-turn messages render in order', async () => {
    const msgs = [
      { role: 'system', content: 'You tell stories.' },
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello!' },
      { role: 'user', content: 'A story, please.' },
    ];
    const rendered = msgs.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join('') + '<|im_start|>assistant\n';
    const ids = await srv.tokenize(rendered, true);
    const r = await client.chat.completions.create({ model: MODEL_ID, messages: msgs, max_tokens: 6, temperature: 0 });
    assert.equal(r.usage.prompt_tokens, ids.length);
    const c = await client.completions.create({ model: MODEL_ID, prompt: rendered, max_tokens: 6, temperature: 0 });
    assert.equal(r.choices[0].message.content, c.choices[0].text);
  });

  it('n=2: two choices with indexes 0 and 1, completion_tokens summed', async () => {
    const r = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 5, temperature: 0, n: 2 });
    assert.equal(r.choices.length, 2);
    const byIndex = [...r.choices].sort((a, b) => a.index - b.index);
    assert.deepEqual(byIndex.map((c) => c.index), [0, 1]);
    for (const c of byIndex) {
      assert.equal(c.message.role, 'assistant');
      assert.equal(c.message.content, greedy.slice(0, c.message.content.length));
      assert.ok(greedy.startsWith(c.message.content));
      assert.equal(c.finish_reason, 'length');
    }
    assert.equal(r.usage.completion_tokens, 10);
    // SERVE.md / docs/serve.md: the prompt counts once per choice computed
    assert.equal(r.usage.prompt_tokens, 2 * promptIds.length, 'prompt_tokens: once per choice');
    const s = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 5, temperature: 0, n: 2, stream: true });
    const { chunks, text, finish } = await collect(s, chatText);
    assert.deepEqual(text, [byIndex[0].message.content, byIndex[1].message.content]);
    assert.deepEqual(finish, ['length', 'length']);
    for (const i of [0, 1]) {
      const first = chunks.find((ch) => ch.choices.some((c) => c.index === i));
      assert.equal(first.choices.find((c) => c.index === i).delta.role, 'assistant', `choice ${i} starts with the role`);
    }
  });

  it('seed: the same seed at temperature 0.9 reproduces; other seeds differ', async () => {
    const req = (seed) => client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 30, temperature: 0.9, seed });
    const a = await req(7);
    const b = await req(7);
    assert.equal(a.choices[0].message.content, b.choices[0].message.content);
    const others = await Promise.all([8, 9, 10].map(req));
    assert.ok(others.some((o) => o.choices[0].message.content !== a.choices[0].message.content));
  });

  it('stop: text ends before the stop string, finish_reason "stop"', async () => {
    // a piece of the greedy continuation, away from its start
    const picked = pickStop(greedy);
    assert.ok(picked, `a stop string in ${JSON.stringify(greedy)}`);
    const { stop, expected } = picked;
    const r = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: N, temperature: 0, stop: [stop] });
    assert.equal(r.choices[0].message.content, expected);
    assert.equal(r.choices[0].finish_reason, 'stop');
    const s = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: N, temperature: 0, stop, stream: true });
    const { text, finish } = await collect(s, chatText);
    assert.equal(text[0] ?? '', expected);
    assert.equal(finish[0], 'stop');
  });

  it('logprobs / top_logprobs: content entries with token, logprob, bytes, top_logprobs', async () => {
    const r = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 2 });
    const c = r.choices[0];
    const content = c.logprobs?.content;
    assert.ok(Array.isArray(content), `logprobs.content: ${JSON.stringify(c.logprobs)}`);
    assert.equal(content.length, r.usage.completion_tokens);
    assert.equal(content.map((e) => e.token).join(''), c.message.content);
    for (const e of content) {
      assert.equal(typeof e.token, 'string');
      assert.ok(Number.isFinite(e.logprob) && e.logprob <= 0);
      assert.ok(Array.isArray(e.bytes));
      assert.deepEqual(e.bytes, [...Buffer.from(e.token, 'utf8')]);
      assert.equal(e.top_logprobs.length, 2);
      assert.ok(e.top_logprobs[0].logprob >= e.top_logprobs[1].logprob, 'most likely first');
      assert.ok(Math.abs(e.top_logprobs[0].logprob - e.logprob) < 1e-4, 'greedy chose the most likely');
      for (const t of e.top_logprobs) {
        assert.equal(typeof t.token, 'string');
        assert.ok(Number.isFinite(t.logprob) && t.logprob <= 0);
      }
    }
    // without logprobs, none are returned
    const plain = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 2, temperature: 0 });
    assert.ok(plain.choices[0].logprobs == null);
  });

  it('streamed logprobs travel with their text', async () => {
    const { data: stream, response } = await client.chat.completions
      .create({ model: MODEL_ID, messages, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 1, stream: true, stream_options: { include_usage: true } })
      .withResponse();
    assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
    const entries = [];
    let text = '';
    let usage = null;
    for await (const ch of stream) {
      assert.equal(ch.id, response.headers.get('x-request-id'));
      if (ch.usage) usage = ch.usage;
      for (const c of ch.choices) {
        text += c.delta?.content ?? '';
        entries.push(...(c.logprobs?.content ?? []));
      }
    }
    assert.equal(text, greedy.slice(0, text.length));
    assert.equal(entries.length, usage.completion_tokens);
    assert.equal(entries.map((e) => e.token).join(''), text);
    for (const e of entries) assert.equal(e.top_logprobs.length, 1);
  });

  it('prefix cache: a repeated long prompt is cached for its tenant only', async () => {
    const long = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park ' +
      'with her big red ball. One day, she saw a small bird sitting on a tree. The bird was sad because it ' +
      'could not fly. Lily wanted to help the bird, so she';
    const m = [{ role: 'user', content: long }];
    const req = (cl, stream) => stream
      ? cl.chat.completions.create({ model: MODEL_ID, messages: m, max_tokens: 4, temperature: 0, stream: true, stream_options: { include_usage: true } })
        .then((s) => collect(s, chatText)).then((x) => x.chunks.at(-1).usage)
      : cl.chat.completions.create({ model: MODEL_ID, messages: m, max_tokens: 4, temperature: 0 }).then((r) => r.usage);
    const mine = srv.client('cache'); // a tenant with no earlier requests
    const first = await req(mine, false);
    assert.ok(first.prompt_tokens > 40, `${first.prompt_tokens} prompt tokens`);
    assert.equal(first.prompt_tokens_details.cached_tokens, 0, 'nothing cached yet');
    const again = await req(mine, false);
    const cached = again.prompt_tokens_details.cached_tokens;
    assert.equal(again.prompt_tokens, first.prompt_tokens);
    assert.ok(cached > 0, 'the same tenant hits the cache');
    assert.equal(cached % 16, 0, 'whole blocks of 16');
    assert.ok(cached < again.prompt_tokens && cached >= 16 * Math.floor((again.prompt_tokens - 1) / 16) - 16, `cached ${cached} of ${again.prompt_tokens}`);
    const streamed = await req(mine, true);
    assert.equal(streamed.prompt_tokens_details.cached_tokens, cached, 'streamed usage reports it too');
    const otherTenant = srv.client('other');
    const o1 = await req(otherTenant, false);
    assert.equal(o1.prompt_tokens, first.prompt_tokens);
    assert.equal(o1.prompt_tokens_details.cached_tokens, 0, 'no cache sharing across tenants');
    const o2 = await req(otherTenant, false);
    assert.equal(o2.prompt_tokens_details.cached_tokens, cached, 'the other tenant caches its own');
  });
});
