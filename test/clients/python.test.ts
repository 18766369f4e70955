/*
 * Python's azure-identity as Debian ships it (python3-azure, run by /usr/bin/python3: the only
 * interpreter that sees Debian's Python packages) against mock-imds, one process per scenario
 * (test/clients/python/driver.py).
 *
 * Retries: the SDK's own counts are kept (IMDS: retry_total 5 on 404, 429 and 5xx; identity
 * endpoint: azure-core's default 3 on 408, 429, 500, 502, 503, 504); only the backoff factor is cut
 * to 50 ms so a fault scenario takes about 1.5 s instead of 60 s (IMDS, factor 2 s) or 5 s.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { after, before, describe, test } from 'node:test'
import {
  assertOne500ThenToken, assertRetryAfterHonoured, assertSystemTokenThenCacheHit, assertUserAssignedByClientId,
  assertLastingStatusFails, assertWrongHeaderNotRetried, clientRunner, pointers, skipUnless, startClientsMocks, type ClientsMocks
} from './harness.ts'

const python = '/usr/bin/python3'
const version = spawnSync(python, ['test/clients/python/driver.py', '--version'], { encoding: 'utf8' })
const pythonAvailable = version.status === 0
const driver = [python, 'test/clients/python/driver.py'] as const
const quickDelay = { retryDelayMs: 50 }

let mocks: ClientsMocks

describe(`Python azure-identity ${version.stdout.trim() || '(missing)'} (Debian python3-azure) against mock-imds`, {
  skip: skipUnless(pythonAvailable, '/usr/bin/python3 cannot import azure.identity (apt-get install python3-azure)')
}, () => {
  before(async () => {
    assert.ok(pythonAvailable, `/usr/bin/python3 cannot import azure.identity:\n${version.stderr}`)
    mocks = await startClientsMocks()
  })
  after(async () => { await mocks?.stop() })

  const client = clientRunner(driver)

  for (const credential of ['mi', 'dac'] as const) {
    const name = credential === 'mi' ? 'ManagedIdentityCredential' : 'DefaultAzureCredential'
    describe(name, () => {
      for (const [flavour, pointer, requests] of [
        ['IMDS (AZURE_POD_IDENTITY_AUTHORITY_HOST): no probe', pointers.podIdentityHost, 1],
        // Without AZURE_POD_IDENTITY_AUTHORITY_HOST the IMDS credential first sends the token request
        // without its Metadata header (0.3 s timeout, no retry); any HTTP answer means "available".
        ['IMDS at 169.254.169.254 (HTTP_PROXY): probe, then the token', pointers.httpProxy, 2],
        ['App Service identity endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER)', pointers.appService, 1],
        ['Container Apps identity endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER)', pointers.containerApps, 1]
      ] as const) {
        test(`${flavour}: system-assigned token with Entra's claims, then its cache hit (two calls, ${requests} request(s))`, (t) =>
          assertSystemTokenThenCacheHit(client, t, pointer(mocks), { credential }, requests))

        test(`${flavour}: a user-assigned identity by client id`, (t) =>
          assertUserAssignedByClientId(client, t, pointer(mocks), { credential }, requests))
      }

      // Both credentials surface the pipeline's error as ClientAuthenticationError (DefaultAzureCredential's lists each credential's).
      const errorName = 'ClientAuthenticationError'
      for (const [flavour, pointer, expected] of [
        ['IMDS', pointers.podIdentityHost, { 429: 6, 500: 6, 404: 6 }],
        ['App Service identity endpoint', pointers.appService, { 429: 4, 500: 4, 404: 1 }]
      ] as const) {
        for (const status of [429, 500, 404] as const) {
          const requests = expected[status]
          test(`${flavour}: a lasting ${status}: ${requests} request(s), then ${errorName}`, async (t) => {
            await assertLastingStatusFails(client, t, pointer(mocks), { credential, ...quickDelay }, status, requests, errorName)
          })
        }

        test(`${flavour}: one 500, then a token after one retry`, (t) =>
          assertOne500ThenToken(client, t, pointer(mocks), { credential, ...quickDelay }))
      }
    })
  }

  test('App Service identity endpoint: a 429 with Retry-After: 1 waits the header\'s second between attempts', (t) =>
    assertRetryAfterHonoured(client, t, pointers.appService(mocks), { credential: 'mi', ...quickDelay }))

  // The platforms answer a wrong header differently (App Service: the mock's 401 JSON, an unknown
  // on Azure; Container Apps: 403 with an empty body, microsoft-authentication-library-for-dotnet#5077).
  for (const [flavour, pointer, message] of [
    ['App Service identity endpoint (401 JSON)', pointers.appService, /invalid_request: The X-IDENTITY-HEADER header is missing or does not match/],
    // The SDK reads the empty body as no token, without the status.
    ['Container Apps identity endpoint (403, empty body)', pointers.containerApps, /^No token received\.$/]
  ] as const) {
    test(`${flavour} with a wrong IDENTITY_HEADER: one request, not retried, ClientAuthenticationError`, (t) =>
      assertWrongHeaderNotRetried(client, t, pointer(mocks, 'not-the-secret'), { credential: 'mi', ...quickDelay }, 'ClientAuthenticationError', message))
  }
})
