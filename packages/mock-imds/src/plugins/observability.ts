import fp from 'fastify-plugin'
import { Histogram, Registry, collectDefaultMetrics } from 'prom-client'

declare module 'fastify' {
  interface FastifyInstance {
    /** The registry GET /metrics serves: the one passed in options, or the server's own. */
    metrics: Registry
  }
}

/**
 * GET /metrics (Prometheus text), GET /healthz and GET /readyz. The mock has no dependency to wait
 * for, so it is ready as soon as it answers; the probes exist because compose and Kubernetes ask.
 * The HTTP histogram keeps the name and labels every msi-pair service exports, so one dashboard
 * query covers the mock too.
 */
export const observabilityPlugin = fp<{ registry: Registry | undefined }>(async (fastify, { registry: given }) => {
  const registry = given ?? new Registry()
  if (!given) {
    registry.setDefaultLabels({ service: 'mock-imds' })
    collectDefaultMetrics({ register: registry })
  }
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Duration of HTTP requests served, by method, route template and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry]
  })
  fastify.decorate('metrics', registry)

  const quiet = { config: { probe: true }, logLevel: 'warn' } as const
  fastify.addHook('onResponse', async (request, reply) => {
    if (request.routeOptions.config.probe === true) return
    // The route template, never the raw URL: labels stay bounded whatever clients send.
    duration.observe({ method: request.method, route: request.routeOptions.url ?? 'unmatched', status_code: String(reply.statusCode) }, reply.elapsedTime / 1000)
  })
  fastify.get('/metrics', quiet, async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()))
  fastify.get('/healthz', quiet, async () => ({ status: 'ok' }))
  fastify.get('/readyz', quiet, async () => ({ status: 'ready' }))
}, { name: 'mock-imds-observability', fastify: '5.x' })

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Probes and the scrape itself stay out of the request histogram. */
    probe?: boolean
  }
}
