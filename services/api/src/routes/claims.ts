import type { FastifyPluginAsync } from 'fastify'

/** GET /claims: the validated token's claims, what the caller proves about itself. */
export const claimsRoutes: FastifyPluginAsync<{ roles: string[] }> = async (fastify, { roles }) => {
  fastify.get('/claims', { config: { auth: { roles } } }, async (request) => request.identity?.claims)
}
