import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { healthPlugin } from '../../shared/health.ts'
import { loggerOptions } from '../../shared/logger.ts'
import { metricsPlugin } from '../../shared/metrics.ts'
import type { CallerConfig } from './config.ts'
import { apiClientPlugin } from './plugins/api-client.ts'
import { tokenProviderPlugin } from './plugins/token-provider.ts'
import { callRoutes } from './routes/call.ts'

export async function buildApp (config: CallerConfig, options: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: loggerOptions(config.LOG_LEVEL), ...options })
  await app.register(metricsPlugin, { defaultLabels: { service: 'caller' } })
  await app.register(healthPlugin)
  await app.register(tokenProviderPlugin, { scope: config.API_SCOPE, clientId: config.AZURE_CLIENT_ID })
  await app.register(apiClientPlugin, { baseUrl: config.API_BASE_URL })
  await app.register(callRoutes)
  return app
}
