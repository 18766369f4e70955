import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { MockImdsConfigError, startMockImds, type Platform } from '../src/index.ts'
import { resolveOptions } from '../src/options.ts'
import { build, decodeHeader, identityRequest, imdsRequest, metricValue, tenantId } from './helpers.ts'

const jwksPath = `/${tenantId}/discovery/v2.0/keys`

async function withAdmin (t: { after: (fn: () => Promise<void>) => void }, platform: Platform = 'vm') {
  const app = await build({ adminPort: 0, platform })
  t.after(() => app.close())
  const admin = app.admin as FastifyInstance
  const post = (url: string, payload?: unknown) => admin.inject({ method: 'POST', url, ...(payload === undefined ? {} : { payload: payload as object }) })
  return { app, admin, post }
}

test('the admin API is off unless adminPort is set, and never served on the public port', async (t) => {
  const plain = await build()
  t.after(() => plain.close())
  assert.equal(plain.admin, null)
  assert.equal((await plain.inject('/admin/state')).statusCode, 404)

  const { app, admin } = await withAdmin(t)
  assert.equal((await app.inject('/admin/state')).statusCode, 404)
  assert.equal((await app.inject({ method: 'POST', url: '/admin/faults', payload: { target: 'token', mode: 'hang' } })).statusCode, 404)
  assert.equal((admin.server.address() as AddressInfo).address, '127.0.0.1')
})

test('listening, the admin API has a loopback port of its own, other than the public one', async (t) => {
  const mock = await startMockImds({ port: 0, adminPort: 0, logLevel: 'silent' })
  t.after(() => mock.close())
  const publicPort = (mock.app.server.address() as AddressInfo).port
  const adminAddress = mock.app.admin!.server.address() as AddressInfo
  // Ports with ports: both are numbers > 0, so a mix-up of port and address object cannot pass.
  assert.ok(publicPort > 0 && adminAddress.port > 0)
  assert.notEqual(adminAddress.port, publicPort)
  assert.equal(adminAddress.address, '127.0.0.1')
  assert.equal(mock.port, publicPort)
  assert.equal(mock.adminPort, adminAddress.port)
  assert.equal((await fetch(`${mock.url}/admin/state`)).status, 404)
  assert.equal((await fetch(`${mock.adminUrl}/admin/state`)).status, 200)
})

test('adminPort equal to port fails before anything listens, naming both options', () => {
  assert.throws(() => resolveOptions({ port: 4000, adminPort: 4000 }),
    (error: Error) => error instanceof MockImdsConfigError && /^adminPort must differ from port/.test(error.message))
})

test('a status fault answers the next `count` token requests, then the endpoint is itself again', async (t) => {
  const { app, post } = await withAdmin(t)
  const added = await post('/admin/faults', { target: 'imds', mode: 'status', status: 500, count: 2 })
  assert.equal(added.statusCode, 201)
  assert.match(added.json().id, /^[0-9a-f-]{36}$/)

  for (let i = 0; i < 2; i++) {
    const failed = await imdsRequest(app)
    assert.equal(failed.statusCode, 500)
    assert.equal(failed.headers['content-type'], 'application/json; charset=utf-8')
    assert.deepEqual(Object.keys(failed.json()), ['error', 'error_description'])
    assert.equal(failed.json().error, 'unknown')
  }
  assert.equal((await imdsRequest(app)).statusCode, 200)
  assert.equal(await metricValue(app, 'mock_imds_token_requests_total', { endpoint: 'imds', status: '500' }), 2)
  assert.equal(await metricValue(app, 'mock_imds_token_requests_total', { endpoint: 'imds', status: '200' }), 1)

  // A fault for IMDS leaves the identity endpoint (of an App Service) alone.
  const appService = await withAdmin(t, 'app-service')
  await appService.post('/admin/faults', { target: 'imds', mode: 'status', status: 500 })
  assert.equal((await identityRequest(appService.app)).statusCode, 200)
  assert.equal(await metricValue(appService.app, 'mock_imds_token_requests_total', { endpoint: 'identity', status: '200' }), 1)
})

test('target "token" hits both endpoints, each in its own error shape, with Retry-After when asked', async (t) => {
  const { app, admin, post } = await withAdmin(t)
  await post('/admin/faults', { target: 'token', mode: 'status', status: 429, retryAfterSeconds: 3 })
  const imds = await imdsRequest(app)
  assert.equal(imds.statusCode, 429)
  assert.equal(imds.headers['retry-after'], '3')
  assert.equal(imds.json().error, 'too_many_requests')
  const appService = await withAdmin(t, 'app-service')
  await appService.post('/admin/faults', { target: 'token', mode: 'status', status: 429, retryAfterSeconds: 3 })
  const identity = await identityRequest(appService.app)
  assert.equal(identity.statusCode, 429)
  assert.equal(identity.headers['retry-after'], '3')
  assert.deepEqual(Object.keys(identity.json()), ['statusCode', 'message', 'correlationId'])
  assert.equal(identity.json().statusCode, 429)

  // No count: it lasts until cleared.
  assert.equal((await imdsRequest(app)).statusCode, 429)
  assert.equal((await admin.inject({ method: 'DELETE', url: '/admin/faults' })).statusCode, 204)
  assert.equal((await imdsRequest(app)).statusCode, 200)
})

test('faults queue in the order they were added', async (t) => {
  const { app, post } = await withAdmin(t)
  await post('/admin/faults', { target: 'token', mode: 'status', status: 404, count: 1 })
  await post('/admin/faults', { target: 'token', mode: 'status', status: 410, count: 1 })
  assert.equal((await imdsRequest(app)).statusCode, 404)
  assert.equal((await imdsRequest(app)).statusCode, 410)
  assert.equal((await imdsRequest(app)).statusCode, 200)
})

test('a hang holds the request until the faults are cleared, then it gets its normal answer', async (t) => {
  const { app, admin, post } = await withAdmin(t)
  await post('/admin/faults', { target: 'imds', mode: 'hang', count: 1 })
  let settled = false
  const pending = imdsRequest(app).then((response) => { settled = true; return response })
  await new Promise((resolve) => setTimeout(resolve, 150))
  assert.equal(settled, false)
  assert.equal((await admin.inject('/admin/state')).json().hungRequests, 1)
  await admin.inject({ method: 'DELETE', url: '/admin/faults' })
  assert.equal((await pending).statusCode, 200)
})

test('a hung request does not keep the server from closing', async () => {
  const app = await build({ adminPort: 0 })
  await app.admin!.inject({ method: 'POST', url: '/admin/faults', payload: { target: 'token', mode: 'hang' } })
  const pending = imdsRequest(app)
  await new Promise((resolve) => setTimeout(resolve, 50))
  await app.close()
  assert.equal((await pending).statusCode, 200)
})

test('latency delays the answer by at least latencyMs and leaves it unchanged', async (t) => {
  const { app, post } = await withAdmin(t, 'container-apps')
  await post('/admin/faults', { target: 'identity', mode: 'latency', latencyMs: 300, count: 1 })
  const started = performance.now()
  const response = await identityRequest(app)
  assert.ok(performance.now() - started >= 290)
  assert.equal(response.statusCode, 200)
  assert.equal(typeof response.json().access_token, 'string')
})

test('garbage makes the JWKS a 200 that is not JSON; discovery can fail on its own', async (t) => {
  const { app, admin, post } = await withAdmin(t)
  await post('/admin/faults', { target: 'jwks', mode: 'garbage', count: 1 })
  await post('/admin/faults', { target: 'discovery', mode: 'status', status: 503, count: 1 })
  const garbage = await app.inject(jwksPath)
  assert.equal(garbage.statusCode, 200)
  assert.throws(() => JSON.parse(garbage.body))
  assert.equal((await app.inject(`/${tenantId}/v2.0/.well-known/openid-configuration`)).statusCode, 503)
  assert.equal((await app.inject(jwksPath)).json().keys.length, 1)
  assert.equal((await app.inject(`/${tenantId}/v2.0/.well-known/openid-configuration`)).statusCode, 200)

  assert.equal(await metricValue(app, 'mock_imds_jwks_requests_total', { document: 'jwks', version: '2.0', status: '200' }), 2)
  assert.equal(await metricValue(app, 'mock_imds_jwks_requests_total', { document: 'discovery', version: '2.0', status: '503' }), 1)
  assert.equal(await metricValue(app, 'mock_imds_jwks_requests_total', { document: 'discovery', version: '2.0', status: '200' }), 1)
  const state = (await admin.inject('/admin/state')).json()
  assert.equal(state.jwksRequests, 2)
  assert.equal(state.discoveryRequests, 2)
  assert.equal(state.tokenRequests, 0)
})

test('rotating keeps the old key in the JWKS unless told not to; new tokens carry the new kid', async (t) => {
  const { app, admin, post } = await withAdmin(t)
  const before = (await imdsRequest(app)).json().access_token as string
  const firstKid = decodeHeader(before).kid as string

  const rotated = await post('/admin/keys/rotate')
  assert.equal(rotated.statusCode, 200)
  const { kid, previousKids } = rotated.json()
  assert.notEqual(kid, firstKid)
  assert.deepEqual(previousKids, [firstKid])
  assert.deepEqual((await app.inject(jwksPath)).json().keys.map((k: { kid: string }) => k.kid), [kid, firstKid])

  // The cached token (signed by the old key) is still what IMDS hands out, until the cache is cleared.
  assert.equal((await imdsRequest(app)).json().access_token, before)
  assert.equal((await post('/admin/tokens/cache/clear')).statusCode, 204)
  assert.equal(decodeHeader((await imdsRequest(app)).json().access_token).kid, kid)

  const hard = (await post('/admin/keys/rotate', { keepPrevious: false })).json()
  assert.deepEqual(hard.previousKids, [kid, firstKid])
  assert.deepEqual((await app.inject(jwksPath)).json().keys.map((k: { kid: string }) => k.kid), [hard.kid])
  assert.deepEqual((await admin.inject('/admin/state')).json().kids, [hard.kid])
})

test('a key can be taken out of the JWKS; the signing key keeps signing (an unknown kid for validators)', async (t) => {
  const { app, admin, post } = await withAdmin(t)
  const { kid, previousKids } = (await post('/admin/keys/rotate')).json()
  const old = previousKids[0] as string
  assert.equal((await admin.inject({ method: 'DELETE', url: `/admin/keys/${old}` })).statusCode, 204)
  assert.equal((await admin.inject({ method: 'DELETE', url: `/admin/keys/${old}` })).statusCode, 404)
  assert.deepEqual((await app.inject(jwksPath)).json().keys.map((k: { kid: string }) => k.kid), [kid])

  assert.equal((await admin.inject({ method: 'DELETE', url: `/admin/keys/${kid}` })).statusCode, 204)
  assert.deepEqual((await app.inject(jwksPath)).json().keys, [])
  assert.equal(decodeHeader((await imdsRequest(app)).json().access_token).kid, kid)
})

test('GET /admin/state lists faults with what is left of them, the kids and the request counts', async (t) => {
  const { app, admin, post } = await withAdmin(t)
  const { id } = (await post('/admin/faults', { target: 'token', mode: 'status', status: 503, count: 3 })).json()
  await imdsRequest(app)
  const state = (await admin.inject('/admin/state')).json()
  assert.deepEqual(state.faults, [{ id, target: 'token', mode: 'status', status: 503, count: 3, remaining: 2, hits: 1 }])
  assert.equal(state.kids.length, 1)
  assert.equal(state.signingKid, state.kids[0])
  assert.equal(state.tokenRequests, 1)
  assert.equal((await admin.inject({ method: 'DELETE', url: `/admin/faults/${id}` })).statusCode, 204)
  assert.deepEqual((await admin.inject('/admin/state')).json().faults, [])
})

test('bad admin requests get 400 with a JSON reason, and change nothing', async (t) => {
  const { admin, post } = await withAdmin(t)
  const bad = [
    { target: 'everything', mode: 'status', status: 500 },
    { target: 'token', mode: 'explode' },
    { target: 'token', mode: 'status' },
    { target: 'token', mode: 'status', status: 200 },
    { target: 'token', mode: 'latency' },
    { target: 'token', mode: 'hang', status: 500 },
    { target: 'token', mode: 'status', status: 500, count: 0 },
    { target: 'token', mode: 'status', status: 500, extra: true }
  ]
  for (const body of bad) {
    const response = await post('/admin/faults', body)
    assert.equal(response.statusCode, 400, JSON.stringify(body))
    assert.equal(typeof response.json().message, 'string')
  }
  const notJson = await admin.inject({ method: 'POST', url: '/admin/faults', headers: { 'content-type': 'application/json' }, payload: '{"target":' })
  assert.equal(notJson.statusCode, 400)
  assert.equal((await post('/admin/keys/rotate', { keepPrevious: 'no' })).statusCode, 400)
  const state = (await admin.inject('/admin/state')).json()
  assert.deepEqual(state.faults, [])
  assert.equal(state.kids.length, 1)
})
