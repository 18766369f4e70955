import assert from 'node:assert/strict'
import { createServer, type Socket } from 'node:net'
import { test } from 'node:test'
import { startService } from '../../../scripts/lib/processes.ts'
import { fastTokenSettings, flavours, getJson, metric, startBackend, startCaller, startTimeoutMs, tenant, timed } from './helpers.ts'

// What the api says reaches the caller's client unchanged; the flavour does not matter here.
const [imds] = flavours as [typeof flavours[number]]

test('a 401 from the api is retried once with a freshly acquired token, then surfaced as 502', async (t) => {
  const backend = await startBackend(t)
  // Tokens signed with a key the JWKS does not publish: the api answers 401 to every one.
  const { kid } = await backend.mock.admin.rotateKeys(true)
  await backend.mock.admin.removeKey(kid)
  await backend.mock.admin.clearTokenCache()
  const caller = await startCaller(t, imds, backend)

  const { status, body } = await getJson(`${caller.url}/call`)
  assert.equal(status, 502)
  assert.equal(body.error, 'api_rejected')
  const upstream = body.upstream as { status: number, wwwAuthenticate: string }
  assert.equal(upstream.status, 401)
  assert.match(upstream.wwwAuthenticate, /^Bearer error="invalid_token"/)
  assert.equal(await metric(caller.url, 'upstream_requests_total', { status: '401' }), 2, 'one retry')
  assert.equal(await metric(caller.url, 'upstream_requests_total'), 2)
})

test('a 403 from the api is not retried', async (t) => {
  const backend = await startBackend(t)
  // The default tenant's user-assigned identity has no app role on the api.
  const caller = await startCaller(t, imds, backend, { AZURE_CLIENT_ID: '2c3d4e5f-6a7b-4c8d-8e9f-1a2b3c4d5e6f' })

  const { status, body } = await getJson(`${caller.url}/call`)
  assert.equal(status, 502)
  const upstream = body.upstream as { status: number, wwwAuthenticate: string }
  assert.equal(upstream.status, 403)
  assert.match(upstream.wwwAuthenticate, /^Bearer error="insufficient_scope"/)
  assert.equal(await metric(caller.url, 'upstream_requests_total', { status: '403' }), 1)
  assert.equal(await metric(caller.url, 'upstream_requests_total'), 1)
})

test('an api that is down or does not answer: 502 api_unreachable, within the call timeout', { concurrency: true }, async (t) => {
  const backend = await startBackend(t)
  // A listener that accepts connections and never answers, and a port nobody listens on.
  const sockets = new Set<Socket>()
  const silent = createServer((socket) => { sockets.add(socket) })
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  t.after(() => { for (const socket of sockets) socket.destroy(); silent.close() })
  const silentUrl = `http://127.0.0.1:${(silent.address() as { port: number }).port}`
  const closedUrl = 'http://127.0.0.1:9'

  await Promise.all([
    t.test('does not answer', async (t) => {
      const caller = await startCaller(t, imds, { ...backend, api: { ...backend.api, url: silentUrl } }, { API_TIMEOUT_MS: '500' })
      const { value, ms } = await timed(() => getJson(`${caller.url}/call`))
      assert.equal(value.status, 502)
      assert.equal(value.body.error, 'api_unreachable')
      assert.equal(value.body.reason, 'timeout')
      assert.ok(ms >= 450 && ms < 2500, `after ${Math.round(ms)} ms`)
      assert.equal(await metric(caller.url, 'upstream_requests_total', { status: 'timeout' }), 1)
    }),
    t.test('is down', async (t) => {
      const caller = await startService('caller', {
        timeoutMs: startTimeoutMs,
        env: { API_BASE_URL: closedUrl, API_SCOPE: tenant.apiScope, ...imds.env(backend.mock.url), ...fastTokenSettings }
      })
      t.after(() => caller.stop())
      const { status, body } = await getJson(`${caller.url}/call`)
      assert.equal(status, 502)
      assert.equal(body.error, 'api_unreachable')
      assert.equal(body.reason, 'unreachable')
      assert.equal(await metric(caller.url, 'upstream_requests_total', { status: 'unreachable' }), 1)
    })
  ])
})
