import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import fastifyEntraAuth from 'fastify-entra-auth'
import { healthPlugin } from '../../shared/health.ts'
import { loggerOptions } from '../../shared/logger.ts'
import { metricsPlugin } from '../../shared/metrics.ts'
import { notFoundPlugin } from '../../shared/not-found.ts'
import type { ApiConfig } from './config.ts'
import { OverloadGate, overloadPlugin } from './plugins/overload.ts'
import { claimsRoutes } from './routes/claims.ts'

/** The api: shared metrics and health, load shedding, Entra authentication from fastify-entra-auth, the routes. Never listens. */
export async function buildApp (config: ApiConfig, options: FastifyServerOptions = {}): Promise<FastifyInstance> {
  // Refusals past capacity are answered in front of Fastify, where they cost less (36 against 43 µs of CPU).
  const gate = new OverloadGate()
  const app = Fastify({ logger: loggerOptions(config.LOG_LEVEL), serverFactory: gate.serverFactory, ...options })
  await app.register(metricsPlugin, { defaultLabels: { service: 'api' } })
  await app.register(healthPlugin)
  await app.register(notFoundPlugin)
  // Before the auth hook, so that a refusal costs no token work.
  await app.register(overloadPlugin, {
    maxEventLoopDelayMs: config.OVERLOAD_MAX_EVENT_LOOP_DELAY_MS,
    maxEventLoopUtilization: config.OVERLOAD_MAX_EVENT_LOOP_UTILIZATION,
    maxSignatureCheckDelayMs: config.OVERLOAD_MAX_SIGNATURE_CHECK_DELAY_MS,
    // Read at each sample, so also before the auth plugin below has registered.
    signatureCheckDelayMs: () => app.hasDecorator('entraAuth') ? app.entraAuth.signatureCheckDelayMs() : 0,
    holdsToken: (rawHeaders) => app.hasDecorator('entraAuth') && app.entraAuth.holdsToken(rawHeaders),
    gate,
    sampleIntervalMs: config.OVERLOAD_SAMPLE_INTERVAL_MS,
    retryAfterSeconds: config.OVERLOAD_RETRY_AFTER_SECONDS
  })
  await app.register(fastifyEntraAuth, {
    tenants: config.AUTH_TENANT_ID,
    maxTenants: config.AUTH_MAX_TENANTS,
    audiences: config.AUTH_AUDIENCE,
    tokenVersions: config.AUTH_ACCEPTED_TOKEN_VERSIONS,
    authorityHost: config.AUTH_AUTHORITY_HOST,
    signingKeysAppId: config.AUTH_SIGNING_KEYS_APP_ID,
    maxTokenBytes: config.AUTH_MAX_TOKEN_BYTES,
    signatureChecks: config.AUTH_SIGNATURE_CHECKS,
    jwks: {
      refreshIntervalMs: config.AUTH_JWKS_REFRESH_INTERVAL_MS,
      cooldownMs: config.AUTH_JWKS_COOLDOWN_MS,
      fetchTimeoutMs: config.AUTH_JWKS_TIMEOUT_MS,
      retryMaxMs: config.AUTH_JWKS_RETRY_MAX_MS
    },
    tokenCache: { size: config.AUTH_TOKEN_CACHE_SIZE, ttlMs: config.AUTH_TOKEN_CACHE_TTL_MS },
    registry: app.metrics
  })
  app.readiness.add('jwks', () => app.entraAuth.notReadyReason())
  await app.register(claimsRoutes, { roles: config.AUTH_REQUIRED_ROLES })
  return app
}
