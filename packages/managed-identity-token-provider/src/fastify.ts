import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram } from 'prom-client'
import type { IdentitySelector } from '../config.ts'
import { IdentityEndpoint } from '../identity/endpoint.ts'
import { ManagedIdentityTokenProvider, type TokenProviderSettings } from '../identity/token-provider.ts'

export { TokenUnavailableError } from '../identity/token-provider.ts'

declare module 'fastify' {
  interface FastifyInstance {
    tokenProvider: ManagedIdentityTokenProvider
  }
}

export interface TokenProviderPluginOptions {
  scope: string
  selector: IdentitySelector
  attemptTimeoutMs: number
  settings: TokenProviderSettings
}

/**
 * The managed identity token provider, its metrics, its readiness check, and its lifecycle: the
 * token is warmed in the background once the app is ready (listening never waits for Azure), and
 * the refresh timer stops when the app closes.
 */
export const tokenProviderPlugin = fp<TokenProviderPluginOptions>(async (fastify, options) => {
  const registers = [fastify.metrics]
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

  const endpoint = new IdentityEndpoint({
    scope: options.scope,
    selector: options.selector,
    attemptTimeoutMs: options.attemptTimeoutMs,
    onExchange: (result) => tokenRequests.inc({ source: 'endpoint', result })
  })
  const provider = new ManagedIdentityTokenProvider({
    source: endpoint,
    settings: options.settings,
    log: fastify.log.child({ component: 'token-provider' }),
    observer: {
      servedFromCache: () => tokenRequests.inc({ source: 'cache', result: 'success' }),
      acquisitionFinished: (result, seconds) => acquisitionDuration.observe({ result }, seconds),
      refreshFailed: () => refreshFailures.inc()
    }
  })
  // eslint-disable-next-line no-new -- registered in the app's registry, read through collect()
  new Gauge({
    name: 'token_expires_in_seconds',
    help: 'Seconds until the held token expires (0 without one).',
    registers,
    collect () { this.set(provider.expiresInSeconds()) }
  })

  fastify.decorate('tokenProvider', provider)
  fastify.readiness.add('token', () => provider.readiness())
  fastify.addHook('onReady', async () => { provider.start() })
  fastify.addHook('onClose', async () => { provider.close() })
}, { name: 'token-provider', fastify: '5.x', dependencies: ['metrics', 'health'] })
