import fp from 'fastify-plugin'
import { Agent, request } from 'undici'

export interface ApiResponse {
  status: number
  wwwAuthenticate: string | undefined
  body: unknown
}

export interface ApiClient {
  /** GET a path of the api with the bearer token; the api's answer, whatever its status. */
  get: (path: string, token: string) => Promise<ApiResponse>
}

declare module 'fastify' {
  interface FastifyInstance {
    apiClient: ApiClient
  }
}

/** undici with keep-alive: the caller talks to one api all day long. */
export const apiClientPlugin = fp<{ baseUrl: string, timeoutMs?: number }>(async (fastify, { baseUrl, timeoutMs = 10_000 }) => {
  const dispatcher = new Agent({ keepAliveTimeout: 30_000, connections: 64 })
  fastify.decorate('apiClient', {
    async get (path: string, token: string) {
      const response = await request(`${baseUrl}${path}`, {
        method: 'GET',
        headers: { authorization: `Bearer ${token}` },
        dispatcher,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs
      })
      const text = await response.body.text()
      let body: unknown = text
      try { body = JSON.parse(text) } catch { /* not JSON: keep the text */ }
      const header = response.headers['www-authenticate']
      return { status: response.statusCode, wwwAuthenticate: Array.isArray(header) ? header.join(', ') : header, body }
    }
  })
  fastify.addHook('onClose', async () => { await dispatcher.close() })
}, { name: 'api-client', fastify: '5.x' })
