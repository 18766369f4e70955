import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { healthPlugin } from '../../shared/health.ts'
import { loggerOptions } from '../../shared/logger.ts'
import { metricsPlugin } from '../../shared/metrics.ts'
import { expandAudiences } from './auth/token-validation.ts'
import type { ApiConfig } from './config.ts'
import { authMetricsPlugin } from './plugins/auth-metrics.ts'
import { authenticatePlugin } from './plugins/authenticate.ts'
import { keyStorePlugin } from './plugins/key-store.ts'
import { claimsRoutes } from './routes/claims.ts'

/** Microsoft's default ClockSkew (TokenValidationParameters.DefaultClockSkew), applied to exp and nbf. */
const CLOCK_SKEW_MS = 300_000

export async function buildApp (config: ApiConfig, options: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: loggerOptions(config.LOG_LEVEL), ...options })
  await app.register(metricsPlugin, { defaultLabels: { service: 'api' } })
  await app.register(healthPlugin)
  await app.register(authMetricsPlugin)
  await app.register(keyStorePlugin, {
    authorityHost: config.AUTH_AUTHORITY_HOST,
    tenants: config.AUTH_TENANT_ID,
    versions: config.AUTH_ACCEPTED_TOKEN_VERSIONS,
    verifier: {
      audiences: expandAudiences(config.AUTH_AUDIENCE),
      clockToleranceMs: CLOCK_SKEW_MS,
      cacheSize: config.AUTH_TOKEN_CACHE_SIZE,
      cacheTtlMs: config.AUTH_TOKEN_CACHE_TTL_MS
    },
    refreshIntervalMs: config.AUTH_JWKS_REFRESH_INTERVAL_MS,
    cooldownMs: config.AUTH_JWKS_COOLDOWN_MS,
    timeoutMs: config.AUTH_JWKS_TIMEOUT_MS,
    retryMaxMs: config.AUTH_JWKS_RETRY_MAX_MS
  })
  await app.register(authenticatePlugin, {
    tenants: config.AUTH_TENANT_ID,
    audiences: config.AUTH_AUDIENCE,
    versions: config.AUTH_ACCEPTED_TOKEN_VERSIONS,
    maxTokenBytes: config.AUTH_MAX_TOKEN_BYTES,
    acceptedCache: { size: config.AUTH_TOKEN_CACHE_SIZE, ttlMs: config.AUTH_TOKEN_CACHE_TTL_MS, clockToleranceMs: CLOCK_SKEW_MS }
  })
  await app.register(claimsRoutes, { roles: config.AUTH_REQUIRED_ROLES })
  return app
}
