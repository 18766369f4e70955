import type { FastifyPluginAsync } from 'fastify'
import { TokenUnavailableError } from '../plugins/token-provider.ts'

/** GET /call: get a token with the managed identity, call the api, answer with the claims it saw. */
export const callRoutes: FastifyPluginAsync = async (fastify) => {
  fastify.get('/call', async (request, reply) => {
    let token: string
    try {
      token = await fastify.tokenProvider.getToken()
    } catch (error) {
      if (!(error instanceof TokenUnavailableError)) throw error
      request.log.warn({ err: error }, 'no token from the identity endpoint')
      return reply.code(503).send({ error: 'token_unavailable', message: error.message })
    }
    const response = await fastify.apiClient.get('/claims', token)
    if (response.status !== 200) {
      return reply.code(502).send({
        error: 'api_rejected',
        message: `the api answered ${response.status}`,
        upstream: { status: response.status, wwwAuthenticate: response.wwwAuthenticate, body: response.body }
      })
    }
    return response.body
  })
}
