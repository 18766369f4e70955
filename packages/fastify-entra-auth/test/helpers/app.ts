import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import { Writable } from 'node:stream'
import { Registry } from 'prom-client'
import { fastifyEntraAuth, type FastifyEntraAuthOptions } from '../../src/index.ts'
import { API_APP_ID_URI, API_CLIENT_ID, TENANT } from './authority.ts'

/*
 * A minimal app on the plugin, as a user would write it: GET /claims with the DoAll role, GET /readyz
 * from entraAuth.notReadyReason(), GET /metrics from its own registry. No services/ code.
 */

export interface TestApp {
  app: FastifyInstance
  registry: Registry
  /** Every log line the app wrote, parsed. */
  logs: Array<Record<string, unknown>>
  get: (authorization?: string | string[], path?: string) => Promise<LightMyRequestResponse>
  /** The current value of one series of a counter or gauge, 0 when absent. */
  metric: (name: string, labels?: Record<string, string>) => Promise<number>
}

/** The plugin in a fresh Fastify instance against an authority, with option overrides and, if given, extra routes. */
export async function startApp (authorityUrl: string, options: Partial<FastifyEntraAuthOptions> = {}, routes?: (app: FastifyInstance) => void, logLevel = 'info'): Promise<TestApp> {
  const logs: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>)
      done()
    }
  })
  const registry = new Registry()
  const app = Fastify({ logger: { level: logLevel, stream } })
  await app.register(fastifyEntraAuth, {
    tenants: [TENANT],
    audiences: [API_CLIENT_ID, API_APP_ID_URI],
    authorityHost: authorityUrl,
    registry,
    ...options
  })
  app.get('/claims', { config: { auth: { roles: ['DoAll'] } } }, async (request) => request.identity?.claims)
  app.get('/readyz', async (_request, reply) => {
    const reason = app.entraAuth.notReadyReason()
    return reason === null ? { status: 'ready' } : reply.code(503).send({ status: 'not ready', reason })
  })
  app.get('/metrics', async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()))
  routes?.(app)
  await app.ready()
  return {
    app,
    registry,
    logs,
    get: (authorization, path = '/claims') =>
      app.inject({ method: 'GET', url: path, headers: (authorization === undefined ? {} : { authorization }) as Record<string, string> }),
    async metric (name, labels = {}) {
      const metric = registry.getSingleMetric(name)
      if (!metric) throw new Error(`no metric ${name}`)
      const { values } = await metric.get()
      const found = values.find((value) => Object.entries(labels).every(([k, v]) => value.labels[k] === v))
      return found?.value ?? 0
    }
  }
}
