/*
 * MSAL Node's ManagedIdentityApplication: what test/conformance/sdk-conformance.test.ts does not
 * already cover for the per-client table (tokens, claims, cache hit, a 500 or 429 once, a lasting
 * 500 at IMDS are there): a lasting 429 and 404 at IMDS, and lasting 429, 500 and 404 at the
 * identity endpoint. Same driver (test/conformance/driver.ts), one process per protocol.
 *
 * MSAL Node's managed identity retry policies take no options, so these run at their real pace:
 * IMDS 3 retries at about 1, 2, 4 s; the identity endpoint 3 retries 1 s apart.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { resultOf, runDriver, summary, type Scenario } from '../conformance/plan.ts'
import { pointers, resource, startClientsMocks, type ClientsMocks, type Diagnostics, type Target } from './harness.ts'

let mocks: ClientsMocks

before(async () => { mocks = await startClientsMocks() })
after(async () => { await mocks?.stop() })

/** The driver's faults go to the admin API of the mock the target names. */
const drive = ({ mock, env }: Target, scenarios: Scenario[]) => runDriver(env, { adminUrl: mock.admin.url, scenarios })

const lasting = (status: number): Scenario => ({
  name: String(status),
  faults: [{ target: 'token', mode: 'status', status }],
  credential: { kind: 'msal' },
  // One resource for all: a failed call caches nothing.
  resource
})

/**
 * Each lasting status at the target: 4 requests (MSAL Node's 3 retries), then a ServerError after
 * `elapsedMs` (at least the first, less than the second).
 */
async function assertTriedFourTimes (t: Diagnostics, target: Target, statuses: number[], [minMs, maxMs]: [number, number]) {
  const results = await drive(target, statuses.map(lasting))
  for (const name of statuses.map(String)) {
    const result = resultOf(results, name)
    t.diagnostic(summary(result))
    assert.equal(result.requests, 4, name)
    const failure = result.outcomes[0]
    assert.ok(failure && !failure.ok, `${name}: expected a failure`)
    assert.equal(failure.errorName, 'ServerError')
    assert.ok(failure.elapsedMs >= minMs && failure.elapsedMs < maxMs, `${name}: ${failure.elapsedMs} ms`)
  }
}

describe('MSAL Node ManagedIdentityApplication: lasting faults', () => {
  test('IMDS: a lasting 429 or 404 is tried 4 times, about 1 + 2 + 4 s apart (ImdsRetryPolicy)', async (t) => {
    // Exponential 1, 2, 4 s (no jitter in MSAL's policy).
    await assertTriedFourTimes(t, pointers.podIdentityHost(mocks), [429, 404], [6_500, 12_000])
  })

  test('App Service identity endpoint: a lasting 429 or 500 is tried 4 times 1 s apart; a 404 too (DefaultManagedIdentityRetryPolicy)', async (t) => {
    await assertTriedFourTimes(t, pointers.appService(mocks), [429, 500, 404], [2_900, 8_000])
  })
})
