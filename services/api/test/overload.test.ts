import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { setTimeout as sleep } from 'node:timers/promises'
import { TENANT, TestAuthority, appClaims, createTestKey, mint } from '../../../packages/fastify-entra-auth/test/helpers/authority.ts'
import { ConfigError } from '../../shared/config.ts'
import { readConfig } from '../src/config.ts'
import { startApi } from './helpers/api.ts'

/* Load shedding: a saturated event loop makes authenticated routes answer 503 at once, never probes. */

/**
 * Keeps the event loop saturated for `ms`, as a flood does: busy chunks of `chunkMs` with only a
 * macrotask turn between them, so under-pressure's samples keep seeing the delay, then sends one
 * request in the middle of it (a request handled between chunks, as a queued one would be). A single
 * long block would not do: the sample taken after it reports the delay, but the next sample,
 * taken before any request arrives, is idle again.
 */
async function duringSaturation<T> (ms: number, send: () => Promise<T>, chunkMs = 40): Promise<T> {
  const until = performance.now() + ms
  let result: Promise<T> | undefined
  while (performance.now() < until) {
    const chunkEnd = performance.now() + chunkMs
    while (performance.now() < chunkEnd) { /* busy */ }
    await new Promise((resolve) => setImmediate(resolve))
    if (result === undefined && performance.now() > until - ms / 2) result = send()
  }
  return await (result ?? send())
}

test('a saturated event loop: /claims answers 503 with Retry-After before any token work; probes and metrics still answer', async (t) => {
  const key = createTestKey()
  const authority = await TestAuthority.start({ [TENANT]: [key] })
  t.after(() => authority.stop())
  const sampleIntervalMs = 50
  const api = await startApi(authority.url, {
    LOG_LEVEL: 'warn',
    OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '20',
    OVERLOAD_SAMPLE_INTERVAL_MS: String(sampleIntervalMs),
    OVERLOAD_RETRY_AFTER_SECONDS: '3'
  })
  t.after(() => api.app.close())
  const token = `Bearer ${mint(key)}`
  // under-pressure's first sample may come from a busy start (no delay sample at all reads as
  // Infinity): the api serves once the loop has been idle for a sample.
  let idle
  for (let attempt = 0; attempt < 20 && idle?.statusCode !== 200; attempt++) {
    await sleep(sampleIntervalMs * 2)
    idle = await api.get(token)
  }
  assert.equal(idle?.statusCode, 200, 'accepted while idle')

  const refused = await duringSaturation(600, () => api.get(token))
  assert.equal(refused?.statusCode, 503)
  assert.equal(refused?.headers['retry-after'], '3')
  assert.equal(refused?.headers['cache-control'], 'no-store')
  assert.deepEqual(refused?.json(), { error: 'overloaded', message: 'the api is at capacity; retry after the Retry-After delay' })
  assert.ok(await api.metric('http_requests_shed_total', { reason: 'event_loop_delay' }) >= 1)
  assert.equal(await api.metric('auth_requests_total', { result: 'accepted' }), 1, 'the refused request never reached the auth hook')
  assert.equal(api.logs.filter((line) => (line.level as number) >= 50).length, 0, 'a refusal is not an error log line')

  assert.equal((await duringSaturation(600, () => api.app.inject({ method: 'GET', url: '/healthz' }))).statusCode, 200, 'liveness is never shed')
  assert.equal((await duringSaturation(600, () => api.app.inject({ method: 'GET', url: '/metrics' }))).statusCode, 200, 'Prometheus still sees the api')

  // Once the loop is free again, requests are served.
  let served
  for (let attempt = 0; attempt < 20 && served?.statusCode !== 200; attempt++) {
    await sleep(sampleIntervalMs * 2)
    served = await api.get(token)
  }
  assert.equal(served?.statusCode, 200)
})

test('a fully used event loop: the utilization check refuses on its own, counted as event_loop_utilization', async (t) => {
  const key = createTestKey()
  const authority = await TestAuthority.start({ [TENANT]: [key] })
  t.after(() => authority.stop())
  const api = await startApi(authority.url, { LOG_LEVEL: 'warn', OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0', OVERLOAD_MAX_EVENT_LOOP_UTILIZATION: '0.9', OVERLOAD_SAMPLE_INTERVAL_MS: '50' })
  t.after(() => api.app.close())
  const refused = await duringSaturation(600, () => api.get(`Bearer ${mint(key)}`))
  assert.equal(refused.statusCode, 503)
  assert.ok(await api.metric('http_requests_shed_total', { reason: 'event_loop_utilization' }) >= 1)
  assert.equal(await api.metric('http_requests_shed_total', { reason: 'event_loop_delay' }), 0)
})

test('shedding off: OVERLOAD_MAX_EVENT_LOOP_DELAY_MS=0 and the utilization check off never refuse', async (t) => {
  const key = createTestKey()
  const authority = await TestAuthority.start({ [TENANT]: [key] })
  t.after(() => authority.stop())
  const api = await startApi(authority.url, { LOG_LEVEL: 'warn', OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0', OVERLOAD_SAMPLE_INTERVAL_MS: '20' })
  t.after(() => api.app.close())
  for (let attempt = 0; attempt < 3; attempt++) {
    assert.equal((await duringSaturation(300, () => api.get(`Bearer ${mint(key)}`))).statusCode, 200)
  }
})

/**
 * Queues thousands of signature checks on the api's worker thread at once, as a flood of distinct
 * tokens does: forged copies of a valid token (the same length, other signature bytes), each a full RSA
 * check. The event loop is free meanwhile; only the worker is behind.
 */
function floodSignatureWorker (app: FastifyInstance, valid: string, count = 4000): Promise<unknown> {
  const dot = valid.lastIndexOf('.')
  const signature = Buffer.from(valid.slice(dot + 1), 'base64url')
  const forged = (i: number) => { const bytes = Buffer.from(signature); bytes.writeUInt16BE(i, 0); return `${valid.slice(0, dot)}.${bytes.toString('base64url')}` }
  return Promise.all(Array.from({ length: count }, (_, i) => app.entraAuth.validate(forged(i + 1))))
}

/** Sends until one answer is a refusal or the flood is over; the refusal, or the last answer. */
async function untilRefused<T extends { status: number }> (flood: Promise<unknown>, send: () => Promise<T>): Promise<T> {
  const state = { over: false }
  flood.then(() => { state.over = true }, () => { state.over = true })
  let answer = await send()
  while (answer.status !== 503 && !state.over) {
    await sleep(5)
    answer = await send()
  }
  return answer
}

test('signature checks queued on the worker while the event loop is free: a token that needs a check is refused as signature_check_delay (before Fastify over HTTP, in Fastify through inject, the same answer); a held token is served', async (t) => {
  // A 4096-bit key: each check costs the worker about four times a 2048-bit one while the main thread's
  // share stays the same, so the worker falls behind here as it does past capacity on a busy machine.
  const key = createTestKey({ modulusLength: 4096 })
  const authority = await TestAuthority.start({ [TENANT]: [key] })
  t.after(() => authority.stop())
  const api = await startApi(authority.url, {
    LOG_LEVEL: 'warn',
    OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0',
    OVERLOAD_MAX_SIGNATURE_CHECK_DELAY_MS: '20',
    OVERLOAD_SAMPLE_INTERVAL_MS: '10',
    OVERLOAD_RETRY_AFTER_SECONDS: '3'
  })
  t.after(() => api.app.close())
  const token = mint(key)
  const url = await api.app.listen({ host: '127.0.0.1', port: 0 })
  const get = async (path: string, bearer = token) => {
    const response = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${bearer}` } })
    return { status: response.status, headers: Object.fromEntries(response.headers), body: await response.text() }
  }
  // Accepted twice: held in the verified-token cache from then on (stored at its second acceptance). The
  // first checks may wait for the worker thread to boot, which on a busy machine reads as a backlog for a
  // sample or two: the api is ready for this once the token has been accepted twice.
  let accepted = 0
  for (let attempt = 0; attempt < 40 && accepted < 2; attempt++) {
    if ((await get('/claims')).status === 200) accepted++
    else await sleep(20)
  }
  assert.equal(accepted, 2, 'accepted while nothing is queued')
  assert.ok(api.app.entraAuth.holdsToken(['Authorization', `Bearer ${token}`]))

  const flood = floodSignatureWorker(api.app, token)
  // A token the api has not seen needs a signature check: refused while they queue.
  const overHttp = await untilRefused(flood, () => get('/claims', mint(key, appClaims({ uti: randomUUID() }))))
  const held = await get('/claims')
  const probe = await get('/healthz')
  const metrics = await get('/metrics')
  await flood
  assert.equal(held.status, 200, 'a held token costs no signature check: served while they queue')
  assert.equal(overHttp.status, 503, 'refused while the worker was behind')
  assert.equal(overHttp.headers['retry-after'], '3')
  assert.equal(overHttp.headers['cache-control'], 'no-store')
  assert.equal(overHttp.headers['content-type'], 'application/json; charset=utf-8')
  assert.deepEqual(JSON.parse(overHttp.body), { error: 'overloaded', message: 'the api is at capacity; retry after the Retry-After delay' })
  assert.equal(probe.status, 200, 'liveness is never shed')
  assert.equal(metrics.status, 200, 'Prometheus still sees the api')
  assert.ok(await api.metric('http_requests_shed_total', { reason: 'signature_check_delay' }) >= 1)
  assert.equal(await api.metric('http_requests_shed_total', { reason: 'event_loop_delay' }), 0)
  const refusedInFastify = () => api.metric('http_request_duration_seconds', { route: '/claims', status_code: '503', le: '+Inf' })
  assert.equal(await refusedInFastify(), 0, 'over HTTP the gate answered: Fastify never saw the refused request')

  // The same refusal through Fastify's own path (inject does not go through the server's gate).
  const second = floodSignatureWorker(api.app, token)
  const injected = await untilRefused(second, async () => {
    const response = await api.get(`Bearer ${mint(key, appClaims({ uti: randomUUID() }))}`)
    return { status: response.statusCode, headers: response.headers, body: response.body }
  })
  assert.equal(injected.status, 503)
  assert.ok(await refusedInFastify() >= 1, 'through inject, Fastify answered it')
  assert.equal(injected.body, overHttp.body)
  for (const name of ['retry-after', 'cache-control', 'content-type', 'content-length']) assert.equal(String(injected.headers[name]), overHttp.headers[name], name)

  await second
  // Once the worker has caught up, requests are served again.
  let served
  for (let attempt = 0; attempt < 20 && served?.status !== 200; attempt++) {
    await sleep(20)
    served = await get('/claims')
  }
  assert.equal(served?.status, 200)
})

test('overload settings: defaults, and bad values stop the api naming the variable', () => {
  const base = { AUTH_TENANT_ID: TENANT, AUTH_AUDIENCE: 'api://x' }
  const config = readConfig(base)
  assert.equal(config.OVERLOAD_MAX_EVENT_LOOP_DELAY_MS, 100)
  assert.equal(config.OVERLOAD_MAX_EVENT_LOOP_UTILIZATION, 0)
  assert.equal(config.OVERLOAD_MAX_SIGNATURE_CHECK_DELAY_MS, 100)
  assert.equal(config.OVERLOAD_SAMPLE_INTERVAL_MS, 100)
  assert.equal(config.OVERLOAD_RETRY_AFTER_SECONDS, 1)
  assert.equal(config.AUTH_SIGNATURE_CHECKS, 'worker')
  assert.equal(readConfig({ ...base, AUTH_SIGNATURE_CHECKS: 'event-loop' }).AUTH_SIGNATURE_CHECKS, 'event-loop')
  for (const [name, value] of [['OVERLOAD_MAX_EVENT_LOOP_DELAY_MS', '-1'], ['OVERLOAD_MAX_EVENT_LOOP_UTILIZATION', '1.5'], ['OVERLOAD_SAMPLE_INTERVAL_MS', '5'], ['OVERLOAD_MAX_SIGNATURE_CHECK_DELAY_MS', '-5'], ['OVERLOAD_RETRY_AFTER_SECONDS', 'soon'], ['AUTH_SIGNATURE_CHECKS', 'workers'], ['AUTH_SIGNATURE_CHECKS', 'thread-pool']]) {
    assert.throws(() => readConfig({ ...base, [name as string]: value }), (error: Error) => error instanceof ConfigError && error.message.includes(name as string))
  }
})
