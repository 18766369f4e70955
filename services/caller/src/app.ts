import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import managedIdentityTokenProvider from 'managed-identity-token-provider/fastify'
import { healthPlugin } from '../../shared/health.ts'
import { loggerOptions } from '../../shared/logger.ts'
import { metricsPlugin } from '../../shared/metrics.ts'
import { notFoundPlugin } from '../../shared/not-found.ts'
import { identityOptions, type CallerConfig } from './config.ts'
import { apiClientPlugin } from './plugins/api-client.ts'
import { callRoutes } from './routes/call.ts'

export async function buildApp (config: CallerConfig, options: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: loggerOptions(config.LOG_LEVEL), ...options })
  await app.register(metricsPlugin, { defaultLabels: { service: 'caller' } })
  await app.register(healthPlugin)
  await app.register(notFoundPlugin)
  await app.register(managedIdentityTokenProvider, {
    ...identityOptions(config),
    scopes: [config.API_SCOPE],
    registry: app.metrics,
    attemptTimeoutMs: config.TOKEN_ATTEMPT_TIMEOUT_MS,
    acquisitionDeadlineMs: config.TOKEN_ACQUISITION_DEADLINE_MS,
    waitTimeoutMs: config.TOKEN_WAIT_TIMEOUT_MS,
    retryBaseDelayMs: config.TOKEN_RETRY_BASE_DELAY_MS,
    retryMaxDelayMs: config.TOKEN_RETRY_MAX_DELAY_MS,
    fatalCooldownMs: config.TOKEN_FATAL_COOLDOWN_MS,
    refreshFraction: config.TOKEN_REFRESH_FRACTION,
    refreshJitter: config.TOKEN_REFRESH_JITTER,
    expiryMarginMs: config.TOKEN_EXPIRY_MARGIN_SECONDS * 1000,
    // The variables this app reads, named in the 503 of a deployment error.
    hints: {
      identity_not_found: 'the managed identity is not assigned to this host: check AZURE_CLIENT_ID / MANAGED_IDENTITY_RESOURCE_ID / MANAGED_IDENTITY_OBJECT_ID and the identity assignment',
      invalid_resource: 'the api is not known to the tenant: check API_SCOPE'
    }
  })
  app.readiness.add('token', () => app.managedIdentity.notReadyReason())
  await app.register(apiClientPlugin, { baseUrl: config.API_BASE_URL, timeoutMs: config.API_TIMEOUT_MS })
  await app.register(callRoutes, { scope: config.API_SCOPE })
  return app
}
