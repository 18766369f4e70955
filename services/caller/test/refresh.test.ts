import assert from 'node:assert/strict'
import { test } from 'node:test'
import { getJson, flavours, metric, startBackend, startCaller, waitFor } from './helpers.ts'

// mock-imds's shortest tokens live 60 s, and like IMDS it hands out its cached token until the
// last quarter of the lifetime (15 s here). The caller's margin for a 60 s token is 6 s.

// Both scenarios for both flavours run at once: the renewal takes most of a token's 60 s life.
test('refresh', { concurrency: true }, async (t) => {
  await Promise.all(flavours.flatMap((flavour) => [
    t.test(`${flavour.name}: with short-lived tokens the caller renews in the background before expiry, without a failed call`, async (t) => {
      const backend = await startBackend(t, { MOCK_IMDS_TOKEN_LIFETIME_SECONDS: '60' }, flavour)
      // Production refresh settings: the first refresh comes 30-45 s in.
      const caller = await startCaller(t, flavour, backend, { TOKEN_REFRESH_FRACTION: '0.5', TOKEN_REFRESH_JITTER: '0.25' })
      const first = await getJson(`${caller.url}/call`)
      assert.equal(first.status, 200)
      const firstExp = Number(first.body.exp)

      const failures: string[] = []
      let renewedAtMs: number | undefined
      let calls = 0
      const servedFromCacheBefore = await metric(caller.url, 'token_requests_total', { source: 'cache' })
      const deadline = Date.now() + 65_000
      while (Date.now() < deadline && renewedAtMs === undefined) {
        const call = await getJson(`${caller.url}/call`)
        calls++
        if (call.status !== 200) failures.push(JSON.stringify(call))
        else if (Number(call.body.exp) > firstExp) renewedAtMs = Date.now()
        await new Promise((resolve) => setTimeout(resolve, 250))
      }
      assert.deepEqual(failures, [])
      // No request waited for a token: every one was served from the held token, old or renewed.
      assert.equal(await metric(caller.url, 'token_requests_total', { source: 'cache' }) - servedFromCacheBefore, calls)
      assert.ok(renewedAtMs !== undefined, 'the token was renewed')
      assert.ok(renewedAtMs < firstExp * 1000 - 6000 + 1000, `renewed ${Math.round((firstExp * 1000 - renewedAtMs) / 1000)} s before expiry`)
      t.diagnostic(`renewed ${Math.round((firstExp * 1000 - renewedAtMs) / 1000)} s before expiry`)
      const tokenRequests = (await backend.mock.admin.state()).tokenRequests
      assert.ok(tokenRequests >= 2 && tokenRequests <= 8, `${tokenRequests} token requests: renewal without a storm`)
      assert.equal(await metric(caller.url, 'token_refresh_failures_total'), 0)
      assert.ok(await metric(caller.url, 'token_expires_in_seconds') > 40)
    }),
    t.test(`${flavour.name}: with the identity endpoint down during renewal the caller keeps serving on the old token`, async (t) => {
      const backend = await startBackend(t, { MOCK_IMDS_TOKEN_LIFETIME_SECONDS: '60' }, flavour)
      // The refresh comes 6-9 s in; by then mock-imds is gone (connection refused).
      const caller = await startCaller(t, flavour, backend, { TOKEN_REFRESH_FRACTION: '0.1', TOKEN_REFRESH_JITTER: '0.05' })
      const first = await getJson(`${caller.url}/call`)
      assert.equal(first.status, 200)
      await backend.mock.stop()

      await waitFor(async () => await metric(caller.url, 'token_refresh_failures_total') >= 1, 15_000, 'a refresh failed')
      for (let i = 0; i < 5; i++) {
        const call = await getJson(`${caller.url}/call`)
        assert.equal(call.status, 200, JSON.stringify(call.body))
        assert.equal(call.body.exp, first.body.exp, 'the last good token')
      }
      assert.equal((await getJson(`${caller.url}/readyz`)).status, 200)
      assert.ok(await metric(caller.url, 'token_requests_total', { source: 'endpoint', result: 'failure' }) >= 1)
    })
  ]))
})
