import { startService, type RunningService, type StartOptions } from './processes.ts'

/** A fault as POST /admin/faults takes it (see packages/mock-imds/README.md). */
export interface FaultSpec {
  target: 'token' | 'imds' | 'identity' | 'jwks' | 'discovery'
  mode: 'status' | 'hang' | 'latency' | 'garbage'
  status?: number
  retryAfterSeconds?: number
  latencyMs?: number
  count?: number
}

export interface AdminState {
  faults: Array<FaultSpec & { id: string, remaining: number | null, hits: number }>
  kids: string[]
  signingKid: string
  hungRequests: number
  tokenRequests: number
  jwksRequests: number
  discoveryRequests: number
}

/** A typed client for mock-imds's admin API. */
export class MockImdsAdmin {
  readonly url: string
  constructor (url: string) { this.url = url }

  private async call<T> (method: string, path: string, body?: unknown): Promise<T> {
    const response = await fetch(`${this.url}${path}`, {
      method,
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    })
    if (!response.ok) throw new Error(`mock-imds admin ${method} ${path}: ${response.status} ${await response.text()}`)
    return (response.status === 204 ? undefined : await response.json()) as T
  }

  addFault (fault: FaultSpec): Promise<{ id: string }> { return this.call('POST', '/admin/faults', fault) }
  clearFaults (): Promise<void> { return this.call('DELETE', '/admin/faults') }
  rotateKeys (keepPrevious = true): Promise<{ kid: string, previousKids: string[] }> {
    return this.call('POST', '/admin/keys/rotate', { keepPrevious })
  }

  removeKey (kid: string): Promise<void> { return this.call('DELETE', `/admin/keys/${encodeURIComponent(kid)}`) }
  state (): Promise<AdminState> { return this.call('GET', '/admin/state') }
  clearTokenCache (): Promise<void> { return this.call('POST', '/admin/tokens/cache/clear') }
}

export interface MockImds extends RunningService {
  admin: MockImdsAdmin
}

/**
 * Starts mock-imds as a real process with its admin API on a free loopback port.
 * env adds to or overrides mock-imds's variables (MOCK_IMDS_TENANT_FILE, MOCK_IMDS_TOKEN_LIFETIME_SECONDS, ...).
 * The admin address is read from the log, so LOG_LEVEL must stay at info (the default) or below.
 */
export async function startMockImds (options: StartOptions = {}): Promise<MockImds> {
  const service = await startService('mock-imds', {
    ...options,
    env: { MOCK_IMDS_ADMIN_PORT: '0', ...options.env }
  })
  // The admin listener starts before the public one, so its line is already in the logs.
  const adminUrl = service.logs
    .map((line) => /"msg":"Admin API listening at (http:\/\/[^"]+)"/.exec(line)?.[1])
    .find((url) => url !== undefined)
  if (!adminUrl) {
    await service.stop()
    throw new Error(`mock-imds did not log its admin API address:\n${service.logs.join('\n')}`)
  }
  return Object.assign(service, { admin: new MockImdsAdmin(adminUrl) })
}
