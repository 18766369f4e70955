import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { healthPlugin } from '../../shared/health.ts'
import { loggerOptions } from '../../shared/logger.ts'
import { metricsPlugin } from '../../shared/metrics.ts'
import type { ApiConfig } from './config.ts'
import { authenticatePlugin } from './plugins/authenticate.ts'
import { claimsRoutes } from './routes/claims.ts'

export async function buildApp (config: ApiConfig, options: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: loggerOptions(config.LOG_LEVEL), ...options })
  await app.register(metricsPlugin, { defaultLabels: { service: 'api' } })
  await app.register(healthPlugin)
  await app.register(authenticatePlugin, {
    tenants: config.AUTH_TENANT_ID,
    audiences: config.AUTH_AUDIENCE,
    authorityHost: config.AUTH_AUTHORITY_HOST
  })
  await app.register(claimsRoutes, { roles: config.AUTH_REQUIRED_ROLES })
  return app
}
