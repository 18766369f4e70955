import { createVerifier, type DecodedJwt, type TokenError } from 'fast-jwt'
import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import buildGetJwks from 'get-jwks'

export interface Identity {
  tenantId: string
  objectId: string
  appId: string
  roles: string[]
  tokenVersion: '1.0' | '2.0'
  managedIdentityResourceId?: string
  claims: Record<string, unknown>
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Who called, from a validated token; set on routes that declare config.auth. */
    identity: Identity | null
  }
  interface FastifyContextConfig {
    /** The app roles a route requires; any one of them suffices. */
    auth?: { roles: string[] }
  }
}

export interface AuthenticateOptions {
  tenants: string[]
  audiences: string[]
  authorityHost: string
}

interface OpenIdConfiguration { issuer: string }

async function fetchJson<T> (url: string): Promise<T> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5000) })
  if (!response.ok) throw new Error(`GET ${url}: ${response.status}`)
  return await response.json() as T
}

function challenge (reply: FastifyReply, status: 401 | 403, error: string, description: string, scope?: string) {
  const parts = [`Bearer error="${error}"`, `error_description="${description}"`]
  if (scope) parts.push(`scope="${scope}"`)
  return reply.code(status).header('www-authenticate', parts.join(', ')).send({ error, error_description: description })
}

/** Validates Entra access tokens on every route that declares config.auth. */
export const authenticatePlugin = fp<AuthenticateOptions>(async (fastify, options) => {
  const documents = await Promise.all(options.tenants.map((tenant) =>
    fetchJson<OpenIdConfiguration>(`${options.authorityHost}/${tenant}/v2.0/.well-known/openid-configuration`)))
  // Keys are found from the issuer named in the discovery document, never from token content.
  const getJwks = buildGetJwks({ max: 100, ttl: 12 * 3600_000, providerDiscovery: true })
  const domainByIssuer = new Map(documents.map((doc, index) => [doc.issuer, `${options.authorityHost}/${options.tenants[index]}/v2.0`]))

  const verify = createVerifier({
    algorithms: ['RS256'],
    allowedAud: options.audiences,
    allowedIss: [...domainByIssuer.keys()],
    requiredClaims: ['aud', 'iss', 'exp', 'nbf', 'tid'],
    clockTolerance: 300_000,
    cache: true,
    key: async ({ header, payload }: DecodedJwt) => {
      const domain = domainByIssuer.get(String(payload.iss))
      if (!domain || typeof header.kid !== 'string') throw new Error('no key for this token')
      return await getJwks.getPublicKey({ domain, kid: header.kid, alg: String(header.alg) })
    }
  })

  fastify.decorateRequest('identity', null)
  fastify.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const auth = request.routeOptions.config.auth
    if (!auth) return
    const header = request.headers.authorization
    const match = typeof header === 'string' ? /^Bearer ([A-Za-z0-9\-_.]+)$/.exec(header) : null
    if (!match) return challenge(reply, 401, 'invalid_token', 'a Bearer token is required')
    let claims: Record<string, unknown>
    try {
      claims = await verify(match[1] as string)
    } catch (error) {
      request.log.info({ code: (error as TokenError).code }, 'token rejected')
      return challenge(reply, 401, 'invalid_token', 'the token is not valid')
    }
    const roles = Array.isArray(claims.roles) ? claims.roles.filter((r): r is string => typeof r === 'string') : []
    if (!auth.roles.some((role) => roles.includes(role))) {
      return challenge(reply, 403, 'insufficient_scope', 'the token lacks a required role', auth.roles.join(' '))
    }
    request.identity = {
      tenantId: String(claims.tid),
      objectId: String(claims.oid),
      appId: String(claims.azp ?? claims.appid),
      roles,
      tokenVersion: claims.ver === '2.0' ? '2.0' : '1.0',
      ...(typeof claims.xms_mirid === 'string' ? { managedIdentityResourceId: claims.xms_mirid } : {}),
      claims
    }
  })
}, { name: 'authenticate', fastify: '5.x' })
