import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram, register as globalRegistry, type Registry } from 'prom-client'
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
}

/**
 * Decorates the instance with a {@link ManagedIdentityTokenProvider} as `managedIdentity`,
 * registers its metrics, warms `scopes` on ready and stops the refresh timers on close.
 * Readiness is the app's to wire: `app.readiness.add('token', () => app.managedIdentity.notReadyReason())`.
 */
const plugin: FastifyPluginAsync<ManagedIdentityTokenProviderPluginOptions> = async (fastify, options) => {
  const { scopes = [], registry = globalRegistry, ...providerOptions } = options
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

  const provider = new ManagedIdentityTokenProvider({
    ...providerOptions,
    logger: fastify.log.child({ component: 'managed-identity-token-provider' }),
    observer: {
      servedFromCache: () => tokenRequests.inc({ source: 'cache', result: 'success' }),
      exchange: (result) => tokenRequests.inc({ source: 'endpoint', result }),
      acquisitionFinished: (result, seconds) => acquisitionDuration.observe({ result }, seconds),
      refreshFailed: () => refreshFailures.inc()
    }
  })
  // eslint-disable-next-line no-new -- registered in the registry, read through collect()
  new Gauge({
    name: 'token_expires_in_seconds',
    help: 'Seconds until the held token expires (0 without one).',
    registers,
    collect () { this.set(provider.expiresInSeconds()) }
  })

  fastify.decorate('managedIdentity', provider)
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
