// Errors through the SDK's typed errors (401, 403, 404, 400 naming the parameter,
// 429 quota and RPM), the admin key API (create, list, revoke), and /v1/usage
// agreeing with the usage the client was shown.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer, collect, chatText, completionText, addUsage, zeroUsage, checkUsage, MODEL_ID } from './helper.mjs';

const PROMPT = 'Once upon a time';
const msgs = [{ role: 'user', content: 'Hello' }];

/** Asserts that promise rejects with the SDK error class `cls`, status and (optional) code/param/type. */
async function rejectsWith(promise, cls, status, { code, param, type } = {}) {
  let err = null;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected ${cls.name} (${status}), the request succeeded`);
  assert.ok(err instanceof cls, `expected ${cls.name}, got ${err?.constructor?.name}: ${err?.message}`);
  assert.equal(err.status, status);
  if (code !== undefined) assert.equal(err.code, code, `code (${err.message})`);
  if (param !== undefined) assert.equal(err.param, param, `param (${err.message})`);
  if (type !== undefined) assert.equal(err.type, type, `type (${err.message})`);
  assert.equal(typeof err.error?.message, 'string');
  assert.ok(err.error.message.length > 0, 'a message');
  return err;
}

describe('errors, keys, quotas, usage', { timeout: 90_000 }, () => {
  let srv, client;
  before(async () => {
    srv = await startServer({
      main: { tenant: 'eps' },
      quota: { tenant: 'quota-t', quotaTokens: 60 },
      rpm: { tenant: 'rpm-t', rpm: 1 },
      tpm: { tenant: 'tpm-t', tpm: 40 },
      acct: { tenant: 'acct' },
      limited: { tenant: 'lim', models: 'some-other-model' },
    });
    client = srv.client('main');
  });
  after(async () => { await srv?.stop(); });

  it('401: wrong key, missing key (AuthenticationError, invalid_api_key)', async () => {
    const bad = srv.client('dz-0000000000000000000000000000000000000000000000000000000000000000');
    await rejectsWith(bad.chat.completions.create({ model: MODEL_ID, messages: msgs, max_tokens: 2 }),
      OpenAI.AuthenticationError, 401, { code: 'invalid_api_key' });
    await rejectsWith(bad.models.list(), OpenAI.AuthenticationError, 401);
    const none = await srv.http('POST', '/v1/completions', { key: null, body: { model: MODEL_ID, prompt: 'x', max_tokens: 1 } });
    assert.equal(none.status, 401);
    assert.equal(none.body.error.code, 'invalid_api_key');
  });

  it('404: unknown model (NotFoundError, model_not_found, param "model")', async () => {
    await rejectsWith(client.chat.completions.create({ model: 'gpt-4o', messages: msgs, max_tokens: 2 }),
      OpenAI.NotFoundError, 404, { code: 'model_not_found', param: 'model' });
    await rejectsWith(client.completions.create({ model: 'no-such-model', prompt: PROMPT, max_tokens: 2 }),
      OpenAI.NotFoundError, 404, { code: 'model_not_found', param: 'model' });
    await rejectsWith(client.completions.create({ model: '../stories260K', prompt: PROMPT, max_tokens: 2 }),
      OpenAI.NotFoundError, 404, { param: 'model' });
    await rejectsWith(client.embeddings.create({ model: 'nope', input: 'x' }), OpenAI.NotFoundError, 404, { param: 'model' });
  });

  it('400: the parameter is named in error.param (BadRequestError)', async () => {
    const cases = [
      ['chat', { temperature: 5 }, 'temperature'],
      ['chat', { temperature: -0.5 }, 'temperature'],
      ['completions', { max_tokens: -1 }, 'max_tokens'],
      ['completions', { max_tokens: 0 }, 'max_tokens'],
      ['completions', { max_tokens: 2 ** 31 }, 'max_tokens'],
      ['completions', { max_tokens: 'ten' }, 'max_tokens'],
      ['chat', { messages: [] }, 'messages'],
      ['chat', { top_p: 0 }, 'top_p'],
      ['chat', { top_p: 1.5 }, 'top_p'],
      ['chat', { n: 17 }, 'n'],
      ['completions', { n: 0 }, 'n'],
      ['chat', { presence_penalty: 3 }, 'presence_penalty'],
      ['chat', { frequency_penalty: -2.5 }, 'frequency_penalty'],
      ['chat', { messages: [{ role: 'user', content: 'hi' }, { role: 'wizard', content: 'x' }] }, 'messages[1].role'],
      ['chat', { logit_bias: { 999999: 5 } }, 'logit_bias'],
      ['chat', { logit_bias: { 10: 500 } }, 'logit_bias'],
      ['completions', { stop: Array.from({ length: 17 }, (_, i) => `s${i}`) }, 'stop'],
      ['completions', { stop: 'x'.repeat(300) }, 'stop'],
      ['completions', { prompt: '' }, 'prompt'],
      ['completions', { prompt: [100000] }, 'prompt'],
      ['completions', { prompt: 'Once upon a time '.repeat(600) }, 'prompt'],
      ['completions', { max_tokens: 100000 }, 'max_tokens'],
    ];
    const failures = [];
    for (const [route, patch, param] of cases) {
      const body = route === 'chat'
        ? { model: MODEL_ID, messages: msgs, max_tokens: 2, ...patch }
        : { model: MODEL_ID, prompt: PROMPT, max_tokens: 2, ...patch };
      const p = route === 'chat' ? client.chat.completions.create(body) : client.completions.create(body);
      try {
        await rejectsWith(p, OpenAI.BadRequestError, 400, { param, type: 'invalid_request_error' });
      } catch (e) {
        failures.push(`${route} ${JSON.stringify(patch).slice(0, 80)} -> expected 400 param ${param}: ${e.message.split('\n')[0]}`);
      }
    }
    assert.deepEqual(failures, []);
  });

  it('400 for embeddings without input', async () => {
    await rejectsWith(client.embeddings.create({ model: MODEL_ID, input: '', encoding_format: 'float' }),
      OpenAI.BadRequestError, 400, { param: 'input' });
  });

  it('403: a key not allowed the model; a non-admin key on an admin route', async () => {
    await rejectsWith(srv.client('limited').chat.completions.create({ model: MODEL_ID, messages: msgs, max_tokens: 2 }),
      OpenAI.PermissionDeniedError, 403, { type: 'permission_error' });
    const r = await srv.http('GET', '/v1/admin/keys', { key: 'main' });
    assert.equal(r.status, 403);
    const u = await srv.http('GET', '/v1/usage', { key: 'main' });
    assert.equal(u.status, 403);
  });

  it('admin API: create a key, use it, list it (no secrets), revoke it -> 401 next request', async () => {
    const c = await srv.http('POST', '/v1/admin/keys', { body: { tenant: 'tmp-tenant', rpm: 100 } });
    assert.equal(c.status, 201, JSON.stringify(c.body));
    assert.ok(Number.isInteger(c.body.id));
    assert.match(c.body.key, /^dz-\S+$/);
    assert.equal(c.body.tenant, 'tmp-tenant');
    const k = srv.client(c.body.key);
    const ok = await k.chat.completions.create({ model: MODEL_ID, messages: msgs, max_tokens: 2, temperature: 0 });
    assert.equal(ok.choices.length, 1);

    const list = await srv.http('GET', '/v1/admin/keys');
    assert.equal(list.status, 200);
    assert.equal(list.body.object, 'list');
    const row = list.body.data.find((x) => x.id === c.body.id);
    assert.ok(row, 'the new key is listed');
    assert.equal(row.tenant, 'tmp-tenant');
    assert.equal(row.revoked, false);
    assert.equal(row.rpm, 100);
    assert.ok(c.body.key.startsWith(row.prefix), 'prefix is the start of the key');
    const raw = JSON.stringify(list.body);
    for (const secret of [c.body.key, ...Object.values(srv.keys)]) assert.ok(!raw.includes(secret), 'no secret in the list');

    const d = await srv.http('DELETE', `/v1/admin/keys/${c.body.id}`);
    assert.equal(d.status, 200);
    assert.deepEqual(d.body, { id: c.body.id, revoked: true });
    await rejectsWith(k.chat.completions.create({ model: MODEL_ID, messages: msgs, max_tokens: 2 }),
      OpenAI.AuthenticationError, 401, { code: 'invalid_api_key' });
    const after = await srv.http('GET', '/v1/admin/keys');
    assert.equal(after.body.data.find((x) => x.id === c.body.id).revoked, true);
  });

  it('admin API: the key list pages (limit, after, first_id, last_id, has_more); bad paging is 400', async () => {
    for (let i = 0; i < 3; i++) {
      const c = await srv.http('POST', '/v1/admin/keys', { body: { tenant: `page-${i}` } });
      assert.equal(c.status, 201);
    }
    const all = await srv.http('GET', '/v1/admin/keys?limit=1000');
    assert.equal(all.status, 200);
    assert.equal(all.body.has_more, false);
    const ids = all.body.data.map((x) => x.id);
    assert.ok(ids.length >= 4, `at least 4 keys: ${ids}`);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'in id order');
    // walk it two at a time: the same ids, in order, has_more false only on the last page
    const walked = [];
    let after = 0;
    for (;;) {
      const p = await srv.http('GET', `/v1/admin/keys?limit=2&after=${after}`);
      assert.equal(p.status, 200);
      assert.ok(p.body.data.length <= 2);
      const pageIds = p.body.data.map((x) => x.id);
      walked.push(...pageIds);
      assert.equal(p.body.first_id, pageIds[0] ?? null);
      assert.equal(p.body.last_id, pageIds.at(-1) ?? null);
      if (!p.body.has_more) break;
      assert.equal(pageIds.length, 2, 'a full page before has_more');
      after = p.body.last_id;
    }
    assert.deepEqual(walked, ids);
    const empty = await srv.http('GET', `/v1/admin/keys?after=${ids.at(-1)}`);
    assert.deepEqual([empty.body.data, empty.body.has_more, empty.body.first_id], [[], false, null]);
    for (const q of ['limit=0', 'limit=1001', 'limit=x', 'after=-1', 'after=1e3']) {
      const bad = await srv.http('GET', `/v1/admin/keys?${q}`);
      assert.equal(bad.status, 400, q);
      assert.equal(bad.body.error.param, q.split('=')[0], q);
    }
  });

  it('429 insufficient_quota: prompt + max_tokens beyond the quota (RateLimitError, no Retry-After)', async () => {
    const q = srv.client('quota');
    const ok = await q.completions.create({ model: MODEL_ID, prompt: PROMPT, max_tokens: 10, temperature: 0 });
    checkUsage(assert, ok.usage);
    const err = await rejectsWith(q.completions.create({ model: MODEL_ID, prompt: PROMPT, max_tokens: 200 }),
      OpenAI.RateLimitError, 429, { code: 'insufficient_quota' });
    assert.equal(err.headers?.['retry-after'], undefined, 'quota errors have no Retry-After');
    // max_tokens defaults to ctx - n_prompt: that reservation is beyond the quota too
    await rejectsWith(q.chat.completions.create({ model: MODEL_ID, messages: msgs }), OpenAI.RateLimitError, 429, { code: 'insufficient_quota' });
    // the refused requests used nothing: the ledger holds the one that ran
    const u = await srv.http('GET', '/v1/usage?tenant=quota-t');
    assert.equal(u.status, 200);
    const row = u.body.data.find((x) => x.tenant === 'quota-t');
    assert.ok(row, JSON.stringify(u.body));
    assert.equal(row.prompt_tokens, ok.usage.prompt_tokens);
    assert.equal(row.completion_tokens, ok.usage.completion_tokens);
    assert.equal(row.total_tokens, ok.usage.total_tokens);
    // what is left still serves a small request
    const small = await q.completions.create({ model: MODEL_ID, prompt: PROMPT, max_tokens: 4, temperature: 0 });
    assert.equal(small.usage.completion_tokens, 4);
  });

  it('429 rate_limit_exceeded with Retry-After on --rpm 1 (second request)', async () => {
    const r = srv.client('rpm');
    await r.completions.create({ model: MODEL_ID, prompt: PROMPT, max_tokens: 2, temperature: 0 });
    const err = await rejectsWith(r.completions.create({ model: MODEL_ID, prompt: PROMPT, max_tokens: 2 }),
      OpenAI.RateLimitError, 429, { code: 'rate_limit_exceeded' });
    const ra = err.headers?.['retry-after'];
    assert.match(String(ra), /^[0-9]+$/, `Retry-After: ${ra}`);
    assert.ok(Number(ra) >= 1 && Number(ra) <= 60, `Retry-After ${ra}`);
  });

  it('429 rate_limit_exceeded with Retry-After on --tpm 40 (two requests of 5 + 20 tokens)', async () => {
    const t = srv.client('tpm');
    const ok = await t.completions.create({ model: MODEL_ID, prompt: PROMPT, max_tokens: 20, temperature: 0 });
    assert.ok(ok.usage.prompt_tokens + 20 <= 40, `prompt_tokens ${ok.usage.prompt_tokens}`);
    const err = await rejectsWith(t.completions.create({ model: MODEL_ID, prompt: PROMPT, max_tokens: 20 }),
      OpenAI.RateLimitError, 429, { code: 'rate_limit_exceeded' });
    const ra = err.headers?.['retry-after'];
    assert.match(String(ra), /^[0-9]+$/, `Retry-After: ${ra}`);
    assert.ok(Number(ra) >= 1 && Number(ra) <= 60, `Retry-After ${ra}`);
  });

  it('/v1/usage agrees with the usage the client saw (tenant acct)', async () => {
    const a = srv.client('acct');
    const seen = zeroUsage();
    const r1 = await a.chat.completions.create({ model: MODEL_ID, messages: msgs, max_tokens: 7, temperature: 0, user: 'alice' });
    addUsage(seen, r1.usage);
    const r2 = await a.completions.create({ model: MODEL_ID, prompt: PROMPT, max_tokens: 9, temperature: 0.7, seed: 3 });
    addUsage(seen, r2.usage);
    const s1 = await collect(await a.chat.completions.create({ model: MODEL_ID, messages: msgs, max_tokens: 5, stream: true, stream_options: { include_usage: true } }), chatText);
    addUsage(seen, s1.chunks.at(-1).usage);
    const s2 = await collect(await a.completions.create({ model: MODEL_ID, prompt: PROMPT, max_tokens: 6, n: 2, stream: true, stream_options: { include_usage: true } }), completionText);
    addUsage(seen, s2.chunks.at(-1).usage);
    const long = 'Once upon a time, there was a little boy named Tim. Tim had a big red truck. He liked to play ' +
      'with his truck in the garden every day. One day, the sun was hot and Tim was tired, so he';
    for (let i = 0; i < 2; i++) {
      const r = await a.completions.create({ model: MODEL_ID, prompt: long, max_tokens: 3, temperature: 0 });
      addUsage(seen, r.usage);
    }
    assert.ok(seen.cached_tokens > 0, 'the repeated prompt was cached');
    const e = await a.embeddings.create({ model: MODEL_ID, input: ['one two three', 'four'], encoding_format: 'float' });
    addUsage(seen, e.usage);

    const u = await srv.http('GET', '/v1/usage?tenant=acct');
    assert.equal(u.status, 200, JSON.stringify(u.body));
    assert.equal(u.body.object, 'list');
    const rows = u.body.data.filter((x) => x.tenant === 'acct');
    assert.equal(rows.length, 1, JSON.stringify(u.body));
    const row = rows[0];
    for (const f of ['requests', 'prompt_tokens', 'cached_tokens', 'completion_tokens', 'total_tokens'])
      assert.equal(row[f], seen[f], `${f}: ledger ${row[f]}, client saw ${seen[f]}`);

    const bm = await srv.http('GET', '/v1/usage?tenant=acct&by_model=true');
    assert.equal(bm.status, 200);
    const mrows = bm.body.data.filter((x) => x.tenant === 'acct');
    assert.equal(mrows.length, 1);
    assert.equal(mrows[0].model, MODEL_ID);
    assert.equal(mrows[0].total_tokens, seen.total_tokens);

    const future = Math.floor(Date.now() / 1000) + 3600;
    const none = await srv.http('GET', `/v1/usage?tenant=acct&since=${future}`);
    assert.equal(none.status, 200);
    assert.equal(none.body.data.filter((x) => x.tenant === 'acct' && x.requests > 0).length, 0, 'nothing after since');
  });
});
