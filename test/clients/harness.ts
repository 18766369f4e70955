/*
 * What every non-JavaScript client test shares: the one place mock-imds is started, a runner for a
 * client process with an exact environment, the request log the mock keeps, and the token checks.
 *
 * A client process (test/clients/dotnet/Program.cs, test/clients/python/driver.py) takes its
 * endpoint from the SDK's own environment variables and its scenario from CLIENT_* variables, and
 * prints one JSON line per getToken call. It asserts nothing: the tests judge, from the outcomes
 * and from what the mock saw.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { decodeJwt } from 'jose'
import { startMockImds, type FaultSpec, type MockImds } from '../../scripts/lib/mock-imds.ts'
import { loadTenantFile } from 'mock-imds'
import { repoRoot } from '../helpers/run.ts'
import { JoseValidator } from '../conformance/validators.ts'

/** The conformance tenant: a v2 registration with DoAll assigned to the system-assigned identity and to `assigned`. */
export const tenantFile = 'test/conformance/tenant.yaml'
export const tenant = loadTenantFile(new URL('../conformance/tenant.yaml', import.meta.url).pathname)
const [v2App] = tenant.applications as [typeof tenant.applications[0]]
export const [system, assigned] = tenant.managedIdentities as [typeof tenant.managedIdentities[0], typeof tenant.managedIdentities[0]]
export type Identity = typeof system
/** A resource of the v2 registration (aud = its appId). */
export const resource = 'api://conformance-v2'
export const identityHeader = 'clients-identity-header'
export const inCI = process.env.CI === 'true'

/** The Azure platforms a clients' mock answers as (packages/mock-imds, `MOCK_IMDS_PLATFORM`). */
export type Platform = 'vm' | 'app-service' | 'container-apps'

/**
 * Starts mock-imds as a real process on loopback with its admin API, serving the conformance tenant
 * as one platform. The one place the clients' mocks are spawned.
 */
export function startClientsMock (platform: Platform = 'vm'): Promise<MockImds> {
  return startMockImds({
    env: { MOCK_IMDS_TENANT_FILE: tenantFile, MOCK_IMDS_IDENTITY_HEADER: identityHeader, MOCK_IMDS_PLATFORM: platform }
  })
}

/**
 * One mock per platform a client test targets: IMDS is a VM's, the identity endpoint App Service's
 * or Container Apps'. Each has its own signing keys, faults and request log, so a run's faults,
 * counts and token checks go to the mock its pointer names.
 */
export interface ClientsMocks {
  vm: MockImds
  appService: MockImds
  containerApps: MockImds
  /** Stops every mock that started. */
  stop: () => Promise<void>
}

/** Starts the three mocks one after the other; if one fails to start, the others are stopped. */
export async function startClientsMocks (): Promise<ClientsMocks> {
  const started: MockImds[] = []
  const stop = async () => { for (const mock of started.splice(0)) await mock.stop() }
  try {
    for (const platform of ['vm', 'app-service', 'container-apps'] as const) started.push(await startClientsMock(platform))
  } catch (error) {
    await stop()
    throw error
  }
  const [vm, appService, containerApps] = started as [MockImds, MockImds, MockImds]
  return { vm, appService, containerApps, stop }
}

/** Where a client is sent: the mock that answers it, and the SDK variables that point it there. */
export interface Target {
  mock: MockImds
  env: Record<string, string>
}

/** The same target with more client variables (e.g. AZURE_TOKEN_CREDENTIALS). */
export const withEnv = (target: Target, env: Record<string, string>): Target => ({ mock: target.mock, env: { ...target.env, ...env } })

/** The ways of pointing a client at a mock of the right platform (each client test says which of them work). */
export const pointers = {
  /** IMDS at a host of our choosing: AZURE_POD_IDENTITY_AUTHORITY_HOST (no trailing slash), on the VM mock. */
  podIdentityHost: (mocks: ClientsMocks): Target => ({ mock: mocks.vm, env: { AZURE_POD_IDENTITY_AUTHORITY_HOST: mocks.vm.url } }),
  /** IMDS at its real address 169.254.169.254, reached through the VM mock as an HTTP proxy. */
  httpProxy: (mocks: ClientsMocks): Target => ({ mock: mocks.vm, env: { HTTP_PROXY: mocks.vm.url, http_proxy: mocks.vm.url } }),
  /** App Service / Functions: IDENTITY_ENDPOINT + IDENTITY_HEADER, on the app-service mock. */
  appService: (mocks: ClientsMocks, header = identityHeader): Target => identityEndpoint(mocks.appService, header),
  /** Container Apps: the same variables, on the container-apps mock. */
  containerApps: (mocks: ClientsMocks, header = identityHeader): Target => identityEndpoint(mocks.containerApps, header)
}

function identityEndpoint (mock: MockImds, header: string): Target {
  return { mock, env: { IDENTITY_ENDPOINT: `${mock.url}/msi/token`, IDENTITY_HEADER: header } }
}

export interface Outcome {
  ok: boolean
  token?: string
  /** Epoch milliseconds. */
  expiresOn?: number
  errorName?: string
  errorMessage?: string
  causeName?: string | null
  causeMessage?: string | null
  elapsedMs: number
}

export interface ClientScenario {
  credential: 'mi' | 'dac'
  calls?: number
  clientId?: string
  /** Sets CLIENT_MAX_RETRIES (each SDK maps it to its own retry count option). */
  maxRetries?: number
  /** Sets CLIENT_RETRY_DELAY_MS (the SDK's base delay). */
  retryDelayMs?: number
  /** Faults added before the client starts; all faults are cleared first and after. */
  faults?: FaultSpec[]
  resource?: string
}

export interface ClientRun {
  /** The mock the client was pointed at: the one whose keys signed its tokens. */
  mock: MockImds
  outcomes: Outcome[]
  /** Token requests the mock received during the run (probes included). */
  requests: number
  /** Milliseconds between consecutive token requests, from the mock's own request log. */
  gapsMs: number[]
  /** The URLs of those requests, as the mock logged them. */
  urls: string[]
  /** The client's stderr (SDK log lines), for diagnostics. */
  stderr: string
}

interface LoggedRequest { time: number, url: string }

/** Token requests (both endpoints, proxy-form URLs included) the mock logged after `since` (epoch ms). */
function tokenRequestsSince (mock: MockImds, since: number): LoggedRequest[] {
  const requests: LoggedRequest[] = []
  for (const line of mock.logs) {
    if (!line.includes('"msg":"incoming request"') || line.includes('"listener":"admin"')) continue
    const entry = JSON.parse(line) as { time: number, req: { url: string } }
    if (entry.time >= since && /\/metadata\/identity\/oauth2\/token|\/msi\/token/.test(entry.req.url)) {
      requests.push({ time: entry.time, url: entry.req.url })
    }
  }
  return requests
}

/**
 * Runs one client process for one scenario with exactly the target's `env` plus PATH and HOME
 * (nothing from this shell reaches the SDK's endpoint discovery), and measures what the target's
 * mock saw meanwhile.
 */
export async function runClient (
  { mock, env }: Target,
  command: readonly [string, ...string[]],
  scenario: ClientScenario,
  timeoutMs = 60_000
): Promise<ClientRun> {
  await mock.admin.clearFaults()
  for (const fault of scenario.faults ?? []) await mock.admin.addFault(fault)
  const before = (await mock.admin.state()).tokenRequests
  const since = Date.now()
  const clientEnv: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/root',
    DOTNET_CLI_TELEMETRY_OPTOUT: '1',
    DOTNET_NOLOGO: '1',
    ...env,
    CLIENT_CREDENTIAL: scenario.credential,
    CLIENT_RESOURCE: scenario.resource ?? resource,
    CLIENT_CALLS: String(scenario.calls ?? 1),
    ...(scenario.clientId ? { CLIENT_CLIENT_ID: scenario.clientId } : {}),
    ...(scenario.maxRetries === undefined ? {} : { CLIENT_MAX_RETRIES: String(scenario.maxRetries) }),
    ...(scenario.retryDelayMs === undefined ? {} : { CLIENT_RETRY_DELAY_MS: String(scenario.retryDelayMs) })
  }
  const [file, ...args] = command
  const child = spawn(file, args, { cwd: repoRoot, env: clientEnv, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', resolve)
  }).finally(() => clearTimeout(timer))
  await mock.admin.clearFaults()
  if (code !== 0) throw new Error(`${command.join(' ')} exited with ${code}:\n${stderr}\n${stdout}`)
  const outcomes = stdout.trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as Outcome)
  const requests = (await mock.admin.state()).tokenRequests - before
  const logged = tokenRequestsSince(mock, since)
  return {
    mock,
    outcomes,
    requests,
    gapsMs: logged.slice(1).map((request, i) => request.time - (logged[i] as LoggedRequest).time),
    urls: logged.map((request) => request.url),
    stderr
  }
}

/** One diagnostic line per run: the figures RESULTS.md records. */
export function describeRun (name: string, run: ClientRun): string {
  const outcomes = run.outcomes.map((o) => o.ok
    ? `token in ${o.elapsedMs} ms`
    : `${o.errorName} in ${o.elapsedMs} ms: ${(o.errorMessage ?? '').replace(/\s+/g, ' ').slice(0, 160)}`)
  return `${name}: ${run.requests} request(s), gaps [${run.gapsMs.join(', ')}] ms; ${outcomes.join(' | ')}`
}

/** Where a run's diagnostic line goes (node:test's TestContext). */
export interface Diagnostics { diagnostic: (message: string) => void }

/** Runs a client's driver (see runClient) and reports each run as a test diagnostic (describeRun). */
export type ClientRunner = (t: Diagnostics, name: string, target: Target, scenario: ClientScenario) => Promise<ClientRun>

export function clientRunner (driver: readonly [string, ...string[]]): ClientRunner {
  return async (t, name, target, scenario) => {
    const result = await runClient(target, driver, scenario)
    t.diagnostic(describeRun(name, result))
    return result
  }
}

/*
 * The checks every client is held to the same way; each client test names the pointers, credentials
 * and counts that apply to its SDK. `scenario` is the client's base scenario (credential, retry delay).
 */

/** Two calls: a system-assigned token with Entra's claims, then the same token from the SDK's cache. */
export async function assertSystemTokenThenCacheHit (client: ClientRunner, t: Diagnostics, target: Target, scenario: ClientScenario, requests: number): Promise<void> {
  const result = await client(t, 'system', target, { ...scenario, calls: 2 })
  assert.equal(result.requests, requests)
  assert.equal(tokenOf(result.outcomes[1]), tokenOf(result.outcomes[0]))
  await assertTokenFor(result.mock, tokenOf(result.outcomes[0]), system, result.outcomes[0])
}

/** A user-assigned identity chosen by client id: its token, asked for with client_id in the (last) request. */
export async function assertUserAssignedByClientId (client: ClientRunner, t: Diagnostics, target: Target, scenario: ClientScenario, requests: number): Promise<void> {
  const result = await client(t, 'by client id', target, { ...scenario, clientId: assigned.clientId })
  assert.equal(result.requests, requests)
  await assertTokenFor(result.mock, tokenOf(result.outcomes[0]), assigned)
  assert.match(result.urls.at(-1) ?? '', new RegExp(`client_id=${assigned.clientId}`))
}

/** The error code mock-imds answers a status fault with, as Azure does (429, 500, 404). */
const faultCodes: Record<number, RegExp> = { 429: /too_many_requests/, 500: /unknown/, 404: /not_found/ }

/**
 * A lasting `status` at every token request: `requests` requests, then the SDK's `errorName` with the
 * status's error code. Returns the run and its failure for the SDK's own further checks.
 */
export async function assertLastingStatusFails (
  client: ClientRunner, t: Diagnostics, target: Target, scenario: ClientScenario, status: 429 | 500 | 404, requests: number, errorName: string
): Promise<{ result: ClientRun, failure: Outcome }> {
  const result = await client(t, String(status), target, { ...scenario, faults: [{ target: 'token', mode: 'status', status }] })
  assert.equal(result.requests, requests)
  const failure = failureOf(result.outcomes[0])
  assert.equal(failure.errorName, errorName)
  assert.match(failure.errorMessage ?? '', faultCodes[status] as RegExp)
  return { result, failure }
}

/** One 500, then a token after one retry. */
export async function assertOne500ThenToken (client: ClientRunner, t: Diagnostics, target: Target, scenario: ClientScenario): Promise<void> {
  const result = await client(t, '500 once', target, { ...scenario, faults: [{ target: 'token', mode: 'status', status: 500, count: 1 }] })
  assert.equal(result.requests, 2)
  await assertTokenFor(result.mock, tokenOf(result.outcomes[0]), system)
}

/** Two 429s with Retry-After: 1, then a token: every wait is at least the header's second. */
export async function assertRetryAfterHonoured (client: ClientRunner, t: Diagnostics, target: Target, scenario: ClientScenario): Promise<void> {
  const result = await client(t, '429 Retry-After', target, {
    ...scenario,
    faults: [{ target: 'token', mode: 'status', status: 429, retryAfterSeconds: 1, count: 2 }]
  })
  assert.equal(result.requests, 3)
  await assertTokenFor(result.mock, tokenOf(result.outcomes[0]), system)
  for (const gap of result.gapsMs) assert.ok(gap >= 950, `gaps ${result.gapsMs.join(', ')}`)
}

/** A target with a wrong IDENTITY_HEADER: one request, not retried, then the SDK's `errorName` with `message`. */
export async function assertWrongHeaderNotRetried (
  client: ClientRunner, t: Diagnostics, target: Target, scenario: ClientScenario, errorName: string, message: RegExp
): Promise<void> {
  const result = await client(t, 'wrong header', target, scenario)
  assert.equal(result.requests, 1)
  const failure = failureOf(result.outcomes[0])
  assert.equal(failure.errorName, errorName)
  assert.match(failure.errorMessage ?? '', message)
}

export function tokenOf (outcome: Outcome | undefined): string {
  assert.ok(outcome?.ok, `expected a token, got ${outcome?.errorName}: ${outcome?.errorMessage}`)
  return outcome.token as string
}

export function failureOf (outcome: Outcome | undefined): Outcome {
  assert.ok(outcome && !outcome.ok, 'expected a failure, got a token')
  return outcome
}

/**
 * The token is the mock's, for this identity, shaped like Entra's v2 app token: signature, issuer and
 * audience checked by jose against the mock's discovery, then the claims one by one.
 */
export async function assertTokenFor (mock: MockImds, token: string, identity: Identity, outcome?: Outcome): Promise<void> {
  const claims = await new JoseValidator(mock.url, tenant.tenantId).verify(token, v2App.appId)
  assert.equal(claims.ver, '2.0')
  assert.equal(claims.tid, tenant.tenantId)
  assert.equal(claims.oid, identity.principalId)
  assert.equal(claims.sub, identity.principalId)
  assert.equal(claims.azp, identity.clientId)
  assert.equal(claims.azpacr, '2')
  assert.equal(claims.idtyp, 'app')
  assert.equal(claims.xms_mirid, identity.resourceId)
  assert.deepEqual(claims.roles, ['DoAll'])
  assert.equal((claims.exp as number) - (claims.nbf as number), 86_700)
  // The client's expiry is the token's exp: to the second from expires_on, or, where the client
  // adds IMDS's expires_in (whole seconds left) to its own clock on receipt (.NET: measured +1059 ms
  // on a loaded machine), later by at most that second plus the call's own duration.
  if (outcome?.expiresOn !== undefined) {
    const exp = (decodeJwt(token).exp as number) * 1000
    const drift = outcome.expiresOn - exp
    assert.ok(drift >= -1000 && drift <= 1000 + outcome.elapsedMs, `expiresOn is ${drift} ms from exp (call took ${outcome.elapsedMs} ms)`)
  }
}

/**
 * The `skip` option for a suite that needs a system tool: skipped with the reason when the tool is
 * absent and CI is not set; under CI=true never skipped, so the suite's own check fails instead
 * (CI installs the tools with scripts/ci/install-client-tools.sh).
 */
export function skipUnless (available: boolean, reason: string): string | false {
  return available || inCI ? false : `${reason}: skipped (CI is not set; CI=true makes this a failure)`
}
