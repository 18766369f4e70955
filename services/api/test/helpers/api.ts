import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { Writable } from 'node:stream'
import { buildApp } from '../../src/app.ts'
import { readConfig } from '../../src/config.ts'
import { API_APP_ID_URI, API_CLIENT_ID, TENANT } from '../../../../packages/fastify-entra-auth/test/helpers/authority.ts'

export interface TestApi {
  app: FastifyInstance
  /** Every log line the app wrote, parsed. */
  logs: Array<Record<string, unknown>>
  get: (authorization?: string | string[], path?: string) => Promise<LightMyRequestResponse>
  /** The current value of one series of a counter or gauge, 0 when absent. */
  metric: (name: string, labels?: Record<string, string>) => Promise<number>
}

/** The api in-process against an authority, with the given extra environment and, if given, extra routes. */
export async function startApi (authorityUrl: string, env: Record<string, string> = {}, routes?: (app: FastifyInstance) => void): Promise<TestApi> {
  const config = readConfig({
    AUTH_TENANT_ID: TENANT,
    AUTH_AUDIENCE: `${API_CLIENT_ID},${API_APP_ID_URI}`,
    AUTH_AUTHORITY_HOST: authorityUrl,
    LOG_LEVEL: 'info',
    // Load shedding off: on a shared test machine a descheduled process reads as a saturated event
    // loop. test/overload.test.ts turns it on.
    OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0',
    OVERLOAD_MAX_EVENT_LOOP_UTILIZATION: '0',
    OVERLOAD_MAX_SIGNATURE_CHECK_DELAY_MS: '0',
    ...env
  })
  const logs: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>)
      done()
    }
  })
  const app = await buildApp(config, { logger: { level: config.LOG_LEVEL, stream } })
  routes?.(app)
  await app.ready()
  return {
    app,
    logs,
    get: (authorization, path = '/claims') =>
      app.inject({ method: 'GET', url: path, headers: (authorization === undefined ? {} : { authorization }) as Record<string, string> }),
    async metric (name, labels = {}) {
      const metric = app.metrics.getSingleMetric(name)
      if (!metric) throw new Error(`no metric ${name}`)
      const { values } = await metric.get()
      const found = values.find((value) => Object.entries(labels).every(([k, v]) => value.labels[k] === v))
      return found?.value ?? 0
    }
  }
}
