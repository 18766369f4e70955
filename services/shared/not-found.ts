import fp from 'fastify-plugin'
import { redactUrl } from './logger.ts'

/**
 * Fastify's default 404 body echoes the request URL, so a token sent in a query string (RFC 6750 §2.3,
 * which no route here accepts) would come back in the answer and land in whatever logs that answer.
 * Same body shape as Fastify's, with the URL's credentials blanked out.
 */
export const notFoundPlugin = fp(async (fastify) => {
  fastify.setNotFoundHandler((request, reply) => {
    reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `Route ${request.method}:${redactUrl(request.url)} not found` })
  })
}, { name: 'not-found', fastify: '5.x' })
