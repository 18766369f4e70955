import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { FaultSpec } from '../../../scripts/lib/mock-imds.ts'
import { fastTokenSettings, flavours, getJson, metric, startBackend, startCaller, timed, waitFor } from './helpers.ts'

interface FaultCase {
  name: string
  fault: Omit<FaultSpec, 'target'>
  reason: string
  /** Token requests mock-imds sees in the 3 s (TOKEN_WAIT_TIMEOUT_MS) after the first /call. */
  requests: [min: number, max: number]
  /** Failed exchanges the caller has counted by then (default: requests[0]). */
  failures?: number
  /** How soon a refresh fails once the fault is back (default 8 s). */
  refreshFailureWithinMs?: number
  /** The cold /call waits out TOKEN_WAIT_TIMEOUT_MS: a slow endpoint is not a failing one. */
  coldWaits?: boolean
  /** Otherwise the cold /call is answered at the second failure, within this (default 2 s: two exchanges and a backoff of at most 100 ms, with room for a busy machine). */
  coldWithinMs?: number
}

// With the fast settings (attempt timeout 1 s, backoff 100 ms doubling to 1 s, full jitter), the
// window is 3 s. Retry-After: 2 s leaves room for 2 requests in that time; backoff alone
// makes many more, which is how the test sees that Retry-After is honoured.
const cases: FaultCase[] = [
  { name: '404 (IMDS updating)', fault: { mode: 'status', status: 404 }, reason: 'not_found', requests: [4, 40] },
  { name: '410 (IMDS restarting)', fault: { mode: 'status', status: 410 }, reason: 'gone', requests: [4, 40] },
  { name: '429 without Retry-After', fault: { mode: 'status', status: 429 }, reason: 'throttled', requests: [4, 40] },
  { name: '429 with Retry-After: 2', fault: { mode: 'status', status: 429, retryAfterSeconds: 2 }, reason: 'throttled', requests: [2, 3], coldWithinMs: 2600 },
  { name: '500', fault: { mode: 'status', status: 500 }, reason: 'server_error', requests: [4, 40] },
  // A hang: the first attempt is cut at 1 s; the next may wait for the rest of the acquisition
  // deadline (a slow endpoint must not be cut for ever), so it is still pending when the request
  // gives up. Once released, that attempt's 2-3 s teach the provider to give a first attempt twice
  // as long, so the warm refresh fails later.
  { name: 'hang', fault: { mode: 'hang' }, reason: 'timeout', requests: [2, 4], failures: 1, refreshFailureWithinMs: 20_000, coldWaits: true },
  { name: 'garbage 200', fault: { mode: 'garbage' }, reason: 'invalid_response', requests: [4, 40] }
]

const waitMs = Number(fastTokenSettings.TOKEN_WAIT_TIMEOUT_MS)

// Each fault, for each flavour, on one timeline with a fresh caller: cold (the fault answers every
// token request) -> recovery -> warm (the fault comes back while a good token is held).
test('each fault of the identity endpoint: 503 at once when cold, no failed call when warm', { concurrency: true }, async (t) => {
  await Promise.all(flavours.map((flavour) => t.test(flavour.name, async (t) => {
    const backend = await startBackend(t, { MOCK_IMDS_TOKEN_LIFETIME_SECONDS: '60' }, flavour)
    const { admin } = backend.mock
    for (const { name, fault, reason, requests, failures = requests[0], refreshFailureWithinMs = 8000, coldWaits = false, coldWithinMs = 2000 } of cases) {
      await t.test(name, async (t) => {
        await admin.clearFaults()
        await admin.clearTokenCache()
        await admin.addFault({ target: flavour.name, ...fault })
        const before = (await admin.state()).tokenRequests
        // A 60 s token is refreshed 1.8 to 3 s after it arrives (after the test has put the fault back).
        const caller = await startCaller(t, flavour, backend, { TOKEN_REFRESH_FRACTION: '0.03', TOKEN_REFRESH_JITTER: '0.02' })

        // Cold: once the endpoint has failed twice in a row, /call does not wait out its deadline
        // (TOKEN_WAIT_TIMEOUT_MS) through the retries: a 503 that says why, with Retry-After, at the second
        // failure. A hang is a slow endpoint, not a failing one: that request waits its deadline.
        const cold = await timed(() => fetch(`${caller.url}/call`).then(async (response) => ({ response, body: await response.json() as Record<string, unknown> })))
        assert.equal(cold.value.response.status, 503)
        assert.equal(cold.value.body.error, 'token_unavailable')
        assert.equal(cold.value.body.reason, reason)
        assert.equal(cold.value.body.fetching, true)
        assert.ok(Number(cold.value.response.headers.get('retry-after')) >= 1, `Retry-After: ${cold.value.response.headers.get('retry-after')}`)
        if (coldWaits) assert.ok(cold.ms > waitMs - 500 && cold.ms < waitMs + 2000, `503 after ${Math.round(cold.ms)} ms`)
        else assert.ok(cold.ms < coldWithinMs, `503 after ${Math.round(cold.ms)} ms`)
        // The acquisition goes on in the background, at its own pace: counted over what was the request's wait.
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, waitMs - cold.ms)))
        const seen = (await admin.state()).tokenRequests - before
        assert.ok(seen >= requests[0] && seen <= requests[1], `${seen} token requests, expected ${requests[0]}..${requests[1]}`)
        const failed = await metric(caller.url, 'token_requests_total', { source: 'endpoint', result: 'failure' })
        assert.ok(failed >= failures, `${failed} failed exchanges counted, expected at least ${failures}`)
        assert.equal((await getJson(`${caller.url}/readyz`)).status, 503)
        assert.equal((await getJson(`${caller.url}/healthz`)).status, 200)

        // Recovery: the acquisition still running (or the next one) gets the token at its next attempt,
        // within the backoff's 1 s cap (or the 2 s Retry-After); meanwhile /call keeps answering 503 at once.
        await admin.clearFaults()
        const cleared = performance.now()
        let recovered = await getJson(`${caller.url}/call`)
        while (recovered.status === 503 && performance.now() - cleared < 5000) {
          await new Promise((resolve) => setTimeout(resolve, 100))
          recovered = await getJson(`${caller.url}/call`)
        }
        assert.equal(recovered.status, 200, JSON.stringify(recovered.body))
        const exp = recovered.body.exp

        // Warm: the fault is back when the refresh comes; calls go on with the token in hand.
        await admin.addFault({ target: flavour.name, ...fault })
        await waitFor(async () => await metric(caller.url, 'token_refresh_failures_total') >= 1, refreshFailureWithinMs, 'a refresh failed')
        for (let i = 0; i < 5; i++) {
          const warm = await getJson(`${caller.url}/call`)
          assert.equal(warm.status, 200, JSON.stringify(warm.body))
          assert.equal(warm.body.exp, exp, 'still the last good token')
        }
        assert.equal((await getJson(`${caller.url}/readyz`)).status, 200, 'ready on the last good token')
        await admin.clearFaults()
        await caller.stop()
      })
    }
  })))
})
