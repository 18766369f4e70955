import type { FastifyError, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram, register as globalRegistry, type Registry } from 'prom-client'
import { TokenUnavailableError } from './errors.ts'
import type { ManagedIdentityTokenProviderOptions } from './options.ts'
import { ManagedIdentityTokenProvider } from './provider.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** The managed-identity-token-provider decorator: a `TokenCredential` with `notReadyReason()`. */
    managedIdentity: ManagedIdentityTokenProvider
  }
}

/** Options of the Fastify plugin: the provider's, plus where its metrics go and what to warm. */
export interface ManagedIdentityTokenProviderPluginOptions extends Omit<ManagedIdentityTokenProviderOptions, 'observer' | 'logger'> {
  /**
   * Scopes to acquire tokens for in the background once the app is ready (listening never waits
   * for Azure), so that the first request finds a token held and readiness can turn green.
   * @default []
   */
  scopes?: Array<string | string[]> | undefined
  /**
   * The prom-client Registry the metrics are registered on (`token_requests_total`,
   * `token_acquisition_duration_seconds`, `token_refresh_failures_total`, `token_expires_in_seconds`).
   * @default prom-client's global `register`
   */
  registry?: Registry | undefined
  /**
   * Whether the plugin sets the instance's error handler, so that a `TokenUnavailableError` a
   * route lets through is answered 503 with Retry-After and a fixed body
   * (`{ statusCode: 503, code: 'TOKEN_UNAVAILABLE', error: 'Service Unavailable', message }`),
   * never the identity endpoint's text (AADSTS codes, tenant and trace ids), which is logged
   * instead; every other error goes to the handler that was set before. `false` for an app that
   * maps the error itself, or sets its own error handler (which replaces this one).
   * @default true
   */
  errorHandler?: boolean | undefined
}

/** Fastify's own register options, which reach the plugin too. */
const registerOptions = ['prefix', 'logLevel', 'logSerializers'] as const

/**
 * Decorates the instance with a {@link ManagedIdentityTokenProvider} as `managedIdentity`,
 * registers its metrics, warms `scopes` on ready and stops the refresh timers on close.
 * Readiness is the app's to wire: a `/readyz` route that answers 503 while
 * `app.managedIdentity.notReadyReason()` is not null.
 */
const plugin: FastifyPluginAsync<ManagedIdentityTokenProviderPluginOptions> = async (fastify, options) => {
  const { scopes = [], registry = globalRegistry, errorHandler = true, ...rest } = options
  const providerOptions: Record<string, unknown> = { ...rest }
  for (const name of registerOptions) delete providerOptions[name]
  for (const name of ['logger', 'observer']) {
    if (name in providerOptions) throw new TypeError(`managed-identity-token-provider/fastify: ${name} is set by the plugin (the instance's logger, the metrics); leave it out`)
  }
  if (!Array.isArray(scopes)) throw new TypeError('managed-identity-token-provider/fastify: scopes must be an array of scopes')
  if (typeof errorHandler !== 'boolean') throw new TypeError('managed-identity-token-provider/fastify: errorHandler must be a boolean')
  // First, so that a bad option fails the registration before any metric is registered (the
  // global registry outlives the app). The observer's metrics exist before its first event.
  const provider = new ManagedIdentityTokenProvider({
    ...(providerOptions as ManagedIdentityTokenProviderOptions),
    logger: fastify.log.child({ component: 'managed-identity-token-provider' }),
    observer: {
      servedFromCache: () => tokenRequests.inc({ source: 'cache', result: 'success' }),
      exchange: (result) => tokenRequests.inc({ source: 'endpoint', result }),
      acquisitionFinished: (result, seconds) => acquisitionDuration.observe({ result }, seconds),
      refreshFailed: () => refreshFailures.inc()
    }
  })
  const registers = [registry]
  const tokenRequests = new Counter({
    name: 'token_requests_total',
    help: 'Tokens handed to requests from the cached token (source="cache"), and HTTP requests to the identity endpoint (source="endpoint").',
    labelNames: ['source', 'result'] as const,
    registers
  })
  const acquisitionDuration = new Histogram({
    name: 'token_acquisition_duration_seconds',
    help: 'Duration of token acquisitions, retries and backoff included, by result.',
    labelNames: ['result'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers
  })
  const refreshFailures = new Counter({
    name: 'token_refresh_failures_total',
    help: 'Failed attempts to renew the token while a valid one was held (the old token kept being used).',
    registers
  })
  // Initialised so that the series exist (at 0) before the first event.
  tokenRequests.inc({ source: 'cache', result: 'success' }, 0)
  tokenRequests.inc({ source: 'endpoint', result: 'success' }, 0)
  tokenRequests.inc({ source: 'endpoint', result: 'failure' }, 0)

  // eslint-disable-next-line no-new -- registered in the registry, read through collect()
  new Gauge({
    name: 'token_expires_in_seconds',
    help: 'Seconds until the held token expires (0 without one).',
    registers,
    collect () { this.set(provider.expiresInSeconds()) }
  })

  fastify.decorate('managedIdentity', provider)
  if (errorHandler) {
    const previous = fastify.errorHandler
    fastify.setErrorHandler(function (error: FastifyError | TokenUnavailableError, request, reply) {
      if (!(error instanceof TokenUnavailableError)) return previous.call(this, error as FastifyError, request, reply)
      request.log.error({ err: error, reason: error.reason, deploymentError: error.deploymentError }, 'no token from the managed identity')
      return reply.code(503).headers(error.headers).send({
        statusCode: 503,
        code: 'TOKEN_UNAVAILABLE',
        error: 'Service Unavailable',
        message: 'a token for a service this one depends on is not available; try again later'
      })
    })
  }
  fastify.addHook('onReady', async () => { provider.warm(...scopes) })
  fastify.addHook('onClose', async () => {
    provider.close()
    // The global registry outlives the app: a second app in the same process registers again.
    for (const name of ['token_requests_total', 'token_acquisition_duration_seconds', 'token_refresh_failures_total', 'token_expires_in_seconds']) {
      registry.removeSingleMetric(name)
    }
  })
}

/** The plugin, wrapped once with fastify-plugin (name = the package name, Fastify 5). */
export const managedIdentityTokenProvider = fp(plugin, { name: 'managed-identity-token-provider', fastify: '5.x' })
export default managedIdentityTokenProvider
export { ManagedIdentityTokenProvider }
export type { ManagedIdentityTokenProviderOptions }
