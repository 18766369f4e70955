import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { healthPlugin } from '../../shared/health.ts'
import { loggerOptions } from '../../shared/logger.ts'
import { metricsPlugin } from '../../shared/metrics.ts'
import type { MockImdsConfig } from './config.ts'
import { Issuer } from './issuer.ts'
import { entraRoutes } from './routes/entra.ts'
import { identityEndpointRoutes } from './routes/identity-endpoint.ts'
import { imdsRoutes } from './routes/imds.ts'
import { defaultTenantPath, loadTenantFile } from './tenant.ts'

declare module 'fastify' {
  interface FastifyInstance {
    issuer: Issuer
  }
}

export async function buildApp (config: MockImdsConfig, options: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const tenant = loadTenantFile(config.MOCK_IMDS_TENANT_FILE ?? defaultTenantPath.pathname)
  const issuer = new Issuer(tenant, { lifetimeSeconds: config.MOCK_IMDS_TOKEN_LIFETIME_SECONDS })

  const app = Fastify({
    logger: loggerOptions(config.LOG_LEVEL),
    // With AZURE_POD_IDENTITY_AUTHORITY_HOST set, the SDK asks for .../oauth2/token/ (trailing slash).
    routerOptions: { ignoreTrailingSlash: true },
    ...options
  })
  app.decorate('issuer', issuer)
  await app.register(metricsPlugin, { defaultLabels: { service: 'mock-imds' } })
  await app.register(healthPlugin)
  await app.register(imdsRoutes, { issuer })
  await app.register(identityEndpointRoutes, { issuer, identityHeader: config.MOCK_IMDS_IDENTITY_HEADER })
  await app.register(entraRoutes, { issuer })
  return app
}
