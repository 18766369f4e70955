import type { TestContext } from 'node:test'
import { defaultTenant } from '../../../scripts/lib/local-stack.ts'
import { startMockImds, type MockImds } from '../../../scripts/lib/mock-imds.ts'
import { apiEnv, startService, type RunningService } from '../../../scripts/lib/processes.ts'

export const tenant = defaultTenant()
export const identityHeader = 'mock-imds-identity-header'

/**
 * The two ways the SDK finds its identity endpoint: IMDS (VMs and scale sets) through
 * AZURE_POD_IDENTITY_AUTHORITY_HOST, and the identity endpoint of Container Apps / App Service
 * through IDENTITY_ENDPOINT + IDENTITY_HEADER. The SDK freezes its choice per process: one caller
 * process per flavour and scenario. mockEnv makes mock-imds answer as the platform of the flavour
 * (a VM has no identity endpoint; Container Apps has no IMDS).
 */
export const flavours = [
  {
    name: 'imds' as const,
    env: (mockUrl: string) => ({ AZURE_POD_IDENTITY_AUTHORITY_HOST: mockUrl }),
    mockEnv: { MOCK_IMDS_PLATFORM: 'vm' }
  },
  {
    name: 'identity' as const,
    env: (mockUrl: string) => ({ IDENTITY_ENDPOINT: `${mockUrl}/msi/token`, IDENTITY_HEADER: identityHeader }),
    mockEnv: { MOCK_IMDS_PLATFORM: 'container-apps' }
  }
]
export type Flavour = typeof flavours[number]

/** Short deadlines and backoff, so that fault scenarios take seconds. */
export const fastTokenSettings = {
  TOKEN_ATTEMPT_TIMEOUT_MS: '1000',
  TOKEN_WAIT_TIMEOUT_MS: '3000',
  TOKEN_ACQUISITION_DEADLINE_MS: '10000',
  TOKEN_RETRY_BASE_DELAY_MS: '100',
  TOKEN_RETRY_MAX_DELAY_MS: '1000',
  TOKEN_FATAL_COOLDOWN_MS: '5000'
}

/** How long a service may take to start: generous, because the machine running the suite may be busy. */
export const startTimeoutMs = 30_000

export interface Backend {
  mock: MockImds
  api: RunningService
}

/**
 * A real mock-imds (admin API on) answering as the flavour's platform (default: IMDS on a VM), and
 * a real api validating against it; stopped after the test.
 */
export async function startBackend (t: TestContext, mockEnv: Record<string, string> = {}, flavour: Flavour = flavours[0]!): Promise<Backend> {
  const mock = await startMockImds({ env: { ...flavour.mockEnv, ...mockEnv }, timeoutMs: startTimeoutMs })
  t.after(() => mock.stop())
  // The api's load shedding is off: it is the api's own test subject, and on a busy machine it
  // would answer the caller's bursts with 503 overloaded, which says nothing about the caller.
  const api = await startService('api', {
    env: { ...apiEnv(mock.url, tenant.tenantId, `${tenant.apiClientId},${tenant.apiAppIdUri}`), OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0', OVERLOAD_MAX_EVENT_LOOP_UTILIZATION: '0', OVERLOAD_MAX_SIGNATURE_CHECK_DELAY_MS: '0' },
    timeoutMs: startTimeoutMs
  })
  t.after(() => api.stop())
  return { mock, api }
}

/** A caller process for one flavour against a backend; stopped after the test. */
export async function startCaller (t: TestContext, flavour: Flavour, backend: Backend, env: Record<string, string> = {}): Promise<RunningService> {
  const caller = await startService('caller', {
    timeoutMs: startTimeoutMs,
    env: {
      API_BASE_URL: backend.api.url,
      API_SCOPE: tenant.apiScope,
      ...flavour.env(backend.mock.url),
      ...fastTokenSettings,
      ...env
    }
  })
  t.after(() => caller.stop())
  return caller
}

/** The sum of the series of a metric whose labels include `labels`, from a service's /metrics. */
export async function metric (baseUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text()
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
  let sum = 0
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!match || match[1] !== name) continue
    const pairs = (match[2] ?? '').split(',')
    if (wanted.every((pair) => pairs.includes(pair))) sum += Number(match[3])
  }
  return sum
}

export interface Timed<T> { value: T, ms: number }

export async function timed<T> (work: () => Promise<T>): Promise<Timed<T>> {
  const started = performance.now()
  const value = await work()
  return { value, ms: performance.now() - started }
}

export async function getJson (url: string): Promise<{ status: number, body: Record<string, unknown> }> {
  const response = await fetch(url)
  return { status: response.status, body: await response.json() as Record<string, unknown> }
}

/** Polls until check() holds, failing after timeoutMs with the message. */
export async function waitFor (check: () => Promise<boolean>, timeoutMs: number, message: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`timed out after ${timeoutMs} ms: ${message}`)
}
