// Peer: the Fastify plugin's documented pattern, @fastify/jwt with get-jwks as its secret. The
// README passes the token's own iss as the JWKS domain; that is an SSRF hole (research §4.3), so
// the domain is pinned to the configured tenant here, with get-jwks's allow-list set too.
import Fastify from 'fastify'
import fastifyJwt from '@fastify/jwt'
import buildGetJwks from 'get-jwks'
import { loggerOptions } from '../../services/shared/logger.ts'
import { hasRole, serve, targetConfig } from './env.ts'

const config = targetConfig()
const domain = `${config.issuerUrl}/${config.tenantId}/v2.0/`
const getJwks = buildGetJwks({ providerDiscovery: true, issuersWhitelist: [domain] })

const app = Fastify({ logger: loggerOptions(config.logLevel) })
await app.register(fastifyJwt, {
  decode: { complete: true },
  secret: async (_request: unknown, token: unknown) => {
    const { header } = token as { header: { kid: string, alg: string } }
    return await getJwks.getPublicKey({ kid: header.kid, alg: header.alg, domain })
  },
  verify: { allowedAud: config.audiences, allowedIss: config.issuer, algorithms: ['RS256'] }
})
app.addHook('onRequest', async (request, reply) => {
  try {
    await request.jwtVerify()
  } catch {
    return reply.code(401).send({ error: 'invalid_token' })
  }
  if (!hasRole(request.user as { roles?: unknown }, config.requiredRole)) return reply.code(403).send({ error: 'insufficient_scope' })
})
app.get('/claims', async (request) => request.user)
await serve(app)
