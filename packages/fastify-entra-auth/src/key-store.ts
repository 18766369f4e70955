import { createPublicKey, verify as verifySignature, type KeyObject } from 'node:crypto'
import { createVerifier } from 'fast-jwt'
import { jwksUriAllowed } from './clouds.ts'
import type { TokenVersion } from './token-validation.ts'

/*
 * Entra signing keys per tenant and token version, kept the way Microsoft's own ConfigurationManager
 * keeps them (shared/research/entra-token-validation.md §1.5, §2.6).
 *
 * Why not get-jwks, which the issue names for keys: we measured (package README, "Why not get-jwks")
 * that its documented timeout is ignored since it moved to fetch (a 4 s endpoint with timeout: 1000
 * resolved after 4059 ms), that every unknown kid costs a JWKS fetch (no cooldown, no single-flight
 * across kids), that it caches single JWKs by (alg, kid, domain) so it can never tell that a key
 * left the JWKS, and that it keeps stale keys for one more ttl only. Each of those is a requirement
 * here, so we fetch the whole JWKS ourselves (fetch + AbortSignal.timeout per request) and turn a
 * JWK into a key with node:crypto's createPublicKey({ format: 'jwk' }) (2.5 µs, no library; get-jwks'
 * jwk-to-pem conversion was the one part worth taking, and Node does it natively).
 */

/** Entra kids are base64url SHA-1 thumbprints (27 chars); anything outside this never reaches a map. */
export const KID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/

/** What SigningKey.verify (fast-jwt, for diagnostics) checks besides the signature. */
export interface VerifierSettings {
  /** Accepted aud values, already expanded with their trailing-slash twins. */
  audiences: string[]
  clockToleranceMs: number
  /** Ignored: the validator keeps the one verified-token cache (tokenCache), keyed by token and key. */
  cacheSize?: number
  /** Ignored, as cacheSize. */
  cacheTtlMs?: number
}

export interface VerifyOutcome {
  payload: Record<string, unknown>
  /** Always false: SigningKey.verify keeps no cache. */
  fromCache: boolean
}

/** One published key, parsed once. */
export interface SigningKey {
  readonly kid: string
  /** The JWK's issuer member (v2 JWKS), {tenantid} still in it; undefined for v1 keys, which carry none. */
  readonly issuer: string | undefined
  /** The JWK's x5t member (Entra: the same thumbprint as kid); undefined when the JWK has none. */
  readonly x5t?: string
  /**
   * RS256 (RFC 7518 §3.3: RSASSA-PKCS1-v1_5, SHA-256) over the token's signing input with this key, and
   * nothing else. The key is a KeyObject parsed from the JWK once; a forged signature is false, never a
   * thrown Error. What the validator calls.
   */
  readonly signatureValid: (token: string) => boolean
  /** The key itself, for checks on another thread (signatureChecks 'worker'); without it, checked on the event loop. */
  readonly publicKey?: KeyObject
  /**
   * fast-jwt's complete check (signature, exp/nbf, iss, aud, required claims) with this key, for
   * diagnostics; throws fast-jwt's TokenError. The validator does not call it.
   */
  readonly verify: (token: string) => VerifyOutcome
}

interface KeyEntry extends SigningKey {
  readonly fingerprint: string
  /** RS256 over the token's signing input with this key, nothing else checked (multi-tenant pre-check). */
  readonly signatureValid: (token: string) => boolean
}

export type KeyLookup =
  | {
    state: 'found'
    key: SigningKey
    /** The issuer of the tenant's discovery document for the token's version. */
    issuer: string
    /**
     * The `issuer` member of this kid's entry in the tenant's v2 JWKS ({tenantid} still in it), for v1
     * tokens too: the v1 JWKS carries no issuers, and Microsoft checks a v1 token's key through its v2
     * entry (IDX40005). undefined when the v2 entry has none or the kid is not in the v2 JWKS.
     */
    keyIssuer: string | undefined
    /** The issuer of the tenant's v2 discovery document (what a {tenantid} key issuer must name). */
    v2Issuer: string
  }
  | { state: 'unknown' }
  | { state: 'not_loaded', retryAfterSeconds: number }
  /** Multi-tenant mode: a tenant whose keys are not held (yet, or any more); see KeyStore.loadTenant. */
  | { state: 'unknown_tenant' }

export interface KeyStoreLogger {
  info: (object: object, message: string) => void
  warn: (object: object, message: string) => void
  error: (object: object, message: string) => void
}

export interface KeyStoreOptions {
  /** Where discovery is read, without a trailing slash (see FastifyEntraAuthOptions.authorityHost). */
  authorityHost: string
  /**
   * The api's application (client) id when its app registration has its own signing key (claims
   * mapping): discovery is then read with `?appid=<it>`, whose jwks_uri lists that key.
   */
  appId?: string
  /**
   * The tenants whose keys are loaded at start, or '*': any tenant, each one's keys loaded on first use
   * (after the token's signature verified with a key of the common JWKS) and at most maxTenants held.
   */
  tenants: string[] | '*'
  /** With tenants '*': tenants whose keys are held at once; the least recently used one is dropped. Default 1000. */
  maxTenants?: number
  versions: TokenVersion[]
  verifier: VerifierSettings
  refreshIntervalMs: number
  cooldownMs: number
  timeoutMs: number
  retryMaxMs: number
  log: KeyStoreLogger
  /** Called after every JWKS fetch attempt (discovery included). */
  onFetch?: (tenant: string, result: 'success' | 'failure') => void
}

const MAX_DOCUMENT_BYTES = 1 << 20
const RETRY_MIN_MS = 1000

class FetchError extends Error {
  override name = 'FetchError'
}

async function fetchJson (url: string, timeoutMs: number, stopped: AbortSignal): Promise<unknown> {
  // A fresh deadline per request (get-jwks' static-signal workaround fails every fetch after the first
  // timeout), and the store's own signal so that closing the app does not wait for a hanging authority.
  const signal = AbortSignal.any([AbortSignal.timeout(timeoutMs), stopped])
  const response = await fetch(url, { signal, redirect: 'error', headers: { accept: 'application/json' } })
  if (!response.ok) {
    await response.body?.cancel()
    throw new FetchError(`GET ${url} answered ${response.status}`)
  }
  const length = Number(response.headers.get('content-length') ?? 0)
  if (length > MAX_DOCUMENT_BYTES) {
    await response.body?.cancel()
    throw new FetchError(`GET ${url} answered ${length} bytes`)
  }
  const text = await response.text()
  if (text.length > MAX_DOCUMENT_BYTES) throw new FetchError(`GET ${url} answered more than ${MAX_DOCUMENT_BYTES} bytes`)
  try {
    return JSON.parse(text)
  } catch {
    throw new FetchError(`GET ${url} answered something that is not JSON`)
  }
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

const errorMessage = (error: unknown) => error instanceof Error ? `${error.name}: ${error.message}` : String(error)

/** The keys of one tenant for one token version, from that version's OpenID configuration. */
class KeySource {
  readonly tenant: string
  readonly version: TokenVersion
  readonly discoveryUrl: string
  issuer: string | undefined
  jwksUri: string | undefined
  keys = new Map<string, KeyEntry>()
  lastSuccessAt: number | undefined
  lastUnknownKidFetchAt = Number.NEGATIVE_INFINITY
  nextAttemptAt = 0
  failures = 0
  inflight: Promise<boolean> | undefined
  timer: NodeJS.Timeout | undefined
  /** Dropped from a multi-tenant store: never scheduled again. */
  dropped = false

  constructor (authorityHost: string, tenant: string, version: TokenVersion, appId: string | undefined) {
    this.tenant = tenant
    this.version = version
    // Microsoft Learn, access-tokens ("Validate the signature"): an app with custom signing keys appends
    // appid to the metadata URL, and the jwks_uri it answers points at that app's keys.
    const query = appId === undefined ? '' : `?appid=${encodeURIComponent(appId)}`
    this.discoveryUrl = version === '2.0'
      ? `${authorityHost}/${tenant}/v2.0/.well-known/openid-configuration${query}`
      : `${authorityHost}/${tenant}/.well-known/openid-configuration${query}`
  }

  get loaded () { return this.lastSuccessAt !== undefined }
}

/**
 * Loads every source at start, refreshes in the background (interval ± 10 % jitter, so replicas
 * do not fetch in step), refetches on an unknown kid at most once per cooldown and single-flight,
 * keeps the last good keys when a fetch fails, and drops a key (with its verifier and its cached
 * tokens) as soon as a successful fetch no longer lists it.
 */
/** The tenant-independent metadata whose keys pre-check tokens of tenants not held yet (multi-tenant mode). */
const COMMON = 'common'

export class KeyStore {
  private readonly options: KeyStoreOptions
  private readonly sources = new Map<string, KeySource>()
  /** Multi-tenant mode: the tenants held, least recently used first. */
  private readonly held = new Map<string, KeySource[]>()
  private readonly anyTenant: boolean
  private readonly maxTenants: number
  private readonly authority: URL
  private readonly stopping = new AbortController()

  /** The accepted versions, plus 2.0 always (see the constructor). */
  private readonly versions: TokenVersion[]

  constructor (options: KeyStoreOptions) {
    this.options = options
    this.versions = [...new Set<TokenVersion>([...options.versions, '2.0'])].sort()
    this.authority = new URL(options.authorityHost)
    this.anyTenant = options.tenants === '*'
    this.maxTenants = options.maxTenants ?? 1000
    for (const tenant of options.tenants === '*' ? [COMMON] : options.tenants) {
      // The v2 keys are loaded even when only v1 tokens are accepted: they carry the key issuers.
      for (const version of this.versions) {
        this.sources.set(`${tenant}|${version}`, new KeySource(options.authorityHost, tenant, version, options.appId))
      }
    }
  }

  /** One first attempt per source (each bounded by the fetch timeout); failures retry in the background. */
  async start (): Promise<void> {
    await Promise.all([...this.sources.values()].map((source) => this.refresh(source, 'initial')))
  }

  stop () {
    this.stopping.abort()
    for (const source of this.sources.values()) clearTimeout(source.timer)
  }

  find (tenant: string, version: TokenVersion, kid: string): KeyLookup {
    const source = this.sources.get(`${tenant}|${version}`)
    if (!source) return this.anyTenant && tenant !== COMMON ? { state: 'unknown_tenant' } : { state: 'unknown' }
    if (this.anyTenant) {
      // Least recently used order: the tenant moves to the end.
      const sources = this.held.get(tenant)
      if (sources !== undefined) {
        this.held.delete(tenant)
        this.held.set(tenant, sources)
      }
    }
    if (!source.loaded || source.issuer === undefined) {
      // A tenant loaded on use whose first fetch is still under way: the token waits for that fetch in
      // loadTenant (single-flight) like the token that started it, instead of a 503 for every token of
      // the tenant's first burst.
      if (this.anyTenant && source.inflight !== undefined && this.held.has(tenant)) return { state: 'unknown_tenant' }
      return { state: 'not_loaded', retryAfterSeconds: Math.max(1, Math.ceil((source.nextAttemptAt - Date.now()) / 1000)) }
    }
    const key = source.keys.get(kid)
    if (!key) return { state: 'unknown' }
    const v2 = version === '2.0' ? source : this.sources.get(`${tenant}|2.0`)
    if (!v2?.loaded || v2.issuer === undefined) {
      if (this.anyTenant && v2?.inflight !== undefined && this.held.has(tenant)) return { state: 'unknown_tenant' }
      return { state: 'not_loaded', retryAfterSeconds: Math.max(1, Math.ceil(((v2?.nextAttemptAt ?? 0) - Date.now()) / 1000)) }
    }
    // A v1 token's kid must be in the v2 JWKS too: its entry there is where the key's issuer is published,
    // and Microsoft.Identity.Web verifies v1 tokens with the v2 keys only (IDX10503 otherwise).
    const v2Entry = version === '2.0' ? key : v2.keys.get(kid)
    if (v2Entry === undefined) return { state: 'unknown' }
    return { state: 'found', key, issuer: source.issuer, keyIssuer: v2Entry.issuer, v2Issuer: v2.issuer }
  }

  /**
   * A token names a kid we do not have: fetch the JWKS again unless one such fetch happened within
   * the cooldown, and share one fetch among all who ask meanwhile. A flood of random kids therefore
   * costs one fetch per cooldown, and a real rotation is picked up by the first token that needs it.
   */
  async refreshForUnknownKid (tenant: string, version: TokenVersion): Promise<void> {
    // A v1 token needs its kid in both JWKS (see find): refetch both, each under its own cooldown.
    if (version === '1.0') await this.refreshForUnknownKid(tenant, '2.0')
    const source = this.sources.get(`${tenant}|${version}`)
    if (!source || !source.loaded) return
    if (source.inflight) {
      await source.inflight
      return
    }
    if (Date.now() - source.lastUnknownKidFetchAt < this.options.cooldownMs) return
    source.lastUnknownKidFetchAt = Date.now()
    await this.refresh(source, 'unknown_kid')
  }

  /**
   * Multi-tenant mode: a token of a tenant whose keys are not held. Its signature must first verify with
   * a key of the common JWKS (same kid; an unknown kid refetches that JWKS within the cooldown), so a
   * forged token, whatever its tid, costs no fetch; only then are that tenant's own documents and keys
   * loaded (single-flight), the least recently used tenant dropped past maxTenants. The token is then
   * validated with the tenant's own keys as in single-tenant mode.
   */
  async loadTenant (tenant: string, version: TokenVersion, kid: string, token: string): Promise<'loaded' | 'unknown_key' | 'bad_signature' | 'not_loaded'> {
    if (!this.anyTenant) return 'unknown_key'
    const common = this.sources.get(`${COMMON}|${version}`)
    if (!common?.loaded) return 'not_loaded'
    let key = common.keys.get(kid)
    if (key === undefined) {
      await this.refreshForUnknownKid(COMMON, version)
      key = common.keys.get(kid)
    }
    if (key === undefined) return 'unknown_key'
    if (!key.signatureValid(token)) return 'bad_signature'
    let sources = this.held.get(tenant)
    if (sources === undefined) {
      if (this.held.size >= this.maxTenants) this.drop(this.held.keys().next().value as string)
      sources = this.versions.map((v) => new KeySource(this.options.authorityHost, tenant, v, this.options.appId))
      for (const source of sources) this.sources.set(`${tenant}|${source.version}`, source)
      this.held.set(tenant, sources)
    }
    await Promise.all(sources.map((source) => source.loaded ? true : this.refresh(source, 'initial')))
    return 'loaded'
  }

  /** Tenants whose keys are held now (configured ones, or in multi-tenant mode those loaded on use). */
  tenantCount (): number {
    return this.anyTenant ? this.held.size : (this.options.tenants as string[]).length
  }

  private drop (tenant: string) {
    for (const source of this.held.get(tenant) ?? []) {
      source.dropped = true
      clearTimeout(source.timer)
      this.sources.delete(`${tenant}|${source.version}`)
    }
    this.held.delete(tenant)
  }

  /** Null when every source has keys, else which have not. For GET /readyz. */
  notReadyReason (): string | null {
    // In multi-tenant mode only the common keys count: a tenant loaded on use is not a readiness matter.
    const missing = [...this.sources.values()].filter((source) => !source.loaded && !this.held.has(source.tenant)).map((source) => `${source.tenant} v${source.version}`)
    return missing.length === 0 ? null : `signing keys not loaded yet for ${missing.join(', ')}`
  }

  /** Distinct kids a tenant currently accepts, over its token versions. */
  keyCount (tenant: string): number {
    const kids = new Set<string>()
    for (const source of this.sourcesOf(tenant)) for (const kid of source.keys.keys()) kids.add(kid)
    return kids.size
  }

  /** When every source of the tenant last succeeded, as the oldest of them (ms); undefined until all have. */
  lastSuccess (tenant: string): number | undefined {
    let oldest: number | undefined
    for (const source of this.sourcesOf(tenant)) {
      if (source.lastSuccessAt === undefined) return undefined
      oldest = oldest === undefined ? source.lastSuccessAt : Math.min(oldest, source.lastSuccessAt)
    }
    return oldest
  }

  /** The metric label values: the configured tenants, or ['common'] in multi-tenant mode. */
  get tenants (): string[] { return this.options.tenants === '*' ? [COMMON] : this.options.tenants }

  /** Tenants loaded on use share one label value, so that labels stay bounded. */
  private label (source: KeySource): string {
    return this.held.has(source.tenant) ? '*' : source.tenant
  }

  private * sourcesOf (tenant: string) {
    for (const version of this.versions) {
      const source = this.sources.get(`${tenant}|${version}`)
      if (source) yield source
    }
  }

  private refresh (source: KeySource, cause: 'initial' | 'scheduled' | 'unknown_kid'): Promise<boolean> {
    if (source.inflight) return source.inflight
    // The discovery document is re-read on scheduled refreshes; an unknown kid only needs the JWKS.
    const withDiscovery = cause !== 'unknown_kid' || source.jwksUri === undefined
    source.inflight = this.fetchKeys(source, withDiscovery, cause).finally(() => { source.inflight = undefined })
    return source.inflight
  }

  private async fetchKeys (source: KeySource, withDiscovery: boolean, cause: string): Promise<boolean> {
    clearTimeout(source.timer)
    const { log, timeoutMs, refreshIntervalMs, retryMaxMs } = this.options
    try {
      if (withDiscovery) this.applyDiscovery(source, await fetchJson(source.discoveryUrl, timeoutMs, this.stopping.signal))
      const jwks = await fetchJson(source.jwksUri as string, timeoutMs, this.stopping.signal)
      const next = this.buildKeys(source, jwks)
      const added = [...next.keys()].filter((kid) => !source.keys.has(kid))
      const removed = [...source.keys.keys()].filter((kid) => !next.has(kid))
      source.keys = next
      source.lastSuccessAt = Date.now()
      source.failures = 0
      this.options.onFetch?.(this.label(source), 'success')
      if (added.length > 0 || removed.length > 0) {
        log.info({ tenant: source.tenant, version: source.version, cause, kids: [...next.keys()], added, removed }, 'signing keys updated')
      }
      this.schedule(source, refreshIntervalMs * (0.9 + Math.random() * 0.2))
      return true
    } catch (error) {
      if (this.stopping.signal.aborted) return false
      source.failures++
      this.options.onFetch?.(this.label(source), 'failure')
      const delay = Math.min(RETRY_MIN_MS * 2 ** (source.failures - 1), retryMaxMs, refreshIntervalMs)
      const context = { tenant: source.tenant, version: source.version, cause, error: errorMessage(error), failures: source.failures, retryInMs: delay }
      if (source.lastSuccessAt !== undefined) {
        const staleSeconds = Math.round((Date.now() - source.lastSuccessAt) / 1000)
        log.warn({ ...context, staleSeconds, kids: [...source.keys.keys()] }, `JWKS refresh failed; keeping the last good keys, ${staleSeconds} s old`)
      } else {
        log.error(context, 'JWKS not loaded: tokens of this tenant get 503 until a fetch succeeds')
      }
      this.schedule(source, delay)
      return false
    }
  }

  private schedule (source: KeySource, delayMs: number) {
    if (this.stopping.signal.aborted || source.dropped) return
    clearTimeout(source.timer)
    source.nextAttemptAt = Date.now() + delayMs
    source.timer = setTimeout(() => { this.refresh(source, 'scheduled').catch(() => {}) }, delayMs)
    source.timer.unref()
  }

  private applyDiscovery (source: KeySource, document: unknown) {
    if (!isObject(document) || typeof document.issuer !== 'string' || typeof document.jwks_uri !== 'string') {
      throw new FetchError('the OpenID configuration lacks issuer or jwks_uri')
    }
    // Keys come only from the login hosts of the configured authority's cloud (src/clouds.ts), or from
    // the authority's own origin when it is not an Entra host: neither a token nor a tampered document
    // picks the host.
    let jwksUrl: URL
    try {
      jwksUrl = new URL(document.jwks_uri)
    } catch {
      throw new FetchError('the OpenID configuration has an invalid jwks_uri')
    }
    if (!jwksUriAllowed(this.authority, jwksUrl)) {
      throw new FetchError(`jwks_uri ${jwksUrl.origin} is not a login host of the authority ${this.authority.origin}'s cloud`)
    }
    // A tenant's document names the tenant itself (or the {tenantid} template of the multi-tenant documents).
    const issuer = document.issuer.replaceAll('{tenantid}', source.tenant)
    if (!issuer.toLowerCase().includes(source.tenant)) {
      throw new FetchError(`the issuer ${issuer} does not name tenant ${source.tenant}`)
    }
    source.issuer = issuer
    source.jwksUri = jwksUrl.href
  }

  private buildKeys (source: KeySource, jwks: unknown): Map<string, KeyEntry> {
    if (!isObject(jwks) || !Array.isArray(jwks.keys)) throw new FetchError('the JWKS has no keys array')
    const next = new Map<string, KeyEntry>()
    for (const jwk of jwks.keys) {
      if (!isObject(jwk) || typeof jwk.kid !== 'string' || !KID_PATTERN.test(jwk.kid) || next.has(jwk.kid)) continue
      if (jwk.kty !== 'RSA' || typeof jwk.n !== 'string' || typeof jwk.e !== 'string') continue
      if ((jwk.use !== undefined && jwk.use !== 'sig') || (jwk.alg !== undefined && jwk.alg !== 'RS256')) continue
      const issuer = typeof jwk.issuer === 'string' ? jwk.issuer : undefined
      const x5t = typeof jwk.x5t === 'string' ? jwk.x5t : undefined
      const fingerprint = `${jwk.n}.${jwk.e}.${issuer ?? ''}.${source.issuer}.${x5t ?? ''}`
      const existing = source.keys.get(jwk.kid)
      if (existing?.fingerprint === fingerprint) {
        // The same key stays the same object, and with it the tokens already accepted with it.
        next.set(jwk.kid, existing)
        continue
      }
      const entry = this.buildKey(source, jwk.kid, jwk.n, jwk.e, issuer, fingerprint)
      if (entry) next.set(jwk.kid, x5t === undefined ? entry : { ...entry, x5t })
    }
    // An empty answer is an outage, not a revocation of every key.
    if (next.size === 0) throw new FetchError('the JWKS has no usable RS256 signing key')
    return next
  }

  private buildKey (source: KeySource, kid: string, n: string, e: string, issuer: string | undefined, fingerprint: string): KeyEntry | undefined {
    let publicKey: KeyObject
    try {
      publicKey = createPublicKey({ key: { kty: 'RSA', n, e }, format: 'jwk' })
      if ((publicKey.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) return undefined
    } catch (error) {
      this.options.log.warn({ tenant: source.tenant, kid, error: errorMessage(error) }, 'skipping a JWK that is not a valid RSA public key')
      return undefined
    }
    return { kid, issuer, fingerprint, publicKey, signatureValid: rs256Verifier(publicKey), verify: fastJwtVerifier(publicKey, source.issuer as string, source.version, this.options.verifier) }
  }
}

/**
 * The signature check with a KeyObject parsed once: 27 µs of CPU against fast-jwt's 75 µs, which parses
 * its PEM text on every call (bench/micro/verify.ts; token-validation.ts says why not fast-jwt).
 */
function rs256Verifier (publicKey: KeyObject): (token: string) => boolean {
  return (token) => {
    const dot = token.lastIndexOf('.')
    try {
      return verifySignature('sha256', Buffer.from(token.slice(0, dot), 'latin1'), publicKey, Buffer.from(token.slice(dot + 1), 'base64url'))
    } catch {
      return false
    }
  }
}

/**
 * fast-jwt's complete check with one key, for diagnostics (its error codes say which standard check
 * failed); built on first use, without a cache. The validator does not call it: see "Why not fast-jwt's
 * verifier" in token-validation.ts.
 */
function fastJwtVerifier (publicKey: KeyObject, issuer: string, version: TokenVersion, settings: VerifierSettings): (token: string) => VerifyOutcome {
  let verifier: ((token: string) => unknown) | undefined
  return (token) => {
    verifier ??= createVerifier({
      key: publicKey.export({ type: 'spki', format: 'pem' }) as string,
      algorithms: ['RS256'],
      allowedIss: issuer,
      allowedAud: settings.audiences,
      requiredClaims: ['iss', 'aud', 'exp', 'nbf', 'iat', 'tid', 'oid', 'sub', 'ver', version === '2.0' ? 'azp' : 'appid'],
      clockTolerance: settings.clockToleranceMs,
      cache: false
    })
    return { payload: verifier(token) as Record<string, unknown>, fromCache: false }
  }
}
