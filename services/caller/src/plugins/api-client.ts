import fp from 'fastify-plugin'
import { Counter, Histogram } from 'prom-client'
import { Agent, errors, request } from 'undici'

export interface ApiResponse {
  status: number
  wwwAuthenticate: string | undefined
  body: unknown
}

/** The api gave no answer at all: refused, reset, or past the per-call timeout. */
export class ApiUnreachableError extends Error {
  override name = 'ApiUnreachableError'
  readonly reason: 'timeout' | 'unreachable'
  constructor (message: string, reason: 'timeout' | 'unreachable', cause: unknown) {
    super(message, { cause })
    this.reason = reason
  }
}

export interface ApiClient {
  /** GET a path of the api with the bearer token: the api's answer, whatever its status. */
  get: (path: string, token: string) => Promise<ApiResponse>
}

declare module 'fastify' {
  interface FastifyInstance {
    apiClient: ApiClient
  }
}

export interface ApiClientOptions {
  baseUrl: string
  timeoutMs: number
}

/** undici with keep-alive (the caller talks to one api all day long) and a deadline per call. */
export const apiClientPlugin = fp<ApiClientOptions>(async (fastify, { baseUrl, timeoutMs }) => {
  const dispatcher = new Agent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 600_000, connections: 64 })
  const registers = [fastify.metrics]
  // status: the api's HTTP status, or "timeout" / "unreachable" when it gave none: a bounded set.
  const requests = new Counter({
    name: 'upstream_requests_total',
    help: 'Calls to the api, by its HTTP status (or timeout / unreachable).',
    labelNames: ['status'] as const,
    registers
  })
  const duration = new Histogram({
    name: 'upstream_request_duration_seconds',
    help: 'Duration of calls to the api, until the whole body was read.',
    labelNames: ['status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers
  })

  fastify.decorate('apiClient', {
    async get (path: string, token: string) {
      const started = performance.now()
      let status = 'unreachable'
      try {
        const response = await request(`${baseUrl}${path}`, {
          method: 'GET',
          headers: { authorization: `Bearer ${token}` },
          dispatcher,
          signal: AbortSignal.timeout(timeoutMs)
        })
        const text = await response.body.text()
        status = String(response.statusCode)
        let body: unknown = text
        try { body = JSON.parse(text) } catch { /* not JSON: keep the text */ }
        const header = response.headers['www-authenticate']
        return { status: response.statusCode, wwwAuthenticate: Array.isArray(header) ? header.join(', ') : header, body }
      } catch (error) {
        const timedOut = (error as Error).name === 'TimeoutError' || error instanceof errors.HeadersTimeoutError || error instanceof errors.BodyTimeoutError
        status = timedOut ? 'timeout' : 'unreachable'
        throw new ApiUnreachableError(
          timedOut ? `the api did not answer within ${timeoutMs} ms` : `the api is unreachable: ${(error as Error).message}`,
          timedOut ? 'timeout' : 'unreachable', error)
      } finally {
        requests.inc({ status })
        duration.observe({ status }, (performance.now() - started) / 1000)
      }
    }
  })
  fastify.addHook('onClose', async () => { await dispatcher.close() })
}, { name: 'api-client', fastify: '5.x', dependencies: ['metrics'] })
