import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { test } from 'node:test'
import { startService } from '../../../scripts/lib/processes.ts'
import { fastTokenSettings, flavours, getJson, metric, startBackend, startCaller, startTimeoutMs, tenant, timed, waitFor } from './helpers.ts'

// Everything here runs once per flavour (IMDS, identity endpoint), both flavours at once.

test('a burst of 500 concurrent /call on a cold caller makes exactly one token request', { concurrency: true }, async (t) => {
  await Promise.all(flavours.map((flavour) => t.test(flavour.name, async (t) => {
    const backend = await startBackend(t, {}, flavour)
    // The first token request takes 1.5 s, so the whole burst arrives while it is in flight. The
    // deadlines are the production ones: on a loaded machine a 1 s attempt timeout could cut it.
    await backend.mock.admin.addFault({ target: 'token', mode: 'latency', latencyMs: 1500, count: 1 })
    const caller = await startCaller(t, flavour, backend, { TOKEN_ATTEMPT_TIMEOUT_MS: '5000', TOKEN_WAIT_TIMEOUT_MS: '10000' })

    const notYet = await getJson(`${caller.url}/readyz`)
    assert.equal(notYet.status, 503, 'not ready before the first token')
    assert.match(String((notYet.body.checks as Record<string, string>).token), /no token yet/)
    assert.equal((await getJson(`${caller.url}/healthz`)).status, 200, 'alive without a token')

    const responses = await Promise.all(Array.from({ length: 500 }, async () => {
      const response = await fetch(`${caller.url}/call`)
      return { status: response.status, body: await response.json() as Record<string, unknown> }
    }))
    const failed = responses.filter((r) => r.status !== 200)
    assert.deepEqual(failed.slice(0, 3), [], `${failed.length} of 500 calls failed`)
    assert.ok(responses.every((r) => r.body.aud === tenant.apiClientId && (r.body.roles as string[]).includes('DoAll')))

    assert.equal(await metric(backend.mock.url, 'mock_imds_token_requests_total', { endpoint: flavour.name }), 1,
      'mock-imds saw exactly one token request')
    assert.equal(await metric(caller.url, 'token_requests_total', { source: 'endpoint' }), 1)
    assert.equal(await metric(caller.url, 'token_acquisition_duration_seconds_count', { result: 'success' }), 1)
    assert.ok(await metric(caller.url, 'token_expires_in_seconds') > 86_000)
    assert.equal((await getJson(`${caller.url}/readyz`)).status, 200)
  })))
})

test('identity not found: a deployment error, reported as such at once, and not retried', { concurrency: true }, async (t) => {
  await Promise.all(flavours.map((flavour) => t.test(flavour.name, async (t) => {
    const backend = await startBackend(t, {}, flavour)
    const caller = await startCaller(t, flavour, backend, {
      AZURE_CLIENT_ID: '99999999-9999-4999-8999-999999999999',
      // Long enough that both calls below fall inside it, however slow the machine.
      TOKEN_FATAL_COOLDOWN_MS: '60000'
    })

    const first = await timed(() => getJson(`${caller.url}/call`))
    assert.equal(first.value.status, 503)
    assert.equal(first.value.body.error, 'managed_identity_misconfigured')
    assert.equal(first.value.body.reason, 'identity_not_found')
    // IMDS says "Identity not found"; Container Apps "Unable to load the proper Managed Identity." Same meaning.
    assert.match(String(first.value.body.message), /deployment error.*AZURE_CLIENT_ID.*(Identity not found|Unable to load the proper Managed Identity)/s)
    assert.match(String(first.value.body.hint), /AZURE_CLIENT_ID/)
    assert.ok(first.ms < 2000, `answered in ${Math.round(first.ms)} ms`)

    // Within the cooldown, further requests get the same answer without asking the endpoint again.
    const second = await getJson(`${caller.url}/call`)
    assert.equal(second.status, 503)
    assert.equal((await backend.mock.admin.state()).tokenRequests, 1, 'one request: no retry, no request per call')
    assert.equal(await metric(caller.url, 'token_requests_total', { source: 'endpoint', result: 'failure' }), 1)

    const ready = await getJson(`${caller.url}/readyz`)
    assert.equal(ready.status, 503)
    assert.match(String((ready.body.checks as Record<string, string>).token), /Identity not found|Unable to load the proper Managed Identity/)
    assert.equal((await getJson(`${caller.url}/healthz`)).status, 200)
  })))
})

test('connection refused: a 503 at once, retried with backoff in the background', { concurrency: true }, async (t) => {
  const closedPort = await new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
  await Promise.all(flavours.map((flavour) => t.test(flavour.name, async (t) => {
    const caller = await startService('caller', {
      timeoutMs: startTimeoutMs,
      env: {
        API_BASE_URL: 'http://127.0.0.1:9',
        API_SCOPE: tenant.apiScope,
        ...flavour.env(`http://127.0.0.1:${closedPort}`),
        ...fastTokenSettings
      }
    })
    t.after(() => caller.stop())

    const { value, ms } = await timed(() => getJson(`${caller.url}/call`))
    assert.equal(value.status, 503)
    assert.equal(value.body.error, 'token_unavailable')
    assert.equal(value.body.reason, 'unreachable')
    assert.match(String(value.body.message), /the identity endpoint is failing.*unreachable/)
    // Answered when the first attempt failed, not at TOKEN_WAIT_TIMEOUT_MS: /call fails fast (getToken's failFast).
    assert.ok(ms < Number(fastTokenSettings.TOKEN_WAIT_TIMEOUT_MS) - 1000, `503 after ${Math.round(ms)} ms`)
    await waitFor(async () => await metric(caller.url, 'token_requests_total', { source: 'endpoint', result: 'failure' }) >= 3, 5000, 'retried with backoff, in the background')
    assert.equal((await getJson(`${caller.url}/readyz`)).status, 503)
    assert.equal((await getJson(`${caller.url}/healthz`)).status, 200)
  })))
})
