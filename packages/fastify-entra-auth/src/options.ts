import type { FastifyBaseLogger } from 'fastify'
import type { Registry } from 'prom-client'
import type { SignatureChecks, TokenVersion } from './token-validation.ts'

/**
 * Options of the `fastifyEntraAuth` plugin. Only `tenants` and `audiences` are required; every other
 * default is the value Microsoft.Identity.Web / Microsoft.IdentityModel uses, or stricter, with its
 * source on the option.
 */
export interface FastifyEntraAuthOptions {
  /**
   * The Entra tenants (directory ids, GUIDs) whose tokens are accepted. Each has its own discovery
   * documents and keys, loaded at start. Compared case-insensitively (lower-cased here).
   *
   * `'*'` (opt-in) makes a multi-tenant api: tokens of any tenant, as Microsoft.Identity.Web's
   * `{tenantid}` issuer template allows, with `iss` still bound to the token's own `tid` and `ver`.
   * A tenant's keys are then loaded on first use, only after the token's signature verified with a key
   * of the common JWKS (so forged tokens with random `tid`s cost no fetch), and at most `maxTenants` are
   * held. Authorizing which tenants may call is then the app's business (`request.identity.tenantId`).
   * Required: at least one tenant, or '*'.
   */
  tenants: readonly string[] | '*'
  /**
   * With `tenants: '*'`: tenants whose keys are held at once, tenants; past it the least recently used
   * one is dropped (and reloaded, two to four requests, if it comes back). Ignored for a list of tenants.
   * @default 1000
   */
  maxTenants?: number
  /**
   * Accepted `aud` values: the api's client id (v2 tokens carry it) and/or its App ID URI (v1 tokens,
   * e.g. `api://my-api`). An App ID URI also matches with or without a trailing slash, as
   * Microsoft's `IgnoreTrailingSlashWhenValidatingAudience` (default true) does. Required, at least one.
   */
  audiences: readonly string[]
  /**
   * Token versions (`ver`) accepted, each checked against its own discovery document and keys
   * (Microsoft Learn, access-tokens: "validate a v1 token against v1 metadata").
   * `['2.0']` when the api's registration sets `requestedAccessTokenVersion: 2`.
   * @default ['1.0', '2.0']
   */
  tokenVersions?: readonly TokenVersion[]
  /**
   * Where discovery documents are read: `{authorityHost}/{tenant}/v2.0/.well-known/openid-configuration`
   * and `{authorityHost}/{tenant}/.well-known/openid-configuration`. The public cloud's login host, a
   * national cloud's (see README, "Clouds"), or a local mock (http allowed). A trailing slash is ignored.
   * @default 'https://login.microsoftonline.com'
   */
  authorityHost?: string
  /**
   * The api's application (client) id, set when its app registration has its own signing key (claims
   * mapping, a custom signing key): Entra then signs the api's tokens with a key listed only under the
   * discovery document read with `?appid=<client id>` (Microsoft Learn, access-tokens, "Validate the
   * signature"). With it set, every discovery document is read that way. A GUID.
   * @default undefined (the tenant's keys)
   */
  signingKeysAppId?: string
  /**
   * Leeway applied to `exp` and `nbf`, in milliseconds.
   * Microsoft.IdentityModel `TokenValidationParameters.DefaultClockSkew` (300 s).
   * @default 300000
   */
  clockSkewMs?: number
  /**
   * Longer tokens are refused (401 malformed) before any decoding, in bytes (ASCII characters).
   * Microsoft's `DefaultMaximumTokenSizeInBytes` is 250 KiB; Entra managed-identity tokens are 1-2 KiB,
   * so a smaller cap bounds the work a hostile request can cause.
   * @default 8192
   */
  maxTokenBytes?: number
  /**
   * Where RSA signatures are checked: `'worker'` (one worker thread started at registration, sent the
   * checks of each round of I/O as one batch: a flood of distinct or forged tokens uses a second core,
   * and each check costs less CPU than inline; about 10-30 MB more RSS) or `'event-loop'` (crypto.verify
   * inline: no thread). Keys, caches and metrics stay one per api either way; if the worker fails, checks
   * go on inline and the failure is logged once. bench/README.md has both measured.
   * @default 'worker'
   */
  signatureChecks?: SignatureChecks
  /** Signing-key (discovery + JWKS) fetching. */
  jwks?: JwksOptions
  /** Caches of verified and accepted tokens. */
  tokenCache?: TokenCacheOptions
  /**
   * Where the metrics are registered (names in README, "Metrics").
   * @default prom-client's global `register`
   */
  registry?: Registry
  /**
   * The logger of the key store (`component: 'jwks'`) and of refusals.
   * @default the Fastify instance's logger (`fastify.log`); requests log through `request.log`
   */
  logger?: FastifyBaseLogger
}

export interface JwksOptions {
  /**
   * Background refresh of discovery and JWKS, in milliseconds, with ±10 % jitter.
   * Microsoft Learn, signing-key-rollover (2024-10-28): refresh in the background every hour.
   * (IdentityModel's `ConfigurationManager.DefaultAutomaticRefreshInterval` is 12 h; a refresh is also
   * how a key Entra removed stops being accepted, so 1 h bounds that window.) Minimum 100.
   * @default 3600000
   */
  refreshIntervalMs?: number
  /**
   * At most one JWKS fetch per this period for tokens with an unknown `kid`, in milliseconds
   * (single-flight). IdentityModel `ConfigurationManager.DefaultRefreshInterval` (5 min); signing-key-rollover:
   * "no more frequently than every 5 minutes".
   * @default 300000
   */
  cooldownMs?: number
  /**
   * Deadline of every discovery or JWKS request, from connect to the last byte, in milliseconds.
   * @default 5000
   */
  fetchTimeoutMs?: number
  /**
   * After a failed fetch, retries come after 1 s, 2 s, 4 s ... up to this, in milliseconds.
   * @default 60000
   */
  retryMaxMs?: number
}

export interface TokenCacheOptions {
  /**
   * Accepted tokens remembered by their exact text and signing key (the one verified-token cache), in
   * entries. `0` turns it off. Rejections are never remembered.
   * @default 1000
   */
  size?: number
  /**
   * The same cache's bound in bytes, each entry counted as its token's length, three times its payload's
   * JSON length and 256 (`acceptedEntryBytes`); the oldest entries go first. Minimum 65536.
   * @default 8388608 (8 MiB: 1,000 Entra tokens of 1.5 KiB take about 4 MiB)
   */
  maxBytes?: number
  /**
   * Longest life of a cache entry, in milliseconds; never beyond the token's `exp` plus the clock skew.
   * @default 600000
   */
  ttlMs?: number
}

/** The options with every default applied: what the plugin runs with. */
export interface ResolvedOptions {
  tenants: string[] | '*'
  maxTenants: number
  audiences: string[]
  tokenVersions: TokenVersion[]
  authorityHost: string
  signingKeysAppId: string | undefined
  clockSkewMs: number
  maxTokenBytes: number
  signatureChecks: SignatureChecks
  jwks: Required<JwksOptions>
  tokenCache: Required<TokenCacheOptions>
}

/** The defaults, with the source of each on FastifyEntraAuthOptions. */
export const DEFAULTS = Object.freeze({
  tokenVersions: Object.freeze(['1.0', '2.0'] as TokenVersion[]),
  authorityHost: 'https://login.microsoftonline.com',
  clockSkewMs: 300_000,
  maxTokenBytes: 8192,
  signatureChecks: 'worker' as SignatureChecks,
  maxTenants: 1000,
  jwks: Object.freeze({ refreshIntervalMs: 3_600_000, cooldownMs: 300_000, fetchTimeoutMs: 5000, retryMaxMs: 60_000 }),
  tokenCache: Object.freeze({ size: 1000, maxBytes: 8 * 1024 * 1024, ttlMs: 600_000 })
})

/** Options Fastify's own `register` may leave on a plugin's options object. */
const FASTIFY_REGISTER_OPTIONS = new Set(['prefix', 'logLevel', 'logSerializers'])

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** Thrown at registration for an option that cannot work; the message names the option. */
export class EntraAuthOptionsError extends TypeError {
  override name = 'EntraAuthOptionsError'
  readonly option: string
  constructor (option: string, message: string) {
    super(`fastify-entra-auth: option ${option} ${message}`)
    this.option = option
  }
}

function signatureChecks (value: unknown): SignatureChecks {
  if (value === undefined) return DEFAULTS.signatureChecks
  if (value !== 'worker' && value !== 'event-loop') throw new EntraAuthOptionsError('signatureChecks', `must be 'worker' or 'event-loop', got ${JSON.stringify(value)}`)
  return value
}

function integer (option: string, value: number | undefined, fallback: number, minimum: number, maximum = 7 * 86_400_000): number {
  if (value === undefined) return fallback
  // A string such as '300000' (from an environment variable) is a type error, not a range error.
  if (typeof value !== 'number') throw new EntraAuthOptionsError(option, `must be a number (an integer from ${minimum} to ${maximum}), got ${describe(value)}`)
  if (!Number.isInteger(value) || value < minimum || value > maximum) {
    throw new EntraAuthOptionsError(option, `must be an integer from ${minimum} to ${maximum}, got ${String(value)}`)
  }
  return value
}

/** A value as an error message shows it: its type when that is the mistake, e.g. `a string ("300000")`. */
function describe (value: unknown): string {
  if (typeof value === 'string') return `a string (${JSON.stringify(value)})`
  if (Array.isArray(value)) return 'an array'
  if (value === null) return 'null'
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`
}

/*
 * The option names each object accepts. A misspelled option (`clockSkewMS`, `jwks.refreshIntervalMS`)
 * would otherwise be ignored and its default used without a word; TypeScript catches it only in
 * object literals, not in options built from config files or spread from elsewhere.
 */
const KNOWN: Record<string, readonly string[]> = {
  '': ['tenants', 'maxTenants', 'audiences', 'tokenVersions', 'authorityHost', 'signingKeysAppId', 'clockSkewMs', 'maxTokenBytes', 'signatureChecks', 'jwks', 'tokenCache', 'registry', 'logger'],
  jwks: ['refreshIntervalMs', 'cooldownMs', 'fetchTimeoutMs', 'retryMaxMs'],
  tokenCache: ['size', 'maxBytes', 'ttlMs']
}

/** The object at `path` ('' for the options themselves), refusing a non-object and unknown names. */
function knownObject (path: string, value: unknown): Record<string, unknown> {
  if (value === undefined && path !== '') return {}
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new EntraAuthOptionsError(path === '' ? '(all)' : path, `must be an object, got ${describe(value)}`)
  }
  const known = KNOWN[path] as readonly string[]
  for (const name of Object.keys(value)) {
    if (known.includes(name)) continue
    // fastify.register passes no options of its own through (prefix, logLevel ... are removed), but
    // its encapsulation options may appear when the plugin is registered with them: tolerated.
    if (path === '' && FASTIFY_REGISTER_OPTIONS.has(name)) continue
    const near = known.find((candidate) => candidate.toLowerCase() === name.toLowerCase())
    const option = path === '' ? name : `${path}.${name}`
    throw new EntraAuthOptionsError(option, `is not an option${near === undefined ? '' : ` (did you mean ${path === '' ? near : `${path}.${near}`}?)`}; known: ${known.join(', ')}`)
  }
  return value as Record<string, unknown>
}

/** A list option: an array of non-empty strings. */
function stringList (option: string, value: unknown, what: string): string[] {
  if (value === undefined) return []
  if (!Array.isArray(value)) throw new EntraAuthOptionsError(option, `must be an array of ${what}, got ${describe(value)}`)
  for (const item of value) {
    if (typeof item !== 'string' || item === '') throw new EntraAuthOptionsError(option, `must be an array of ${what}, got an item that is ${item === '' ? 'an empty string' : describe(item)}`)
  }
  return value as string[]
}

/** Applies the defaults and checks every option; throws EntraAuthOptionsError naming the first bad one. */
export function resolveOptions (options: FastifyEntraAuthOptions): ResolvedOptions {
  knownObject('', options)
  const tenants = options.tenants === '*'
    ? '*'
    : [...new Set(stringList('tenants', options.tenants, 'tenant ids (GUIDs), or the string \'*\' for any tenant').map((tenant) => tenant.toLowerCase()))]
  if (tenants.length === 0) throw new EntraAuthOptionsError('tenants', 'must list at least one tenant id, or be \'*\' (any tenant)')
  if (tenants !== '*') for (const tenant of tenants) if (!GUID.test(tenant)) throw new EntraAuthOptionsError('tenants', `must be tenant ids (GUIDs), got "${tenant}"`)
  const audiences = stringList('audiences', options.audiences, 'audiences (client ids or App ID URIs)')
  if (audiences.length === 0) throw new EntraAuthOptionsError('audiences', 'must list at least one audience (client id or App ID URI)')
  if (options.tokenVersions !== undefined && !Array.isArray(options.tokenVersions)) {
    throw new EntraAuthOptionsError('tokenVersions', `must be an array of "1.0" and/or "2.0", got ${describe(options.tokenVersions)}`)
  }
  const tokenVersions = [...new Set(options.tokenVersions ?? DEFAULTS.tokenVersions)].sort()
  if (tokenVersions.length === 0 || tokenVersions.some((version) => version !== '1.0' && version !== '2.0')) {
    throw new EntraAuthOptionsError('tokenVersions', 'must be a non-empty list of "1.0" and/or "2.0"')
  }
  if (options.authorityHost !== undefined && typeof options.authorityHost !== 'string') {
    throw new EntraAuthOptionsError('authorityHost', `must be a string (an absolute http(s) URL), got ${describe(options.authorityHost)}`)
  }
  if (options.signingKeysAppId !== undefined && typeof options.signingKeysAppId !== 'string') {
    throw new EntraAuthOptionsError('signingKeysAppId', `must be a string (a GUID), got ${describe(options.signingKeysAppId)}`)
  }
  const authorityHost = (options.authorityHost ?? DEFAULTS.authorityHost).replace(/\/+$/, '')
  let authority: URL
  try {
    authority = new URL(authorityHost)
  } catch {
    throw new EntraAuthOptionsError('authorityHost', `must be an absolute http(s) URL, got "${authorityHost}"`)
  }
  if (authority.protocol !== 'https:' && authority.protocol !== 'http:') throw new EntraAuthOptionsError('authorityHost', 'must be an http(s) URL')
  const signingKeysAppId = options.signingKeysAppId === undefined ? undefined : String(options.signingKeysAppId).toLowerCase()
  if (signingKeysAppId !== undefined && !GUID.test(signingKeysAppId)) {
    throw new EntraAuthOptionsError('signingKeysAppId', `must be the api's application (client) id, a GUID, got "${signingKeysAppId}"`)
  }
  const jwks = knownObject('jwks', options.jwks) as JwksOptions
  const cache = knownObject('tokenCache', options.tokenCache) as TokenCacheOptions
  return {
    tenants,
    maxTenants: integer('maxTenants', options.maxTenants, DEFAULTS.maxTenants, 1, 1_000_000),
    audiences,
    tokenVersions,
    authorityHost,
    signingKeysAppId,
    clockSkewMs: integer('clockSkewMs', options.clockSkewMs, DEFAULTS.clockSkewMs, 0, 3_600_000),
    maxTokenBytes: integer('maxTokenBytes', options.maxTokenBytes, DEFAULTS.maxTokenBytes, 1024, 256_000),
    signatureChecks: signatureChecks(options.signatureChecks),
    jwks: {
      refreshIntervalMs: integer('jwks.refreshIntervalMs', jwks.refreshIntervalMs, DEFAULTS.jwks.refreshIntervalMs, 100),
      cooldownMs: integer('jwks.cooldownMs', jwks.cooldownMs, DEFAULTS.jwks.cooldownMs, 0),
      fetchTimeoutMs: integer('jwks.fetchTimeoutMs', jwks.fetchTimeoutMs, DEFAULTS.jwks.fetchTimeoutMs, 100),
      retryMaxMs: integer('jwks.retryMaxMs', jwks.retryMaxMs, DEFAULTS.jwks.retryMaxMs, 100)
    },
    tokenCache: {
      size: integer('tokenCache.size', cache.size, DEFAULTS.tokenCache.size, 0, 1_000_000),
      maxBytes: integer('tokenCache.maxBytes', cache.maxBytes, DEFAULTS.tokenCache.maxBytes, 65_536, 2 ** 31),
      ttlMs: integer('tokenCache.ttlMs', cache.ttlMs, DEFAULTS.tokenCache.ttlMs, 0)
    }
  }
}
