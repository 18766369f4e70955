import type { FastifyBaseLogger, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { register as globalRegistry } from 'prom-client'
import { KeyStore } from './key-store.ts'
import { createAuthMetrics, type AuthResult } from './metrics.ts'
import { SignatureWorker } from './signature-worker.ts'
import { resolveOptions, type FastifyEntraAuthOptions } from './options.ts'
import {
  SCOPE_TOKEN, authorize, bearerCandidate, checkB64token, createTokenValidator, expandAudiences, parseAuthorization, withRequiredRoles,
  type Identity, type Rejection, type ValidationResult
} from './token-validation.ts'

declare module 'fastify' {
  interface FastifyRequest {
    /** Who called, from a validated app-only token; set on routes that declare config.auth, else null. */
    identity: Identity | null
  }
  interface FastifyContextConfig {
    /** The app roles a route requires; any one of them suffices (ordinal, case-sensitive). */
    auth?: { roles: readonly string[] }
  }
  interface FastifyInstance {
    /** The fastify-entra-auth decorator: readiness, the key store and the validator. */
    entraAuth: EntraAuth
  }
}

/** What `fastify.entraAuth` exposes. */
export interface EntraAuth {
  /**
   * null once every configured tenant's keys (per accepted token version) are loaded, else which are
   * missing. Wire it into the app's readiness probe; tokens of a tenant without keys get 503.
   */
  notReadyReason: () => string | null
  /** The signing keys of the configured tenants (refreshes, unknown-kid refetches, key counts). */
  keyStore: KeyStore
  /** The framework-free validator the hook uses: token text -> identity or RFC 6750 rejection. */
  validate: (token: string) => Promise<ValidationResult>
  /**
   * How long the oldest signature check sent to the worker thread has waited for its answer, in ms; 0
   * when none is waiting or with `signatureChecks: 'event-loop'` (where the event loop's own delay
   * shows the backlog). Read it in a load shedder next to the event loop's delay: past capacity the
   * checks queue on the worker while the loop still looks idle.
   */
  signatureCheckDelayMs: () => number
  /**
   * Whether the request's Bearer token (found in its raw headers, `request.raw.rawHeaders` or Node's
   * `IncomingMessage.rawHeaders`) is held in the verified-token cache now, so that authenticating it costs
   * no signature check. A load shedder that sheds because signature checks queue (signatureCheckDelayMs)
   * should let such requests through: refusing them frees nothing, and would let a flood of forged
   * signatures turn away every caller whose token is already known.
   */
  holdsToken: (rawHeaders: string[]) => boolean
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
const QUERY_TOKEN: Rejection = Object.freeze({ ok: false, status: 400, error: 'invalid_request', reason: 'malformed', description: 'send the token in the Authorization header only' })

/** RFC 6750 §3: realm-less, the error, a fixed description (never token content) and the scope on 403. */
function challenge (rejection: Rejection): string {
  let value = `Bearer error="${rejection.error}", error_description="${rejection.description}"`
  // Routes' roles are checked to be scope-tokens when the route is added (onRoute below).
  if (rejection.scope !== undefined) value += `, scope="${rejection.scope}"`
  return value
}

function send (reply: FastifyReply, rejection: Rejection) {
  reply.code(rejection.status).header('www-authenticate', challenge(rejection)).header('cache-control', 'no-store')
  if (rejection.retryAfterSeconds !== undefined) reply.header('retry-after', String(rejection.retryAfterSeconds))
  reply.send({ error: rejection.error, error_description: rejection.description })
}

/**
 * Entra access-token authentication and app-role authorization for Fastify.
 *
 * Every route that declares `config: { auth: { roles } }` is authenticated in a root `onRequest` hook
 * (so bodies of refused requests are never parsed); an accepted caller's identity is on
 * `request.identity`. Refusals are answered with RFC 6750 challenges. The signing keys of every
 * configured tenant are loaded during registration (one attempt each, bounded by
 * `jwks.fetchTimeoutMs`); if the authority is down the app still starts, `entraAuth.notReadyReason()`
 * says which keys are missing, and those tenants' tokens get 503 until a background retry succeeds.
 *
 * Throws EntraAuthOptionsError at registration for an invalid option.
 */
const plugin: FastifyPluginAsync<FastifyEntraAuthOptions> = async (fastify, rawOptions) => {
  const options = resolveOptions(rawOptions)
  const log: FastifyBaseLogger = rawOptions.logger ?? fastify.log
  const metrics = createAuthMetrics(rawOptions.registry ?? globalRegistry)
  const { clockSkewMs, maxTokenBytes } = options
  const cache = { ...options.tokenCache, clockToleranceMs: clockSkewMs }

  const keyStore = new KeyStore({
    authorityHost: options.authorityHost,
    ...(options.signingKeysAppId === undefined ? {} : { appId: options.signingKeysAppId }),
    tenants: options.tenants,
    maxTenants: options.maxTenants,
    versions: options.tokenVersions,
    verifier: { audiences: expandAudiences(options.audiences), clockToleranceMs: clockSkewMs },
    refreshIntervalMs: options.jwks.refreshIntervalMs,
    cooldownMs: options.jwks.cooldownMs,
    timeoutMs: options.jwks.fetchTimeoutMs,
    retryMaxMs: options.jwks.retryMaxMs,
    log: log.child({ component: 'jwks' }),
    onFetch: (tenant, result) => metrics.jwksFetch(tenant, result)
  })
  metrics.watchKeys(keyStore)
  const signatureWorker = options.signatureChecks === 'worker'
    ? new SignatureWorker({ onError: (error) => { log.error({ err: error }, 'the signature worker failed: signatures are checked on the event loop from now on') } })
    : undefined
  const validate = createTokenValidator({
    tenants: options.tenants,
    audiences: options.audiences,
    versions: options.tokenVersions,
    maxTokenBytes,
    keys: keyStore,
    clockSkewMs,
    signatureChecks: options.signatureChecks,
    ...(signatureWorker === undefined ? {} : { signatureWorker }),
    acceptedCache: cache
  })

  /** Puts an accepted caller's identity on the request and counts it. */
  function accept (request: FastifyRequest, identity: Identity, started: number, fromCache: boolean): void {
    metrics.record('accepted', 'none', (performance.now() - started) / 1000, fromCache)
    request.identity = identity
  }

  /** Answers the refusal and counts it. */
  function refuse (request: FastifyRequest, reply: FastifyReply, denied: Rejection, started: number, fromCache: boolean | undefined): void {
    metrics.record(resultOf(denied.status), denied.reason, (performance.now() - started) / 1000, fromCache)
    request.log.info({ auth: { status: denied.status, reason: denied.reason } }, 'request not authorized')
    send(reply, denied)
  }

  /** The whole check, for everything but a held token with the route's role: true when it answered a refusal. */
  async function authenticate (request: FastifyRequest, reply: FastifyReply, roles: readonly string[], parsed: ReturnType<typeof parseAuthorization>, started: number): Promise<boolean> {
    let outcome: ValidationResult
    if (tokenInQuery(request.url)) {
      // With or without a header: the URI query method (RFC 6750 §2.3) is a parameter this api does not
      // support, so 400 invalid_request (§3.1) telling the client where the token goes, not a 401 that
      // says none was sent.
      outcome = QUERY_TOKEN
    } else if (!parsed.ok) {
      outcome = parsed
    } else {
      try {
        outcome = await validate(parsed.token)
      } catch (error) {
        // A bug of ours, not the caller's: logged loudly, answered as a rejection, never a crash.
        request.log.error({ err: error }, 'token validation threw')
        outcome = { ok: false, status: 401, error: 'invalid_token', reason: 'malformed', description: 'the token is malformed' }
      }
    }
    const denied = outcome.ok ? authorize(outcome.identity, roles) : withRequiredRoles(outcome, roles)
    const fromCache = outcome.ok ? outcome.fromCache : undefined
    if (denied) {
      refuse(request, reply, denied, started, fromCache)
      return true
    }
    accept(request, (outcome as { identity: Identity }).identity, started, fromCache as boolean)
    return false
  }

  fastify.decorate('entraAuth', {
    notReadyReason: () => keyStore.notReadyReason(),
    keyStore,
    validate,
    signatureCheckDelayMs: () => signatureWorker?.delayMs() ?? 0,
    holdsToken: (rawHeaders) => {
      const bearer = bearerCandidate(authorizationValues(rawHeaders), maxTokenBytes)
      return typeof bearer === 'string' && validate.cached(bearer) !== undefined
    }
  } satisfies EntraAuth)
  fastify.decorateRequest('identity', null)
  // A role goes into the scope attribute of a 403 challenge: one that cannot (a space, a quote, a
  // non-ASCII character) fails the route's registration instead of producing a broken header.
  fastify.addHook('onRoute', (route) => {
    const auth: unknown = route.config?.auth
    if (auth === undefined) return
    const roles = (auth as { roles?: unknown }).roles
    if (!Array.isArray(roles) || !roles.every((role) => typeof role === 'string' && SCOPE_TOKEN.test(role))) {
      throw new TypeError(`fastify-entra-auth: route ${route.method} ${route.url}: config.auth.roles must be an array of app role values, each printable ASCII without space, '"' or '\\' (RFC 6750 §3 scope-token)`)
    }
  })
  // A root onRequest hook covers every route whenever it was registered, so a route that declares
  // config.auth can never end up unprotected by plugin order; routes without it pay one property read.
  //
  // A callback hook, not an async one: a managed identity's token, held in the verified-token cache, is
  // answered synchronously, without the three promises and microtask turns of the async path, which
  // were a third of what auth added to a reused-token request (bench row 2 against row 1b).
  fastify.addHook('onRequest', (request, reply, done) => {
    const roles = request.routeOptions.config.auth?.roles
    if (roles === undefined) { done(); return }
    const started = performance.now()
    const bearer = bearerCandidate(authorizationValues(request.raw.rawHeaders), maxTokenBytes)
    const held = typeof bearer === 'string' && !tokenInQuery(request.url) ? validate.cached(bearer) : undefined
    if (held !== undefined && authorize(held, roles) === null) {
      accept(request, held, started, true)
      done()
      return
    }
    authenticate(request, reply, roles, typeof bearer === 'string' ? checkB64token(bearer) : bearer, started).then((answered) => { if (!answered) done() }, done)
  })
  fastify.addHook('onClose', async () => {
    keyStore.stop()
    await signatureWorker?.close()
  })
  await keyStore.start()
}

/**
 * The Fastify plugin (wrapped once with fastify-plugin, name `fastify-entra-auth`, Fastify 5).
 * `await app.register(fastifyEntraAuth, { tenants: [...], audiences: [...] })`.
 */
export const fastifyEntraAuth = fp(plugin, { name: 'fastify-entra-auth', fastify: '5.x' })
