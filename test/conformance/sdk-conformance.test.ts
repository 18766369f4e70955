/*
 * The real clients, unmodified, against mock-imds: @azure/identity's ManagedIdentityCredential and
 * DefaultAzureCredential over both protocols (IMDS through AZURE_POD_IDENTITY_AUTHORITY_HOST, the
 * identity endpoint through IDENTITY_ENDPOINT + IDENTITY_HEADER) and MSAL Node's
 * ManagedIdentityApplication. Each flavour runs in a process of its own (driver.ts). Every token
 * they get must pass the api's validation and jose's, configured from the mock's discovery.
 *
 * Fault scenarios check what the SDK does with each status against what it does with the real
 * service (see shared/research/imds-and-azure-identity.md §3.6): which statuses it retries, how
 * it reports the failure. The SDK's retry budgets are long (404: ~20 s, 410: ~70 s), so the
 * flavours run with retryOptions { maxRetries: 1 }: one retry proves a status is retried, none
 * proves it is not. One scenario measures the default budget for 500s.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test, type TestContext } from 'node:test'
import { decodeJwt } from 'jose'
import { startMockImds, type MockImds } from '../../scripts/lib/mock-imds.ts'
import { waitReady } from '../../bench/lib/processes.ts'
import { apiEnv, startService, type RunningService } from '../../scripts/lib/processes.ts'
import { loadTenantFile } from '../../packages/mock-imds/src/index.ts'
import { resultOf, runDriver as run, summary, type Outcome, type Plan, type Scenario, type ScenarioResult } from './plan.ts'
import { JoseValidator, apiVerdict } from './validators.ts'

const tenantFile = 'test/conformance/tenant.yaml'
const tenant = loadTenantFile(new URL('tenant.yaml', import.meta.url).pathname)
const [v2App, v1App] = tenant.applications as [typeof tenant.applications[0], typeof tenant.applications[0]]
const [system, assigned, unassigned] = tenant.managedIdentities as [typeof tenant.managedIdentities[0], typeof tenant.managedIdentities[0], typeof tenant.managedIdentities[0]]
const v2 = (suffix = '') => `api://conformance-v2${suffix}`
const v1Resource = 'api://conformance-v1'
const identityHeader = 'conformance-identity-header'
const quickRetries = { maxRetries: 1, retryDelayInMs: 50 }

/** A mock-imds answering as one platform, with the api and jose validating against its keys. */
interface Backend { mock: MockImds, api: RunningService, jose: JoseValidator }

async function startBackend (platform: 'vm' | 'app-service'): Promise<Backend> {
  const mock = await startMockImds({ env: { MOCK_IMDS_TENANT_FILE: tenantFile, MOCK_IMDS_IDENTITY_HEADER: identityHeader, MOCK_IMDS_PLATFORM: platform } })
  const api = await startService('api', {
    env: apiEnv(mock.url, tenant.tenantId, [v2App.appId, v1App.appId, v1Resource].join(','))
  }).catch(async (error: unknown) => { await mock.stop(); throw error })
  // Listening is not ready: the api answers 503 until it holds the mock's keys.
  await waitReady(api.url).catch(async (error: unknown) => { await api.stop(); await mock.stop(); throw error })
  return { mock, api, jose: new JoseValidator(mock.url, tenant.tenantId) }
}

// IMDS is a VM's (the platform's default); the identity endpoint is App Service's here, whose
// answers the scenarios below expect (Container Apps' differences: packages/mock-imds/test/platforms.test.ts).
let vm: Backend
let appService: Backend
let mock: MockImds
before(async () => {
  // One after the other: a backend that fails to start must not leave the other running.
  vm = await startBackend('vm')
  appService = await startBackend('app-service')
  mock = vm.mock
})
after(async () => {
  for (const backend of [vm, appService]) {
    if (!backend) continue
    await backend.api.stop()
    await backend.mock.stop()
  }
})

/** Runs a flavour and lists what it measured in the test's diagnostics (shown by the spec reporter). */
async function runDriver (t: TestContext, env: Record<string, string>, plan: Plan) {
  const results = await run(env, plan)
  for (const result of results.values()) t.diagnostic(summary(result))
  return results
}

const imdsEnv = () => ({ AZURE_POD_IDENTITY_AUTHORITY_HOST: mock.url })
const identityEnv = (header = identityHeader) => ({ IDENTITY_ENDPOINT: `${appService.mock.url}/msi/token`, IDENTITY_HEADER: header })

function tokenOf (outcome: Outcome | undefined): string {
  assert.ok(outcome?.ok, `expected a token, got ${outcome?.errorName}: ${outcome?.errorMessage}`)
  return outcome.token as string
}

function failureOf (result: ScenarioResult): Outcome {
  const outcome = result.outcomes[0]
  assert.ok(outcome && !outcome.ok, `${result.name}: expected a failure, got a token`)
  return outcome
}

interface Expected { identity: typeof system, version: '1.0' | '2.0', resource: string, roles?: string[] }

/** A token of the VM backend (IMDS, and HTTP_PROXY to 169.254.169.254). */
const assertValidToken = (token: string, expected: Expected) => assertValidTokenOf(token, expected, vm)

/** The token is shaped like Entra's and both validators accept it (the api: 403 without the role). */
async function assertValidTokenOf (token: string, expected: Expected, { api, jose }: Backend) {
  const audience = expected.version === '2.0' ? v2App.appId : expected.resource
  const claims = await jose.verify(token, audience)
  assert.equal(claims.ver, expected.version)
  assert.equal(claims.tid, tenant.tenantId)
  assert.equal(claims.oid, expected.identity.principalId)
  assert.equal(claims.sub, expected.identity.principalId)
  assert.equal(claims.idtyp, 'app')
  assert.equal(claims.xms_mirid, expected.identity.resourceId)
  assert.equal((claims.exp as number) - (claims.nbf as number), 86_700)
  if (expected.version === '2.0') {
    assert.equal(claims.azp, expected.identity.clientId)
    assert.equal(claims.azpacr, '2')
    assert.equal(claims.appid, undefined)
  } else {
    assert.equal(claims.appid, expected.identity.clientId)
    assert.equal(claims.appidacr, '2')
    assert.equal(claims.azp, undefined)
  }
  assert.deepEqual(claims.roles, expected.roles)

  const verdict = await apiVerdict(api.url, token)
  if (expected.roles?.includes('DoAll')) {
    assert.equal(verdict.status, 200, `api rejected the token: ${verdict.wwwAuthenticate}`)
    assert.equal(verdict.claims?.oid, expected.identity.principalId)
  } else {
    // Authenticated, but not authorized: the signature, issuer and audience all passed.
    assert.equal(verdict.status, 403)
    assert.match(verdict.wwwAuthenticate ?? '', /insufficient_scope/)
  }
}

/** The scenarios every @azure/identity flavour runs; the first credential freezes quickRetries for the process. */
function identityScenarios (kind: 'mi' | 'dac'): Scenario[] {
  const fault = (status: number, extra: object = {}) => [{ target: 'token' as const, mode: 'status' as const, status, ...extra }]
  return [
    { name: 'system', credential: { kind, retryOptions: quickRetries }, resource: v2(), calls: 2 },
    { name: 'v1 registration', credential: { kind }, resource: v1Resource },
    ...(kind === 'mi'
      ? [
        { name: 'by clientId', credential: { kind, clientId: assigned.clientId }, resource: v2('/a') },
        { name: 'by resourceId', credential: { kind, resourceId: assigned.resourceId }, resource: v2('/a') },
        { name: 'by objectId', credential: { kind, objectId: assigned.principalId }, resource: v2('/a') },
        { name: 'unassigned', credential: { kind, clientId: unassigned.clientId }, resource: v2('/a') }
      ] satisfies Scenario[]
      : [
        { name: 'by AZURE_CLIENT_ID', credential: { kind, envClientId: assigned.clientId }, resource: v2('/a') },
        { name: 'by resourceId', credential: { kind, resourceId: assigned.resourceId }, resource: v2('/b') },
        { name: 'unassigned', credential: { kind, clientId: unassigned.clientId }, resource: v2('/a') }
      ] satisfies Scenario[]),
    { name: 'unknown identity', credential: { kind, clientId: '00000000-0000-4000-8000-000000000000' }, resource: v2() },
    { name: 'unknown resource', credential: { kind }, resource: 'api://not-registered' },
    { name: 'role assignment required', credential: { kind, clientId: unassigned.clientId }, resource: v1Resource },
    { name: '500', faults: fault(500), credential: { kind }, resource: v2('/c') },
    { name: '503', faults: fault(503), credential: { kind }, resource: v2('/c') },
    { name: '429', faults: fault(429), credential: { kind }, resource: v2('/c') },
    { name: '429 Retry-After', faults: fault(429, { retryAfterSeconds: 1 }), credential: { kind }, resource: v2('/c') },
    { name: '404', faults: fault(404), credential: { kind }, resource: v2('/c') },
    { name: '410', faults: fault(410), credential: { kind }, resource: v2('/c') },
    { name: 'garbage', faults: [{ target: 'token', mode: 'garbage' }], credential: { kind }, resource: v2('/c') },
    { name: '500 once', faults: fault(500, { count: 1 }), credential: { kind }, resource: v2('/d') },
    { name: 'latency', faults: [{ target: 'token', mode: 'latency', latencyMs: 300 }], credential: { kind }, resource: v2('/e') },
    { name: 'hang', faults: [{ target: 'token', mode: 'hang' }], credential: { kind }, resource: v2('/f'), releaseAfterMs: 1500 },
    // The first credential's HTTP client is frozen for the process (MSAL's static identity source):
    // these options would survive two 500s, the frozen ones (one retry) do not.
    { name: 'later retryOptions ignored', faults: fault(500, { count: 2 }), credential: { kind, retryOptions: { maxRetries: 3, retryDelayInMs: 50 } }, resource: v2('/g') }
  ]
}

/** What the real service makes @azure/identity do, whichever credential and protocol. */
async function assertIdentityFlavour (results: Map<string, ScenarioResult>, kind: 'mi' | 'dac', protocol: 'imds' | 'identity') {
  const backend = protocol === 'imds' ? vm : appService
  const assertValidToken = (token: string, expected: Expected) => assertValidTokenOf(token, expected, backend)
  const errorName = kind === 'mi' ? 'CredentialUnavailableError' : 'AggregateAuthenticationError'

  const systemResult = resultOf(results, 'system')
  const [first, second] = systemResult.outcomes
  assert.equal(systemResult.requests, 1, 'the second getToken must come from the SDK cache')
  assert.equal(tokenOf(second), tokenOf(first))
  const claims = decodeJwt(tokenOf(first))
  // MSAL turns expires_on into a relative lifetime and back, so it can land a second off.
  assert.ok(Math.abs((first?.expiresOnTimestamp ?? 0) - (claims.exp as number) * 1000) <= 1000)
  // A 24 h token: the SDK plans its refresh at half of what is left (the mock may have served it
  // from its cache a little while after issuing it, as IMDS does).
  const beforeExpiry = (claims.exp as number) * 1000 - (first?.refreshAfterTimestamp ?? 0)
  assert.ok(beforeExpiry > 43_200_000 - 300_000 && beforeExpiry <= 43_350_000, `refresh ${beforeExpiry} ms before expiry`)
  await assertValidToken(tokenOf(first), { identity: system, version: '2.0', resource: v2(), roles: ['DoAll'] })
  await assertValidToken(tokenOf(resultOf(results, 'v1 registration').outcomes[0]), { identity: system, version: '1.0', resource: v1Resource, roles: ['DoAll'] })

  const selectors = kind === 'mi' ? ['by clientId', 'by resourceId', 'by objectId'] : ['by AZURE_CLIENT_ID', 'by resourceId']
  for (const name of selectors) {
    const result = resultOf(results, name)
    assert.equal(result.requests, 1, name)
    await assertValidToken(tokenOf(result.outcomes[0]), { identity: assigned, version: '2.0', resource: v2('/a'), roles: ['DoAll'] })
  }
  await assertValidToken(tokenOf(resultOf(results, 'unassigned').outcomes[0]), { identity: unassigned, version: '2.0', resource: v2('/a') })

  // 400s: reported at once, never retried.
  const described = (name: string, text: RegExp) => {
    const result = resultOf(results, name)
    const failure = failureOf(result)
    assert.equal(result.requests, 1, `${name}: a 400 is not retried`)
    assert.equal(failure.errorName, errorName, name)
    assert.match(failure.errorMessage ?? '', text, name)
    return failure
  }
  // IMDS's words, or App Service's for every identity it cannot load.
  const notFound = described('unknown identity', protocol === 'imds' ? /Identity not found/ : /Unable to load the proper Managed Identity\./)
  described('unknown resource', /AADSTS500011: The resource principal named api:\/\/not-registered was not found/)
  described('role assignment required', /AADSTS501051/)
  if (kind === 'mi') {
    // IMDS's {error, error_description} gives MSAL an error code; App Service's {message} does not.
    assert.equal(notFound.causeCode, protocol === 'imds' ? 'invalid_request' : '')
  }

  // Statuses: retried or not, as with the real service.
  const retried = { 500: 2, 503: 2, 429: 1, '429 Retry-After': 2, 404: 2, 410: 2 } as const
  for (const [name, requests] of Object.entries(retried)) {
    const result = resultOf(results, name)
    failureOf(result)
    assert.equal(result.requests, requests, `${name}: ${requests} request(s) with maxRetries 1`)
  }
  // The waits the SDK chose: exactly Retry-After for 429, at least 1.5 s for 410 (its 3 s base, jittered).
  assert.ok((resultOf(results, '429 Retry-After').outcomes[0]?.elapsedMs ?? 0) >= 950)
  assert.ok((resultOf(results, '410').outcomes[0]?.elapsedMs ?? 0) >= 1400)
  assert.match(failureOf(resultOf(results, '500')).errorMessage ?? '', /Failed to retrieve token/)

  // A 200 that is not JSON: the SDK blames the network.
  const garbage = resultOf(results, 'garbage')
  assert.equal(garbage.requests, 1)
  assert.match(failureOf(garbage).errorMessage ?? '', /Network unreachable/)

  const once = resultOf(results, '500 once')
  assert.equal(once.requests, 2)
  tokenOf(once.outcomes[0])

  const slow = resultOf(results, 'latency')
  assert.ok(tokenOf(slow.outcomes[0]) && (slow.outcomes[0]?.elapsedMs ?? 0) >= 300)

  // The SDK has no timeout of its own: a hung endpoint holds getToken until it answers.
  const hang = resultOf(results, 'hang')
  assert.equal(hang.pendingAtRelease, true)
  assert.equal(hang.requests, 1)
  tokenOf(hang.outcomes[0])

  const frozen = resultOf(results, 'later retryOptions ignored')
  assert.equal(frozen.requests, 2)
  failureOf(frozen)
}

describe('@azure/identity ManagedIdentityCredential', () => {
  test('over IMDS (AZURE_POD_IDENTITY_AUTHORITY_HOST)', async (t) => {
    const results = await runDriver(t, imdsEnv(), { adminUrl: mock.admin.url, scenarios: identityScenarios('mi') })
    await assertIdentityFlavour(results, 'mi', 'imds')
  })

  test('over the identity endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER)', async (t) => {
    const results = await runDriver(t, identityEnv(), { adminUrl: appService.mock.admin.url, scenarios: identityScenarios('mi') })
    await assertIdentityFlavour(results, 'mi', 'identity')
    // App Service's error shape carries a correlation id, which the SDK shows.
    assert.match(failureOf(resultOf(results, 'unknown identity')).errorMessage ?? '', /Correlation ID: [0-9a-f-]{36}/)
  })

  test('a wrong IDENTITY_HEADER: 401, not retried, reported', async (t) => {
    const results = await runDriver(t, identityEnv('not-the-secret'), {
      adminUrl: appService.mock.admin.url,
      scenarios: [{ name: 'wrong header', credential: { kind: 'mi' }, resource: v2() }]
    })
    const result = resultOf(results, 'wrong header')
    assert.equal(result.requests, 1)
    assert.match(failureOf(result).errorMessage ?? '', /X-IDENTITY-HEADER/)
  })

  test('Container Apps: a wrong IDENTITY_HEADER gets its empty 403, an unassigned client_id "Unable to load the proper Managed Identity."', async (t) => {
    const containerApps = await startMockImds({ env: { MOCK_IMDS_TENANT_FILE: tenantFile, MOCK_IMDS_IDENTITY_HEADER: identityHeader, MOCK_IMDS_PLATFORM: 'container-apps' } })
    t.after(() => containerApps.stop())
    const endpoint = (header: string) => ({ IDENTITY_ENDPOINT: `${containerApps.url}/msi/token`, IDENTITY_HEADER: header })
    // One after the other: each scenario's request count is the mock's counter before and after it.
    const wrong = await runDriver(t, endpoint('not-the-secret'), { adminUrl: containerApps.admin.url, scenarios: [{ name: 'wrong header', credential: { kind: 'mi' }, resource: v2() }] })
    const unknown = await runDriver(t, endpoint(identityHeader), {
      adminUrl: containerApps.admin.url,
      scenarios: [
        { name: 'unknown identity', credential: { kind: 'mi', clientId: '00000000-0000-4000-8000-000000000000' }, resource: v2() },
        { name: 'system', credential: { kind: 'mi' }, resource: v2() }
      ]
    })
    const forbidden = resultOf(wrong, 'wrong header')
    assert.equal(forbidden.requests, 1, 'a 403 is not retried')
    assert.equal(failureOf(forbidden).errorName, 'CredentialUnavailableError')
    // No body to quote: MSAL makes one up (msal-node's parseResponseBody path for an empty 4xx).
    assert.match(failureOf(forbidden).errorMessage ?? '', /client_error: .*A client error occured/)
    const unassigned = resultOf(unknown, 'unknown identity')
    assert.equal(unassigned.requests, 1)
    assert.match(failureOf(unassigned).errorMessage ?? '', /Unable to load the proper Managed Identity\./)
    tokenOf(resultOf(unknown, 'system').outcomes[0])
  })

  test('default retry budget: a lasting 500 is tried 4 times (3 retries), about 1 + 2 + 4 s apart, jittered', async (t) => {
    const results = await runDriver(t, imdsEnv(), {
      adminUrl: mock.admin.url,
      scenarios: [{ name: '500', faults: [{ target: 'token', mode: 'status', status: 500 }], credential: { kind: 'mi' }, resource: v2() }]
    })
    const result = resultOf(results, '500')
    assert.equal(result.requests, 4)
    // Jittered delays: at least half of 1 + 2 + 4 s.
    assert.ok((failureOf(result).elapsedMs) >= 3500)
  })
})

describe('@azure/identity with short-lived tokens (MOCK_IMDS_TOKEN_LIFETIME_SECONDS)', () => {
  test('a token with under 5 minutes left is expired to MSAL: every getToken asks, and gets the cached token', async (t) => {
    const short = await startMockImds({ env: { MOCK_IMDS_TENANT_FILE: tenantFile, MOCK_IMDS_TOKEN_LIFETIME_SECONDS: '240' } })
    t.after(() => short.stop())
    const results = await runDriver(t, { AZURE_POD_IDENTITY_AUTHORITY_HOST: short.url }, {
      adminUrl: short.admin.url,
      scenarios: [{ name: 'short', credential: { kind: 'mi' }, resource: v2(), calls: 3 }]
    })
    const result = resultOf(results, 'short')
    assert.equal(result.requests, 3)
    const [first, ...rest] = result.outcomes
    for (const outcome of rest) assert.equal(tokenOf(outcome), tokenOf(first))
    // Tokens of 2 h or less get no proactive refresh time.
    assert.equal(first?.refreshAfterTimestamp, undefined)
  })
})

describe('@azure/identity DefaultAzureCredential', () => {
  // prod: the chain stops after ManagedIdentityCredential, so no developer tool on this machine
  // (az, azd, pwsh) can answer in the mock's place when a scenario expects a failure.
  const chain = { AZURE_TOKEN_CREDENTIALS: 'prod' }

  test('over IMDS', async (t) => {
    const results = await runDriver(t, { ...imdsEnv(), ...chain }, { adminUrl: mock.admin.url, scenarios: identityScenarios('dac') })
    await assertIdentityFlavour(results, 'dac', 'imds')
  })

  test('over the identity endpoint', async (t) => {
    const results = await runDriver(t, { ...identityEnv(), ...chain }, { adminUrl: appService.mock.admin.url, scenarios: identityScenarios('dac') })
    await assertIdentityFlavour(results, 'dac', 'identity')
  })
})

describe('@azure/identity DefaultAzureCredential at IMDS\'s own address (169.254.169.254) through HTTP_PROXY', () => {
  // Nothing points the SDK at the mock but the proxy: the default endpoint, and with it the
  // probe DefaultAzureCredential sends first (no query, no Metadata header, 1 s timeout).
  test('probes before every getToken, takes the 400 as "available", and gives up on a probe that hangs', async (t) => {
    const results = await runDriver(t, { HTTP_PROXY: mock.url, AZURE_TOKEN_CREDENTIALS: 'prod' }, {
      adminUrl: mock.admin.url,
      scenarios: [
        { name: 'system', credential: { kind: 'dac', retryOptions: quickRetries }, resource: v2(), calls: 2 },
        { name: 'probe hangs', faults: [{ target: 'imds', mode: 'hang', count: 1 }], credential: { kind: 'dac' }, resource: v2('/a'), releaseAfterMs: 3500 },
        { name: 'by AZURE_CLIENT_ID', credential: { kind: 'dac', envClientId: assigned.clientId }, resource: v2('/b') }
      ]
    })
    const systemResult = resultOf(results, 'system')
    // probe + token, then a probe again although the token comes from the SDK cache.
    assert.equal(systemResult.requests, 3)
    assert.equal(tokenOf(systemResult.outcomes[1]), tokenOf(systemResult.outcomes[0]))
    await assertValidToken(tokenOf(systemResult.outcomes[0]), { identity: system, version: '2.0', resource: v2(), roles: ['DoAll'] })

    const hung = resultOf(results, 'probe hangs')
    assert.equal(hung.pendingAtRelease, false)
    assert.equal(hung.requests, 1)
    const failure = failureOf(hung)
    assert.match(failure.errorMessage ?? '', /Attempted to use the IMDS endpoint, but it is not available/)
    assert.ok(failure.elapsedMs >= 950 && failure.elapsedMs < 3500)

    const byEnv = resultOf(results, 'by AZURE_CLIENT_ID')
    assert.equal(byEnv.requests, 2)
    await assertValidToken(tokenOf(byEnv.outcomes[0]), { identity: assigned, version: '2.0', resource: v2('/b'), roles: ['DoAll'] })
  })
})

describe('MSAL Node ManagedIdentityApplication, directly', () => {
  const msalScenarios = (): Scenario[] => [
    { name: 'system', credential: { kind: 'msal' }, resource: v2(), calls: 2 },
    { name: 'by clientId', credential: { kind: 'msal', clientId: assigned.clientId }, resource: v2('/a') },
    { name: 'by resourceId', credential: { kind: 'msal', resourceId: assigned.resourceId }, resource: v2('/a') },
    { name: 'by objectId', credential: { kind: 'msal', objectId: assigned.principalId }, resource: v2('/a') },
    { name: 'unknown identity', credential: { kind: 'msal', clientId: '00000000-0000-4000-8000-000000000000' }, resource: v2() },
    { name: '500 once', faults: [{ target: 'token', mode: 'status', status: 500, count: 1 }], credential: { kind: 'msal' }, resource: v2('/b') },
    { name: '429 once', faults: [{ target: 'token', mode: 'status', status: 429, count: 1 }], credential: { kind: 'msal' }, resource: v2('/c') }
  ]

  async function assertMsal (results: Map<string, ScenarioResult>, protocol: 'imds' | 'identity' = 'imds') {
    const assertValidToken = (token: string, expected: Expected) => assertValidTokenOf(token, expected, protocol === 'imds' ? vm : appService)
    const systemResult = resultOf(results, 'system')
    assert.equal(systemResult.requests, 1)
    assert.equal(tokenOf(systemResult.outcomes[1]), tokenOf(systemResult.outcomes[0]))
    await assertValidToken(tokenOf(systemResult.outcomes[0]), { identity: system, version: '2.0', resource: v2(), roles: ['DoAll'] })
    for (const name of ['by clientId', 'by resourceId', 'by objectId']) {
      await assertValidToken(tokenOf(resultOf(results, name).outcomes[0]), { identity: assigned, version: '2.0', resource: v2('/a'), roles: ['DoAll'] })
    }
    const notFound = resultOf(results, 'unknown identity')
    assert.equal(notFound.requests, 1)
    assert.equal(failureOf(notFound).errorName, 'ServerError')
    assert.match(failureOf(notFound).errorMessage ?? '', protocol === 'imds' ? /Identity not found/ : /Unable to load the proper Managed Identity\./)
    // MSAL's own retry policies (which @azure/identity switches off) retry 5xx and, unlike the
    // Azure pipeline, a 429 without Retry-After too: one retry after about 1 s.
    for (const name of ['500 once', '429 once']) {
      const result = resultOf(results, name)
      assert.equal(result.requests, 2, name)
      tokenOf(result.outcomes[0])
      assert.ok((result.outcomes[0]?.elapsedMs ?? 0) >= 900, name)
    }
  }

  test('over IMDS, with its own retry policy (a lasting 500: 4 requests over about 7 s)', async (t) => {
    const results = await runDriver(t, imdsEnv(), {
      adminUrl: mock.admin.url,
      scenarios: [
        ...msalScenarios(),
        { name: '500', faults: [{ target: 'token', mode: 'status', status: 500 }], credential: { kind: 'msal' }, resource: v2('/d') },
        { name: 'garbage', faults: [{ target: 'token', mode: 'garbage' }], credential: { kind: 'msal' }, resource: v2('/d') }
      ]
    })
    await assertMsal(results)
    const lasting = resultOf(results, '500')
    assert.equal(lasting.requests, 4)
    assert.ok(failureOf(lasting).elapsedMs >= 6000)
    const garbage = resultOf(results, 'garbage')
    assert.equal(garbage.requests, 1)
    assert.match(failureOf(garbage).errorMessage ?? '', /token_parsing_error/)
  })

  test('over the identity endpoint', async (t) => {
    const results = await runDriver(t, identityEnv(), { adminUrl: appService.mock.admin.url, scenarios: msalScenarios() })
    await assertMsal(results, 'identity')
  })
})

describe('validators against the Entra documents faults', () => {
  test('jose fails on a garbage or failing JWKS and recovers once it is back', async (t) => {
    const token = tokenOf((await runDriver(t, imdsEnv(), {
      adminUrl: mock.admin.url,
      scenarios: [{ name: 'token', credential: { kind: 'mi' }, resource: v2('/h') }]
    })).get('token')?.outcomes[0])
    // A fresh jose per attempt: createRemoteJWKSet caches what it fetched.
    await mock.admin.addFault({ target: 'jwks', mode: 'garbage', count: 1 })
    await assert.rejects(new JoseValidator(mock.url, tenant.tenantId).verify(token, v2App.appId), { message: /Failed to parse the JSON Web Key Set HTTP response as JSON/ })
    await mock.admin.addFault({ target: 'jwks', mode: 'status', status: 503, count: 1 })
    await assert.rejects(new JoseValidator(mock.url, tenant.tenantId).verify(token, v2App.appId), { message: /Expected 200 OK from the JSON Web Key Set HTTP response/ })
    const claims = await new JoseValidator(mock.url, tenant.tenantId).verify(token, v2App.appId)
    assert.equal(claims.oid, system.principalId)
    await mock.admin.clearFaults()
  })
})
