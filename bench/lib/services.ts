import { apiEnv, callerImdsEnv, startService, type RunningService } from '../../scripts/lib/processes.ts'
import { tenant } from './issuer.ts'
import { freePort, readMetrics, sumMetric, waitReady } from './processes.ts'

/**
 * The three services, driven only as black boxes: their processes (scripts/lib/processes.ts), their
 * environment contract and their HTTP endpoints. Every service runs at LOG_LEVEL=warn on a port
 * chosen here, as every bench target does, so that no row pays for two log lines per request.
 * Start deadlines are a minute: a dozen processes start at once on a machine that may be busy.
 */

export interface Service { name: string, url: string, pid: number, logs: string[], stop: () => Promise<void> }

const asService = (running: RunningService): Service => ({
  name: running.name,
  url: running.url,
  pid: running.child.pid as number,
  logs: running.logs,
  stop: running.stop
})

export async function startApi (authorityHost: string, extraEnv: Record<string, string> = {}, { dropLogs = false, nodeFlags }: { dropLogs?: boolean, nodeFlags?: string[] } = {}): Promise<Service> {
  const port = await freePort()
  const api = await startService('api', {
    timeoutMs: 60_000,
    ...(nodeFlags ? { nodeFlags } : {}),
    env: { ...apiEnv(authorityHost, tenant.tenantId, `${tenant.apiClientId},${tenant.apiAppIdUri}`), PORT: String(port), LOG_LEVEL: 'warn', ...extraEnv }
  })
  if (dropLogs) {
    // At LOG_LEVEL=info every request logs two lines: still read from the pipe (as a container
    // runtime reads stdout), but not kept, so that the harness's memory does not grow with them.
    api.child.stdout?.removeAllListeners('data')
    api.child.stdout?.on('data', () => {})
  }
  // Ready means its keys are loaded: measuring before that would time the first JWKS fetch.
  await waitReady(api.url).catch(async (error: unknown) => { await api.stop(); throw error })
  return asService(api)
}

export interface MockImdsService extends Service {
  adminUrl: string
}

export async function startMockImds (extraEnv: Record<string, string> = {}): Promise<MockImdsService> {
  const adminPort = await freePort()
  const mock = await startService('mock-imds', {
    timeoutMs: 60_000,
    env: { MOCK_IMDS_ADMIN_PORT: String(adminPort), LOG_LEVEL: 'info', ...extraEnv }
  })
  return { ...asService(mock), adminUrl: `http://127.0.0.1:${adminPort}` }
}

export async function startCaller (mockUrl: string, apiUrl: string, extraEnv: Record<string, string> = {}): Promise<Service> {
  const port = await freePort()
  const caller = await startService('caller', {
    timeoutMs: 60_000,
    env: { ...callerImdsEnv(mockUrl, apiUrl, tenant.apiScope), PORT: String(port), LOG_LEVEL: 'warn', ...extraEnv }
  })
  return asService(caller)
}

/** mock-imds's admin API (see the briefing's contract). */
export async function admin (mock: MockImdsService, method: string, path: string, body?: unknown): Promise<unknown> {
  const response = await fetch(`${mock.adminUrl}${path}`, {
    method,
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  })
  if (!response.ok) throw new Error(`mock-imds admin ${method} ${path}: ${response.status} ${await response.text()}`)
  return response.status === 204 ? undefined : await response.json()
}

export interface TokenRequestCount { count: number, source: string }

/**
 * How many token requests reached mock-imds so far: its mock_imds_token_requests_total counter,
 * else its admin state, else its request log lines (mock-imds runs at LOG_LEVEL=info here).
 */
export async function tokenRequests (mock: MockImdsService): Promise<TokenRequestCount> {
  const fromMetric = sumMetric(await readMetrics(mock.url), 'mock_imds_token_requests_total')
  if (fromMetric !== null) return { count: fromMetric, source: 'mock_imds_token_requests_total' }
  try {
    const state = await admin(mock, 'GET', '/admin/state') as { tokenRequests?: number }
    if (typeof state.tokenRequests === 'number') return { count: state.tokenRequests, source: 'admin state' }
  } catch { /* no admin API yet */ }
  const count = mock.logs.filter((line) => line.includes('"incoming request"') && /oauth2\/token|msi\/token/.test(line)).length
  return { count, source: 'request log lines' }
}

export interface Cooldown { variable: string | null, ms: number, note: string }

/**
 * The api's JWKS cooldown for unknown kids, read from its config schema so that the bench follows
 * the api's contract instead of copying a number: the first setting whose name says COOLDOWN.
 */
export async function apiCooldown (): Promise<Cooldown> {
  try {
    const module = await import('../../services/api/src/config.ts') as Record<string, unknown>
    for (const exported of Object.values(module)) {
      const properties = (exported as { properties?: Record<string, { default?: unknown }> } | null)?.properties
      if (!properties) continue
      for (const [name, schema] of Object.entries(properties)) {
        if (!/COOLDOWN/i.test(name) || typeof schema.default !== 'number') continue
        const ms = /_MS$/.test(name) ? schema.default : schema.default * 1000
        return { variable: name, ms, note: `${name} (default ${schema.default})` }
      }
    }
  } catch { /* fall through */ }
  return { variable: null, ms: 300_000, note: 'the api has no cooldown setting; assumed Microsoft\'s 5 min' }
}
