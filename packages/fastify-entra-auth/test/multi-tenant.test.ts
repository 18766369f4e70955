import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import type { Identity } from '../src/index.ts'
import { OTHER_TENANT, TENANT, TestAuthority, appClaims, createTestKey, mint, v1Issuer, v2Issuer, type TestKey } from './helpers/authority.ts'
import { startApp, type TestApp } from './helpers/app.ts'

/*
 * Multi-tenant apis (issue 12 §3): tenants '*', keys loaded per tenant on first use, iss still bound to
 * tid and ver, and a bounded set of tenants that a flood of random tids cannot grow (nor make fetch).
 * Plus the iss<->tid binding with two configured tenants, where the tenant check cannot refuse first.
 */

const bearer = (token: string) => `Bearer ${token}`
const tenantRequests = (authority: TestAuthority) => authority.urls.filter((url) => !url.startsWith('/common/')).length
const commonJwksRequests = (authority: TestAuthority) => authority.urls.filter((url) => url.startsWith('/common/discovery/')).length

describe('tenants: \'*\'', () => {
  let authority: TestAuthority
  let key: TestKey
  let forger: TestKey
  let api: TestApp
  let identity: Identity | null = null
  before(async () => {
    key = createTestKey()
    forger = createTestKey({ kid: key.kid })
    authority = await TestAuthority.start({ common: [key], [TENANT]: [key], [OTHER_TENANT]: [key] })
    api = await startApp(authority.url, { tenants: '*', maxTenants: 50 }, (app) => {
      app.get('/whoami', { config: { auth: { roles: ['DoAll'] } } }, async (request) => { identity = request.identity; return 'ok' })
    })
  })
  after(async () => {
    await api?.app.close()
    await authority?.stop()
  })

  test('ready once the common keys are loaded; no tenant\'s documents read at start', async () => {
    assert.equal(api.app.entraAuth.notReadyReason(), null)
    assert.equal(tenantRequests(authority), 0)
    assert.equal(await api.metric('jwks_tenants'), 0)
  })

  test('a tenant\'s keys load on its first token (4 requests: v1 and v2 discovery and JWKS), then never again', async () => {
    assert.equal((await api.get(bearer(mint(key)), '/whoami')).statusCode, 200)
    assert.equal(identity?.tenantId, TENANT)
    assert.equal(tenantRequests(authority), 4)
    assert.deepEqual(authority.urls.filter((url) => url.startsWith(`/${TENANT}/`)).sort(),
      [`/${TENANT}/.well-known/openid-configuration`, `/${TENANT}/discovery/keys`, `/${TENANT}/discovery/v2.0/keys`, `/${TENANT}/v2.0/.well-known/openid-configuration`])
    assert.equal((await api.get(bearer(mint(key, appClaims({}, '1.0'))))).statusCode, 200)
    assert.equal((await api.get(bearer(mint(key, appClaims({}, '2.0', OTHER_TENANT))), '/whoami')).statusCode, 200)
    assert.equal(identity?.tenantId, OTHER_TENANT)
    assert.equal(tenantRequests(authority), 8)
    assert.equal(await api.metric('jwks_tenants'), 2)
    assert.equal(await api.metric('jwks_refresh_total', { tenant: '*', result: 'success' }), 4, 'tenants loaded on use share one label value')
  })

  test('iss stays bound to the token\'s own tid and ver', async () => {
    for (const claims of [
      appClaims({ iss: v2Issuer(OTHER_TENANT) }),
      appClaims({ iss: v2Issuer(TENANT) }, '2.0', OTHER_TENANT),
      appClaims({ iss: v1Issuer(TENANT) }),
      appClaims({ iss: v2Issuer(TENANT) }, '1.0'),
      appClaims({ iss: 'https://login.microsoftonline.com/{tenantid}/v2.0' })
    ]) {
      const response = await api.get(bearer(mint(key, claims)))
      assert.equal(response.statusCode, 401, JSON.stringify(claims.iss))
      assert.match(String(response.headers['www-authenticate']), /error="invalid_token", error_description="the token issuer is not accepted"/)
    }
  })

  test('2,000 forged tokens with random tids (kid of a real key, wrong signature): 401 bad_signature, no fetch, no tenant held', async () => {
    const requests = authority.urls.length
    const held = await api.metric('jwks_tenants')
    for (let i = 0; i < 2000; i++) {
      const response = await api.get(bearer(mint(forger, appClaims({}, i % 2 === 0 ? '2.0' : '1.0', randomUUID()))))
      if (response.statusCode !== 401) assert.fail(`request ${i}: ${response.statusCode} ${response.body}`)
    }
    assert.equal(authority.urls.length, requests, 'no discovery or JWKS request')
    assert.equal(await api.metric('jwks_tenants'), held)
    assert.equal(await api.metric('auth_requests_total', { result: 'rejected', reason: 'bad_signature' }), 2000)
  })

  test('random tids with random kids: unknown_key, the common JWKS refetched at most once per cooldown', async () => {
    const before = commonJwksRequests(authority)
    for (let i = 0; i < 1000; i++) {
      const response = await api.get(bearer(mint(forger, appClaims({}, '2.0', randomUUID()), { kid: randomUUID().replaceAll('-', '') })))
      if (response.statusCode !== 401) assert.fail(`request ${i}: ${response.statusCode}`)
    }
    // The default cooldown is 5 minutes: one refetch for the whole burst.
    assert.ok(commonJwksRequests(authority) - before <= 1, `${commonJwksRequests(authority) - before} common JWKS fetches`)
    assert.equal(tenantRequests(authority), 8, JSON.stringify(authority.urls.filter((url) => !url.startsWith('/common/')).slice(8)))
  })
})

describe('tenants: \'*\', a new tenant\'s first burst', () => {
  test('every token waits for the tenant\'s one load: all 200, no 503 (found by the differential test)', async (t) => {
    const key = createTestKey()
    const authority = await TestAuthority.start({ common: [key], [TENANT]: [key] })
    t.after(() => authority.stop())
    const api = await startApp(authority.url, { tenants: '*' })
    t.after(() => api.app.close())
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => api.get(bearer(mint(key, appClaims({}, i % 2 === 0 ? '2.0' : '1.0'))))))
    assert.deepEqual(answers.map((answer) => answer.statusCode), Array.from({ length: 20 }, () => 200))
    assert.equal(tenantRequests(authority), 4, 'one load: v1 and v2 discovery and JWKS')
  })
})

describe('tenants: \'*\' with a bounded set', () => {
  test('tokens validly signed for 200 distinct tenants: at most maxTenants held, 4 requests per tenant load, a dropped tenant reloads', async (t) => {
    const key = createTestKey()
    const authority = await TestAuthority.start({ common: [key] })
    t.after(() => authority.stop())
    authority.anyTenantKeys = [key]
    const api = await startApp(authority.url, { tenants: '*', maxTenants: 50 })
    t.after(() => api.app.close())
    const tids = Array.from({ length: 200 }, () => randomUUID())
    for (const tid of tids) assert.equal((await api.get(bearer(mint(key, appClaims({}, '2.0', tid))))).statusCode, 200)
    assert.equal(await api.metric('jwks_tenants'), 50)
    assert.equal(tenantRequests(authority), 200 * 4)
    // The last 50 are held: no request. The first was dropped: loaded again.
    assert.equal((await api.get(bearer(mint(key, appClaims({}, '2.0', tids.at(-1)))))).statusCode, 200)
    assert.equal(tenantRequests(authority), 800)
    assert.equal((await api.get(bearer(mint(key, appClaims({}, '2.0', tids[0]))))).statusCode, 200)
    assert.equal(tenantRequests(authority), 804)
    assert.equal(await api.metric('jwks_tenants'), 50)
  })

  test('the common keys unavailable at start: not ready, tokens get 503 with Retry-After', async (t) => {
    const key = createTestKey()
    const authority = await TestAuthority.start({ [TENANT]: [key] })
    t.after(() => authority.stop())
    const api = await startApp(authority.url, { tenants: '*', jwks: { retryMaxMs: 60_000 } })
    t.after(() => api.app.close())
    assert.match(String(api.app.entraAuth.notReadyReason()), /common v2\.0/)
    const response = await api.get(bearer(mint(key)))
    assert.equal(response.statusCode, 503)
    assert.ok(Number(response.headers['retry-after']) >= 1)
  })
})

describe('two configured tenants: only the iss<->tid binding can refuse another tenant\'s iss or tid', () => {
  let authority: TestAuthority
  let key: TestKey
  let api: TestApp
  before(async () => {
    key = createTestKey()
    authority = await TestAuthority.start({ [TENANT]: [key], [OTHER_TENANT]: [key] })
    api = await startApp(authority.url, { tenants: [TENANT, OTHER_TENANT] })
  })
  after(async () => {
    await api?.app.close()
    await authority?.stop()
  })
  test('each tenant\'s own tokens pass', async () => {
    assert.equal((await api.get(bearer(mint(key)))).statusCode, 200)
    assert.equal((await api.get(bearer(mint(key, appClaims({}, '2.0', OTHER_TENANT))))).statusCode, 200)
    assert.equal((await api.get(bearer(mint(key, appClaims({}, '1.0', OTHER_TENANT))))).statusCode, 200)
  })
  for (const [name, claims] of [
    ['tid of one configured tenant, iss of the other (v2)', () => appClaims({ iss: v2Issuer(OTHER_TENANT) })],
    ['tid of the other, iss of the first (v2)', () => appClaims({ iss: v2Issuer(TENANT) }, '2.0', OTHER_TENANT)],
    ['tid of one, v1 iss of the other', () => appClaims({ iss: v1Issuer(OTHER_TENANT) }, '1.0')],
    ['tid of the other, v1 iss of the first', () => appClaims({ iss: v1Issuer(TENANT) }, '1.0', OTHER_TENANT)]
  ] as const) {
    test(`${name}: 401 wrong_issuer`, async () => {
      const before = await api.metric('auth_requests_total', { result: 'rejected', reason: 'wrong_issuer' })
      const response = await api.get(bearer(mint(key, claims())))
      assert.equal(response.statusCode, 401)
      assert.equal(await api.metric('auth_requests_total', { result: 'rejected', reason: 'wrong_issuer' }), before + 1)
    })
  }
})
