import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { test, type TestContext } from 'node:test'
import { TENANT, TestAuthority, appClaims, createTestKey, mint, type TestKey } from './helpers/authority.ts'
import type { JwksOptions } from '../src/index.ts'
import { startApp as startApi, type TestApp as TestApi } from './helpers/app.ts'

/*
 * Key rotation, JWKS outages, removed keys and random-kid floods against a JWKS server we control,
 * with the api's timing parameters shortened so that each case takes a second or two.
 */

async function setup (t: TestContext, keys: TestKey[], jwks: JwksOptions = {}): Promise<{ authority: TestAuthority, api: TestApi }> {
  const authority = await TestAuthority.start({ [TENANT]: keys })
  t.after(() => authority.stop())
  const api = await startApi(authority.url, { tokenVersions: ['2.0'], jwks })
  t.after(() => api.app.close())
  return { authority, api }
}

async function until (condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

const bearer = (token: string) => `Bearer ${token}`

test('rotation: a new kid is accepted on its first request, with exactly one JWKS fetch', async (t) => {
  const a = createTestKey()
  const b = createTestKey()
  const { authority, api } = await setup(t, [a])
  assert.equal((await api.get(bearer(mint(a)))).statusCode, 200)
  authority.publish(TENANT, [b, a])
  const fetches = authority.jwksRequests()
  assert.equal((await api.get(bearer(mint(b)))).statusCode, 200)
  assert.equal(authority.jwksRequests(), fetches + 1)
  assert.equal((await api.get(bearer(mint(b)))).statusCode, 200)
  assert.equal((await api.get(bearer(mint(a)))).statusCode, 200, 'the previous key stays valid while published')
  // Within the cooldown (5 min by default) another unknown kid costs nothing.
  assert.equal((await api.get(bearer(mint(createTestKey())))).statusCode, 401)
  assert.equal(authority.jwksRequests(), fetches + 1)
  assert.equal(await api.metric('jwks_keys', { tenant: TENANT }), 2)
})

test('random-kid flood: concurrent unknown kids share one fetch, and fetches stay within one per cooldown', async (t) => {
  const a = createTestKey()
  const { authority, api } = await setup(t, [a], { cooldownMs: 1000 })
  const strangers = Array.from({ length: 4 }, () => createTestKey())
  const forged = (i: number) => bearer(mint(strangers[i % strangers.length] as TestKey, appClaims(), { kid: `k${i}x${Math.random().toString(36).slice(2)}` }))

  const before = authority.jwksRequests()
  const burst = await Promise.all(Array.from({ length: 200 }, (_, i) => api.get(forged(i))))
  assert.ok(burst.every((response) => response.statusCode === 401))
  assert.equal(authority.jwksRequests(), before + 1, 'one fetch for 200 concurrent unknown kids')

  const started = Date.now()
  let sent = 0
  while (Date.now() - started < 2500) {
    const responses = await Promise.all(Array.from({ length: 20 }, () => api.get(forged(sent++))))
    assert.ok(responses.every((response) => response.statusCode === 401 && /error="invalid_token"/.test(String(response.headers['www-authenticate']))))
    assert.equal((await api.get(bearer(mint(a)))).statusCode, 200, 'valid tokens pass during the flood')
    await sleep(25)
  }
  const elapsed = Date.now() - started
  const fetches = authority.jwksRequests() - before
  // One fetch per started cooldown period, plus the burst's.
  assert.ok(fetches <= Math.ceil(elapsed / 1000) + 1, `${fetches} JWKS fetches for ${sent + 200} unknown-kid requests in ${elapsed} ms`)
  assert.ok(sent > 200, `only ${sent} requests sent`)
  t.diagnostic(`${fetches} JWKS fetches for ${sent + 200} unknown-kid requests in ${elapsed} ms (cooldown 1000 ms)`)
  assert.equal(await api.metric('auth_requests_total', { result: 'rejected', reason: 'unknown_key' }), sent + 200)
})

test('outage: valid tokens keep passing with the last good keys, with a failure metric and a staleness log', async (t) => {
  const a = createTestKey()
  const { authority, api } = await setup(t, [a], {
    refreshIntervalMs: 300, retryMaxMs: 200, fetchTimeoutMs: 2000, cooldownMs: 0
  })
  const lastSuccess = await api.metric('jwks_last_success_timestamp_seconds', { tenant: TENANT })
  assert.ok(lastSuccess > 0)
  for (const fault of [{ kind: 'status', status: 503 }, { kind: 'garbage' }, { kind: 'hang' }] as const) {
    authority.fault = fault
    const end = Date.now() + 900
    while (Date.now() < end) {
      const started = performance.now()
      const response = await api.get(bearer(mint(a)))
      assert.equal(response.statusCode, 200, `during a ${fault.kind} outage`)
      // A request that waited for the hanging JWKS would take the 2 s fetch timeout.
      assert.ok(performance.now() - started < 1000, 'a known key never waits for the JWKS')
      await sleep(50)
    }
  }
  // An unknown kid during a hanging outage waits at most the fetch timeout, then is refused.
  const started = Date.now()
  assert.equal((await api.get(bearer(mint(createTestKey())))).statusCode, 401)
  assert.ok(Date.now() - started < 5000)
  authority.fault = null

  assert.ok(await api.metric('jwks_refresh_total', { tenant: TENANT, result: 'failure' }) >= 3)
  assert.equal(await api.metric('jwks_last_success_timestamp_seconds', { tenant: TENANT }), lastSuccess)
  const stale = api.logs.find((line) => line.level === 40 && typeof line.staleSeconds === 'number')
  assert.ok(stale, 'a warning says how old the keys in use are')
  assert.match(String(stale.msg), /keeping the last good keys, \d+ s old/)
  await until(async () => await api.metric('jwks_last_success_timestamp_seconds', { tenant: TENANT }) > lastSuccess, 8000, 'recovery')
})

test('removed key: rejected after the next refresh, even for a token in the verified-token cache', async (t) => {
  const a = createTestKey()
  const b = createTestKey()
  const { authority, api } = await setup(t, [a, b], { refreshIntervalMs: 400 })
  const token = bearer(mint(a))
  const hits = await api.metric('auth_verified_token_cache_total', { result: 'hit' })
  assert.equal((await api.get(token)).statusCode, 200)
  assert.equal((await api.get(token)).statusCode, 200)
  assert.equal((await api.get(token)).statusCode, 200)
  assert.equal(await api.metric('auth_verified_token_cache_total', { result: 'hit' }), hits + 1, 'stored at its second acceptance, the third request is a cache hit')

  authority.publish(TENANT, [b])
  const fetches = authority.jwksRequests()
  await until(() => authority.jwksRequests() > fetches, 3000, 'the next refresh')
  await until(async () => await api.metric('jwks_keys', { tenant: TENANT }) === 1, 1000, 'the key count to drop')
  const response = await api.get(token)
  assert.equal(response.statusCode, 401)
  assert.equal((response.json() as { error: string }).error, 'invalid_token')
  assert.equal((await api.get(bearer(mint(b)))).statusCode, 200)
})

test('keys never loaded (authority hanging at start): the app starts within the timeout, is not ready, answers 503 with Retry-After, and recovers', async (t) => {
  const a = createTestKey()
  const authority = await TestAuthority.start({ [TENANT]: [a] })
  t.after(() => authority.stop())
  authority.fault = { kind: 'hang' }
  const started = Date.now()
  const api = await startApi(authority.url, { tokenVersions: ['2.0'], jwks: { fetchTimeoutMs: 300, retryMaxMs: 300 } })
  t.after(() => api.app.close())
  assert.ok(Date.now() - started < 3000, 'start waits for one bounded attempt only')

  const ready = await api.get(undefined, '/readyz')
  assert.equal(ready.statusCode, 503)
  assert.match(ready.body, /signing keys not loaded yet/)
  const response = await api.get(bearer(mint(a)))
  assert.equal(response.statusCode, 503)
  assert.match(String(response.headers['retry-after']), /^[1-9]\d*$/)
  assert.match(String(response.headers['www-authenticate']), /^Bearer error="invalid_token"/)
  assert.equal(await api.metric('auth_requests_total', { result: 'unavailable', reason: 'keys_unavailable' }), 1)

  authority.fault = null
  await until(async () => (await api.get(undefined, '/readyz')).statusCode === 200, 4000, 'readiness')
  assert.equal((await api.get(bearer(mint(a)))).statusCode, 200)
})

test('authority refusing connections at start: no crash, not ready, 503', async (t) => {
  const closed = await new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
  const api = await startApi(`http://127.0.0.1:${closed}`, { tokenVersions: ['2.0'] })
  t.after(() => api.app.close())
  assert.equal((await api.get(undefined, '/readyz')).statusCode, 503)
  assert.equal((await api.get(bearer(mint(createTestKey())))).statusCode, 503)
  assert.ok(api.logs.some((line) => line.level === 50 && /JWKS not loaded/.test(String(line.msg))))
})

test('keys the api refuses to publish to a verifier: shorter than 2048 bits', async (t) => {
  const a = createTestKey()
  const weak = createTestKey({ modulusLength: 1024 })
  const { api } = await setup(t, [a, weak])
  assert.equal(await api.metric('jwks_keys', { tenant: TENANT }), 1)
  assert.equal((await api.get(bearer(mint(weak)))).statusCode, 401)
})

test('an empty JWKS is treated as an outage, not as the revocation of every key', async (t) => {
  const a = createTestKey()
  const { authority, api } = await setup(t, [a], { refreshIntervalMs: 200, retryMaxMs: 200 })
  authority.publish(TENANT, [])
  const failures = await api.metric('jwks_refresh_total', { tenant: TENANT, result: 'failure' })
  await until(async () => await api.metric('jwks_refresh_total', { tenant: TENANT, result: 'failure' }) > failures, 3000, 'a failed refresh')
  assert.equal((await api.get(bearer(mint(a)))).statusCode, 200)
})

test('a cached token is refused once its exp (plus the 5 min skew) has passed', async (t) => {
  const a = createTestKey()
  const { api } = await setup(t, [a])
  // exp 296 s ago: valid for 4 more seconds under Microsoft's 300 s clock skew.
  const token = bearer(mint(a, appClaims({ exp: Math.floor(Date.now() / 1000) - 296 })))
  assert.equal((await api.get(token)).statusCode, 200)
  assert.equal((await api.get(token)).statusCode, 200)
  const hits = await api.metric('auth_verified_token_cache_total', { result: 'hit' })
  assert.equal((await api.get(token)).statusCode, 200)
  assert.equal(await api.metric('auth_verified_token_cache_total', { result: 'hit' }), hits + 1)
  await sleep(4600)
  const response = await api.get(token)
  assert.equal(response.statusCode, 401)
  assert.match(String(response.headers['www-authenticate']), /error_description="the token expired"/)
})
