import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { ManagedIdentityTokenProvider } from '../src/index.ts'
import { installJumpingClock } from './jumping-clock.ts'
import { apiScope, buildMockImds } from './mock-imds.ts'

// The 24 h token path, in process: the real SDK against a real mock-imds, with a clock that jumps
// through two days (jumping-clock.ts; this file runs in its own process under node --test). The SDK
// freezes its endpoint per process, and with it the HTTP client of the first credential that asked
// for a token (measured: a second credential's requests go through the first one's client). So this
// file has one mock-imds (IMDS flavour), one provider, and one timeline.

const clock = installJumpingClock()
const hours = clock.jumpToHours

let mock: FastifyInstance
before(async () => {
  mock = await buildMockImds({ logLevel: 'silent', adminPort: 0 })
  process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = await mock.listen({ host: '127.0.0.1', port: 0 })
})
after(async () => {
  clock.restore()
  await mock?.close()
})

async function tokenRequests (): Promise<number> {
  const text = (await mock.inject('/metrics')).body
  return text.split('\n').filter((line) => line.startsWith('mock_imds_token_requests_total{'))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0)
}

test('a 24 h token through the SDK\'s cache: half-life refresh, an endpoint that caches, a swallowed error, the margin', async (t) => {
  const events: string[] = []
  const provider = new ManagedIdentityTokenProvider({
    attemptTimeoutMs: 2000,
    acquisitionDeadlineMs: 5000,
    waitTimeoutMs: 5000,
    retryBaseDelayMs: 50,
    retryMaxDelayMs: 200,
    fatalCooldownMs: 1000,
    refreshFraction: 0.5,
    refreshJitter: 0.25,
    expiryMarginMs: 120_000,
    observer: {
      servedFromCache: () => events.push('cache'),
      acquisitionFinished: (result) => events.push(`acquisition:${result}`),
      refreshFailed: () => events.push('refresh-failed')
    }
  })
  t.after(() => provider.close())
  const tokens = {
    getToken: async (options: { forceRefresh?: boolean } = {}) => (await provider.getToken(apiScope, options)).token,
    readiness: () => provider.notReadyReason()
  }
  const refreshFailures = () => events.filter((e) => e === 'refresh-failed').length

  hours(0)
  const a = await tokens.getToken()
  assert.equal(await tokens.getToken(), a, 'served from the held token')
  assert.equal(await tokenRequests(), 1)

  await t.test('past the SDK\'s half-life, an endpoint that caches (as IMDS does) hands back the same token', async () => {
    hours(13)
    assert.equal(await tokens.getToken({ forceRefresh: true }), a)
    assert.equal(await tokenRequests(), 2, 'the SDK fetched once; reading its cache again was free')
  })

  let b = ''
  await t.test('when the endpoint does issue a new token, the SDK returns the old one: the provider reads the new one from the SDK\'s cache', async () => {
    // The SDK's next refresh point is now half of the remaining 11 h away: 18.5 h.
    hours(19)
    ;(mock.issuer as unknown as { clearTokenCache: () => void }).clearTokenCache()
    b = await tokens.getToken({ forceRefresh: true })
    assert.notEqual(b, a)
    assert.equal(await tokenRequests(), 3, 'one request for the new token')
  })

  await t.test('an HTTP error the SDK swallows during its own refresh counts as a failed refresh; the token stays', async () => {
    hours(32) // past b's SDK refresh point (19 h + 12 h)
    const fault = await mock.admin!.inject({ method: 'POST', url: '/admin/faults', payload: { target: 'imds', mode: 'status', status: 500, count: 1 } })
    assert.equal(fault.statusCode, 201)
    // The SDK resolves with its cached token although its refresh got a 500: only the recorded
    // exchange shows the failure, and the provider retries.
    assert.equal(await tokens.getToken({ forceRefresh: true }), b)
    assert.equal(refreshFailures(), 1)
    assert.equal(await tokenRequests(), 5, 'the 500, then the retry')
  })

  let c = ''
  await t.test('the SDK renews in its last 5 minutes, while the token is still fresh for the caller', async () => {
    hours(42.95) // 3 minutes before b expires (at 43 h): outside the caller's 2-minute margin
    assert.equal(await tokens.getToken(), b, 'fresh: no request')
    assert.equal(tokens.readiness(), null)
    c = await tokens.getToken({ forceRefresh: true })
    assert.notEqual(c, b)
    assert.equal(await tokenRequests(), 6)
  })

  await t.test('inside the margin the token is no longer handed out: requests wait for a new one', async () => {
    hours(66.94) // 36 s before c expires (issued at 42.95 h)
    assert.match(tokens.readiness() ?? '', /expires in 3\d s/)
    const d = await tokens.getToken()
    assert.notEqual(d, c)
    assert.equal(await tokenRequests(), 7)
    assert.equal(refreshFailures(), 1)
  })
})
