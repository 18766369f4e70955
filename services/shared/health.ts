import fp from 'fastify-plugin'

/** A readiness check returns null when ready, or why it is not. */
export type ReadinessCheck = () => string | null

declare module 'fastify' {
  interface FastifyInstance {
    readiness: {
      /** Adds a check to GET /readyz. Liveness (GET /healthz) never depends on one. */
      add: (name: string, check: ReadinessCheck) => void
    }
  }
}

/** GET /healthz (the process is alive) and GET /readyz (every readiness check passes). */
export const healthPlugin = fp(async (fastify) => {
  const checks = new Map<string, ReadinessCheck>()
  fastify.decorate('readiness', { add: (name: string, check: ReadinessCheck) => { checks.set(name, check) } })

  fastify.get('/healthz', { config: { metrics: false }, logLevel: 'warn' }, async () => ({ status: 'ok' }))

  fastify.get('/readyz', { config: { metrics: false }, logLevel: 'warn' }, async (_request, reply) => {
    const failing: Record<string, string> = {}
    for (const [name, check] of checks) {
      const reason = check()
      if (reason !== null) failing[name] = reason
    }
    if (Object.keys(failing).length > 0) return reply.code(503).send({ status: 'not ready', checks: failing })
    return { status: 'ready' }
  })
}, { name: 'health', fastify: '5.x' })
