/*
 * Microsoft's .NET Azure.Identity 1.21.0 (ManagedIdentityCredential and DefaultAzureCredential,
 * over MSAL.NET) against mock-imds: a console program (test/clients/dotnet), built once per run,
 * one process per scenario because MSAL.NET keeps the managed identity source and its token cache
 * in statics.
 *
 * Retries: Azure.Identity's managed identity retry ignores RetryOptions.MaxRetries (measured:
 * 6 requests whatever it is) but honours RetryOptions.Delay, so fault scenarios run with a 50 ms
 * base delay and take about 2 s each instead of about 27 s with the default 0.8 s.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { after, before, describe, test } from 'node:test'
import { run } from '../helpers/run.ts'
import {
  assertLastingStatusFails, assertOne500ThenToken, assertRetryAfterHonoured, assertSystemTokenThenCacheHit, assertTokenFor,
  assertUserAssignedByClientId, assertWrongHeaderNotRetried, assigned, clientRunner, failureOf, pointers, skipUnless,
  startClientsMocks, system, tokenOf, withEnv, type ClientsMocks
} from './harness.ts'

const dotnetAvailable = spawnSync('dotnet', ['--version'], { encoding: 'utf8' }).status === 0
const project = 'test/clients/dotnet/ClientDriver.csproj'
const driver = ['dotnet', 'test/clients/dotnet/bin/Release/net10.0/ClientDriver.dll'] as const
/** Base delay for the SDK's exponential retry: keeps a 6-request fault scenario near 2 s. */
const quickDelay = { retryDelayMs: 50 }
/** DefaultAzureCredential limited to what a deployed service has (no developer tool may answer). */
const prodChain = { AZURE_TOKEN_CREDENTIALS: 'prod' }

let mocks: ClientsMocks

describe('.NET Azure.Identity 1.21.0 against mock-imds', { skip: skipUnless(dotnetAvailable, 'dotnet (the .NET SDK) is not on PATH') }, () => {
  before(async () => {
    assert.ok(dotnetAvailable, 'dotnet is required under CI=true')
    const build = await run('dotnet', ['build', project, '-c', 'Release', '--nologo', '-v', 'q'], {
      env: { DOTNET_CLI_TELEMETRY_OPTOUT: '1', DOTNET_NOLOGO: '1' },
      timeoutMs: 300_000
    })
    assert.equal(build.code, 0, `dotnet build failed:\n${build.stdout}\n${build.stderr}`)
    mocks = await startClientsMocks()
  })
  after(async () => { await mocks?.stop() })

  const client = clientRunner(driver)

  describe('ManagedIdentityCredential', () => {
    for (const [flavour, pointer] of [
      ['IMDS (AZURE_POD_IDENTITY_AUTHORITY_HOST)', pointers.podIdentityHost],
      ['IMDS at 169.254.169.254 (HTTP_PROXY)', pointers.httpProxy],
      ['App Service identity endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER)', pointers.appService],
      ['Container Apps identity endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER)', pointers.containerApps]
    ] as const) {
      test(`${flavour}: system-assigned token with Entra's claims, then its cache hit (two calls, one request)`, (t) =>
        assertSystemTokenThenCacheHit(client, t, pointer(mocks), { credential: 'mi' }, 1))

      test(`${flavour}: a user-assigned identity by client id`, (t) =>
        assertUserAssignedByClientId(client, t, pointer(mocks), { credential: 'mi' }, 1))
    }

    for (const [flavour, pointer] of [
      ['IMDS', pointers.podIdentityHost],
      ['App Service identity endpoint', pointers.appService]
    ] as const) {
      // MSAL.NET's managed identity retry: 429, 500 and 404 alike, 5 retries, exponential from
      // RetryOptions.Delay; MaxRetries (1 here) is not applied.
      for (const status of [429, 500, 404] as const) {
        test(`${flavour}: a lasting ${status} is retried 5 times (MaxRetries ignored), then AuthenticationFailedException`, async (t) => {
          const { result, failure } = await assertLastingStatusFails(client, t, pointer(mocks), { credential: 'mi', maxRetries: 1, ...quickDelay },
            status, 6, 'AuthenticationFailedException')
          assert.equal(failure.causeName, 'MsalServiceException')
          // Exponential: each wait at least as long as the first (jitter aside), the last well above it.
          assert.ok((result.gapsMs.at(-1) ?? 0) > (result.gapsMs[0] ?? 0), `gaps ${result.gapsMs.join(', ')}`)
        })
      }

      test(`${flavour}: one 500, then a token after one retry`, (t) =>
        assertOne500ThenToken(client, t, pointer(mocks), { credential: 'mi', ...quickDelay }))
    }

    test('IMDS: a 429 with Retry-After: 1 waits the header\'s second between attempts', (t) =>
      assertRetryAfterHonoured(client, t, pointers.podIdentityHost(mocks), { credential: 'mi', ...quickDelay }))

    // The platforms answer a wrong header differently (App Service: the mock's 401 JSON, an unknown
    // on Azure; Container Apps: 403 with an empty body, microsoft-authentication-library-for-dotnet#5077).
    for (const [flavour, pointer, message] of [
      ['App Service identity endpoint (401 JSON)', pointers.appService, /invalid_request: The X-IDENTITY-HEADER header is missing or does not match/],
      // MSAL.NET reads the empty body as no answer at all.
      ['Container Apps identity endpoint (403, empty body)', pointers.containerApps, /Authentication unavailable\. No response received from the managed identity endpoint/]
    ] as const) {
      test(`${flavour} with a wrong IDENTITY_HEADER: one request, not retried`, (t) =>
        assertWrongHeaderNotRetried(client, t, pointer(mocks, 'not-the-secret'), { credential: 'mi', ...quickDelay }, 'AuthenticationFailedException', message))
    }
  })

  describe('DefaultAzureCredential (AZURE_TOKEN_CREDENTIALS=prod)', () => {
    test('AZURE_POD_IDENTITY_AUTHORITY_HOST: no token, because the probe\'s 400 counts as "IMDS present" only at 169.254.169.254', async (t) => {
      const result = await client(t, 'pod identity host', withEnv(pointers.podIdentityHost(mocks), prodChain), { credential: 'dac' })
      // The probe is the token request without the Metadata header; the mock's 400 for it ends the chain.
      assert.equal(result.requests, 1)
      const failure = failureOf(result.outcomes[0])
      assert.equal(failure.errorName, 'CredentialUnavailableException')
      assert.match(failure.errorMessage ?? '', /ManagedIdentityCredential authentication unavailable/)
      assert.match(failure.errorMessage ?? '', /Required metadata header not specified/)
    })

    test('AZURE_POD_IDENTITY_AUTHORITY_HOST with AZURE_TOKEN_CREDENTIALS=ManagedIdentityCredential: no probe, a token, then its cache hit', async (t) => {
      const result = await client(t, 'managed identity only', withEnv(pointers.podIdentityHost(mocks), { AZURE_TOKEN_CREDENTIALS: 'ManagedIdentityCredential' }), { credential: 'dac', calls: 2 })
      assert.equal(result.requests, 1)
      assert.equal(tokenOf(result.outcomes[1]), tokenOf(result.outcomes[0]))
      await assertTokenFor(result.mock, tokenOf(result.outcomes[0]), system, result.outcomes[0])
    })

    test('HTTP_PROXY to 169.254.169.254: probe, token, then its cache hit (two calls, two requests)', async (t) => {
      const result = await client(t, 'http proxy', withEnv(pointers.httpProxy(mocks), prodChain), { credential: 'dac', calls: 2 })
      assert.equal(result.requests, 2)
      assert.match(result.urls[0] ?? '', /^http:\/\/169\.254\.169\.254\/metadata\/identity\/oauth2\/token\?/)
      assert.equal(tokenOf(result.outcomes[1]), tokenOf(result.outcomes[0]))
      await assertTokenFor(result.mock, tokenOf(result.outcomes[0]), system, result.outcomes[0])
    })

    test('App Service identity endpoint: a token, then its cache hit (no probe)', async (t) => {
      const result = await client(t, 'identity endpoint', withEnv(pointers.appService(mocks), prodChain), { credential: 'dac', calls: 2 })
      assert.equal(result.requests, 1)
      await assertTokenFor(result.mock, tokenOf(result.outcomes[0]), system, result.outcomes[0])
    })

    test('App Service identity endpoint: ManagedIdentityClientId selects the user-assigned identity', async (t) => {
      const result = await client(t, 'by client id', withEnv(pointers.appService(mocks), prodChain), { credential: 'dac', clientId: assigned.clientId })
      assert.equal(result.requests, 1)
      await assertTokenFor(result.mock, tokenOf(result.outcomes[0]), assigned)
    })

    for (const status of [429, 500, 404]) {
      test(`App Service identity endpoint: a lasting ${status}: the same 6 requests as ManagedIdentityCredential, then the chain fails`, async (t) => {
        const result = await client(t, String(status), withEnv(pointers.appService(mocks), prodChain), {
          credential: 'dac',
          ...quickDelay,
          faults: [{ target: 'token', mode: 'status', status }]
        })
        assert.equal(result.requests, 6)
        assert.equal(failureOf(result.outcomes[0]).errorName, 'AuthenticationFailedException')
      })
    }
  })
})
