import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import {
  authorize, createTokenValidator, parseAuthorization,
  type Identity, type Rejection, type ValidationResult
} from '../auth/token-validation.ts'
import type { TokenVersion } from '../config.ts'
import type { AuthResult } from './auth-metrics.ts'

export type { Identity } from '../auth/token-validation.ts'

declare module 'fastify' {
  interface FastifyRequest {
    /** Who called, from a validated app-only token; set on routes that declare config.auth, else null. */
    identity: Identity | null
  }
  interface FastifyContextConfig {
    /** The app roles a route requires; any one of them suffices. */
    auth?: { roles: readonly string[] }
  }
}

export interface AuthenticateOptions {
  tenants: string[]
  audiences: string[]
  versions: TokenVersion[]
  maxTokenBytes: number
  acceptedCache?: { size: number, ttlMs: number, clockToleranceMs: number }
}

const resultOf = (status: Rejection['status']): AuthResult =>
  status === 403 ? 'forbidden' : status === 503 ? 'unavailable' : 'rejected'

/** Every Authorization header as sent: Node's request.headers keeps only the first of duplicates. */
function authorizationValues (rawHeaders: string[]): string[] {
  const values: string[] = []
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string
    if (name.length === 13 && name.toLowerCase() === 'authorization') values.push(rawHeaders[i + 1] as string)
  }
  return values
}

// RFC 6750 §2.3 tokens in the URI end up in logs and proxies: refused rather than ignored.
const tokenInQuery = (url: string) => { const q = url.indexOf('?'); return q >= 0 && /[?&]access_token=/.test(url.slice(q)) }

/** RFC 6750 §3: scope-tokens separated by single spaces. */
const SCOPE = /^[\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*$/

/** RFC 6750 §3: realm-less, the error, a fixed description (never token content) and the scope on 403. */
function challenge (rejection: Rejection): string {
  let value = `Bearer error="${rejection.error}", error_description="${rejection.description}"`
  // Role values come from code and config, but a quote or a non-ASCII character must not break the header.
  if (rejection.scope !== undefined && SCOPE.test(rejection.scope)) value += `, scope="${rejection.scope}"`
  return value
}

function send (reply: FastifyReply, rejection: Rejection) {
  reply.code(rejection.status).header('www-authenticate', challenge(rejection)).header('cache-control', 'no-store')
  if (rejection.retryAfterSeconds !== undefined) reply.header('retry-after', String(rejection.retryAfterSeconds))
  reply.send({ error: rejection.error, error_description: rejection.description })
}

/**
 * Authenticates every route that declares config.auth = { roles } in onRequest (so bodies of refused
 * requests are never parsed), authorizes by app role, and puts the typed identity on request.identity.
 */
export const authenticatePlugin = fp<AuthenticateOptions>(async (fastify, options) => {
  const validate = createTokenValidator({ ...options, keys: fastify.keyStore })
  const metrics = fastify.authMetrics

  /** Answers the refusal itself and says so (true), or puts the identity on the request (false). */
  async function authenticate (request: FastifyRequest, reply: FastifyReply, roles: readonly string[]): Promise<boolean> {
    const started = performance.now()
    let outcome: ValidationResult
    const parsed = parseAuthorization(authorizationValues(request.raw.rawHeaders), options.maxTokenBytes)
    if (!parsed.ok) {
      outcome = parsed
    } else if (tokenInQuery(request.url)) {
      outcome = { ok: false, status: 400, error: 'invalid_request', reason: 'malformed', description: 'send the token in the Authorization header only' }
    } else {
      try {
        outcome = await validate(parsed.token)
      } catch (error) {
        // A bug of ours, not the caller's: logged loudly, answered as a rejection, never a crash.
        request.log.error({ err: error }, 'token validation threw')
        outcome = { ok: false, status: 401, error: 'invalid_token', reason: 'malformed', description: 'the token is malformed' }
      }
    }
    const denied = outcome.ok ? authorize(outcome.identity, roles) : outcome
    const seconds = (performance.now() - started) / 1000
    const fromCache = outcome.ok ? outcome.fromCache : undefined
    if (denied) {
      metrics.record(resultOf(denied.status), denied.reason, seconds, fromCache)
      request.log.info({ auth: { status: denied.status, reason: denied.reason } }, 'request not authorized')
      send(reply, denied)
      return true
    }
    metrics.record('accepted', 'none', seconds, fromCache)
    request.identity = (outcome as { identity: Identity }).identity
    return false
  }

  fastify.decorateRequest('identity', null)
  // A root onRequest hook covers every route whenever it was registered, so a route that declares
  // config.auth can never end up unprotected by plugin order; routes without it pay one property read.
  fastify.addHook('onRequest', async (request, reply) => {
    const roles = request.routeOptions.config.auth?.roles
    if (roles !== undefined && await authenticate(request, reply, roles)) return reply
  })
}, { name: 'authenticate', fastify: '5.x', dependencies: ['key-store', 'auth-metrics'] })
