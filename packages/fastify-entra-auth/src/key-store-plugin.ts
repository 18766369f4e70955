import fp from 'fastify-plugin'
import { KeyStore, type KeyStoreOptions } from '../auth/jwks.ts'

declare module 'fastify' {
  interface FastifyInstance {
    keyStore: KeyStore
  }
}

/** The key store's settings; the plugin supplies the logger and the metrics hook itself. */
export type KeyStorePluginOptions = Omit<KeyStoreOptions, 'log' | 'onFetch'>

/**
 * The tenants' signing keys, loaded before the app is ready. The first attempt per tenant is awaited
 * (bounded by the fetch timeout) so that a healthy start serves at once; if the authority is down the
 * app still starts, reports not ready on GET /readyz and answers 503 until a background retry succeeds.
 */
export const keyStorePlugin = fp<KeyStorePluginOptions>(async (fastify, options) => {
  const store = new KeyStore({
    ...options,
    log: fastify.log.child({ component: 'jwks' }),
    onFetch: (tenant, result) => fastify.authMetrics.jwksFetch(tenant, result)
  })
  fastify.authMetrics.watchKeys(store)
  fastify.decorate('keyStore', store)
  fastify.readiness.add('jwks', () => store.notReadyReason())
  fastify.addHook('onClose', async () => { store.stop() })
  await store.start()
}, { name: 'key-store', fastify: '5.x', dependencies: ['health', 'auth-metrics'] })
