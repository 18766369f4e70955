// Peer: jose as its README shows it, createRemoteJWKSet + jwtVerify, behind a Fastify hook.
import Fastify from 'fastify'
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose'
import { loggerOptions } from '../../services/shared/logger.ts'
import { hasRole, serve, targetConfig } from './env.ts'

const config = targetConfig()
const jwks = createRemoteJWKSet(new URL(config.jwksUri))

declare module 'fastify' {
  interface FastifyRequest { claims: JWTPayload | null }
}

const app = Fastify({ logger: loggerOptions(config.logLevel) })
app.decorateRequest('claims', null)
app.addHook('onRequest', async (request, reply) => {
  const match = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')
  if (!match) return reply.code(401).send({ error: 'invalid_token' })
  try {
    const { payload } = await jwtVerify(match[1] as string, jwks, { issuer: config.issuer, audience: config.audiences, algorithms: ['RS256'] })
    request.claims = payload
  } catch {
    return reply.code(401).send({ error: 'invalid_token' })
  }
  if (!hasRole(request.claims, config.requiredRole)) return reply.code(403).send({ error: 'insufficient_scope' })
})
app.get('/claims', async (request) => request.claims)
await serve(app)
