import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { healthPlugin } from '../../shared/health.ts'
import { loggerOptions } from '../../shared/logger.ts'
import { metricsPlugin } from '../../shared/metrics.ts'
import { identitySelector, type CallerConfig } from './config.ts'
import { apiClientPlugin } from './plugins/api-client.ts'
import { tokenProviderPlugin } from './plugins/token-provider.ts'
import { callRoutes } from './routes/call.ts'

export async function buildApp (config: CallerConfig, options: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: loggerOptions(config.LOG_LEVEL), ...options })
  await app.register(metricsPlugin, { defaultLabels: { service: 'caller' } })
  await app.register(healthPlugin)
  await app.register(tokenProviderPlugin, {
    scope: config.API_SCOPE,
    selector: identitySelector(config),
    attemptTimeoutMs: config.TOKEN_ATTEMPT_TIMEOUT_MS,
    settings: {
      acquisitionDeadlineMs: config.TOKEN_ACQUISITION_DEADLINE_MS,
      waitTimeoutMs: config.TOKEN_WAIT_TIMEOUT_MS,
      retryBaseDelayMs: config.TOKEN_RETRY_BASE_DELAY_MS,
      retryMaxDelayMs: config.TOKEN_RETRY_MAX_DELAY_MS,
      fatalCooldownMs: config.TOKEN_FATAL_COOLDOWN_MS,
      refreshFraction: config.TOKEN_REFRESH_FRACTION,
      refreshJitter: config.TOKEN_REFRESH_JITTER,
      expiryMarginMs: config.TOKEN_EXPIRY_MARGIN_SECONDS * 1000
    }
  })
  await app.register(apiClientPlugin, { baseUrl: config.API_BASE_URL, timeoutMs: config.API_TIMEOUT_MS })
  await app.register(callRoutes)
  return app
}
