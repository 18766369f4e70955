import { KID_PATTERN, type KeyLookup, type SigningKey } from './key-store.ts'
import type { SignatureWorker } from './signature-worker.ts'

/*
 * Entra access-token validation without Fastify: validate(token) answers an identity or an RFC 6750
 * rejection. In order: the cheap header and shape checks before any key lookup, the RS256 signature
 * with the key's KeyObject (SigningKey.signatureValid), the standard claims (presence, nbf/exp with Microsoft's 5 min skew), and
 * the Entra rules (single-string aud, iss bound to tid and ver, signing-key issuer, case-variant
 * claims, app-only). Each rule's Microsoft reference is in the package README ("Validation rules").
 *
 * Why not fast-jwt's verifier (the design's first choice; measured as get-jwks was, bench/README.md
 * "Why the api verifies with node:crypto"): it takes the key as PEM text and hands it to
 * createVerify().verify({ key: pem, padding }) on every call, so every token pays OpenSSL's PEM parse:
 * 75 µs of CPU per verification against 27 µs for crypto.verify with a KeyObject parsed once
 * (bench/micro/verify.ts, same run, 2.7x). It decodes the token again after we did (we must, to pick the
 * key and to apply the Entra rules), throws a TokenError with a stack trace for every forged token, and
 * caches rejections for the clock tolerance (5 min) whatever errorCacheTTL says. What it checks beyond
 * the signature (alg, crit, required claims, nbf/exp, iss, aud) is each a line here, tested in
 * test/token-validation.test.ts and test/attacks.test.ts. SigningKey.verify keeps fast-jwt's check
 * for diagnostics.
 */

/** The `ver` claim of an Entra access token: "1.0" (sts.windows.net issuer) or "2.0" (login.microsoftonline.com/{tid}/v2.0). */
export type TokenVersion = '1.0' | '2.0'

/** The fixed values of the reason label of auth_requests_total. */
export const REASONS = [
  'none', 'missing_token', 'malformed', 'unsupported_alg', 'unknown_key', 'bad_signature', 'expired',
  'not_yet_valid', 'wrong_audience', 'wrong_issuer', 'wrong_tenant', 'wrong_version', 'missing_claim',
  'invalid_claim', 'delegated_token', 'missing_role', 'keys_unavailable'
] as const
export type Reason = typeof REASONS[number]

export interface Identity {
  readonly tenantId: string
  /** The calling service principal (for a managed identity, its principal id): with tenantId, the caller's key. */
  readonly objectId: string
  /** The caller's client id: azp (v2) or appid (v1). */
  readonly appId: string
  readonly roles: readonly string[]
  readonly tokenVersion: TokenVersion
  /** xms_mirid: the managed identity's ARM resource id. Undocumented by Microsoft; for logs, never for decisions. */
  readonly managedIdentityResourceId?: string
  readonly claims: Readonly<Record<string, unknown>>
}

export interface Rejection {
  readonly ok: false
  readonly status: 400 | 401 | 403 | 503
  readonly error: 'invalid_request' | 'invalid_token' | 'insufficient_scope'
  readonly reason: Exclude<Reason, 'none'>
  /** A fixed text: never any part of the token. */
  readonly description: string
  /** Space-separated roles, for the scope attribute of a 403 challenge. */
  readonly scope?: string
  readonly retryAfterSeconds?: number
}

export interface Acceptance {
  readonly ok: true
  readonly identity: Identity
  readonly fromCache: boolean
}

export type ValidationResult = Acceptance | Rejection

/** What validate needs from the key store (KeyStore implements it; unit tests may pass their own). */
export interface KeyProvider {
  find: (tenant: string, version: TokenVersion, kid: string) => KeyLookup
  refreshForUnknownKid: (tenant: string, version: TokenVersion) => Promise<void>
  /** Multi-tenant mode only: load a tenant not held yet, after a pre-check of the token's signature (KeyStore.loadTenant). */
  loadTenant?: (tenant: string, version: TokenVersion, kid: string, token: string) => Promise<'loaded' | 'unknown_key' | 'bad_signature' | 'not_loaded'>
}

export interface ValidatorOptions {
  /** Accepted tenants, or '*' for any (multi-tenant: the key provider loads a tenant on use). */
  tenants: string[] | '*'
  versions: TokenVersion[]
  /** Accepted aud values as configured; see expandAudiences. */
  audiences: string[]
  maxTokenBytes: number
  keys: KeyProvider
  /** Leeway on exp and nbf, in ms (Microsoft's DefaultClockSkew: 300 000). Default 300 000. */
  clockSkewMs?: number
  /** Where RSA signatures are checked (FastifyEntraAuthOptions.signatureChecks). Default 'event-loop' here; the plugin's default is 'worker'. */
  signatureChecks?: SignatureChecks
  /** With signatureChecks 'worker': the thread that checks them (SignatureWorker; its owner closes it). */
  signatureWorker?: Pick<SignatureWorker, 'check'>
  /** Accepted tokens remembered by their exact text (and signing key); size 0 turns it off. */
  acceptedCache?: AcceptedCacheOptions
}

/** 'worker': on one worker thread, in batches (SignatureWorker); 'event-loop': crypto.verify inline. */
export type SignatureChecks = 'worker' | 'event-loop'

export interface AcceptedCacheOptions {
  /** Entries at most. */
  size: number
  /** Bytes at most, as estimated by acceptedEntryBytes. Default: unbounded by bytes. */
  maxBytes?: number
  /** Longest life of an entry, in ms; never past exp plus clockToleranceMs. */
  ttlMs: number
  clockToleranceMs: number
}

/**
 * What one remembered token is counted as against AcceptedCacheOptions.maxBytes: the token text (one
 * byte per character: tokens are ASCII), its claims object (about three times its JSON text as V8
 * objects and strings), and a fixed 256 bytes for the entry, the identity and the map slot.
 */
export const acceptedEntryBytes = (token: string, payloadJson: string): number => token.length + 3 * payloadJson.length + 256

interface AcceptedEntry {
  /** The exact text accepted: a hit needs the same text, not only the same fingerprint. */
  readonly token: string
  readonly identity: Identity
  readonly bytes: number
  readonly key: SigningKey
  readonly tid: string
  readonly version: TokenVersion
  readonly kid: string
  readonly keyIssuer: string | undefined
  /** exp plus the clock skew, and never later than the cache TTL from when it was stored. */
  readonly validUntilMs: number
}

/**
 * 30 bits of a token's signature, as a number: the five base64url characters before the last (which
 * carries padding bits). An RSA signature's bits are uniform, so this is as good a hash as the whole
 * text's, and a Map keyed by a small integer skips hashing 1.4 KB of token on every request: V8's
 * String::ComputeAndSetRawHash was 2.4 % of the api's CPU on distinct tokens (perf record, bench row 3),
 * since every request's header is a new string whose hash is not cached yet.
 */
function fingerprintOf (token: string): number {
  let fingerprint = 0
  for (let i = token.length - 6; i < token.length - 1; i++) fingerprint = (fingerprint << 6) | ((BASE64URL_VALUE[token.charCodeAt(i)] ?? 0) & 0x3f)
  return fingerprint
}

/**
 * The one verified-token cache: tokens accepted lately, found by 30 bits of their signature and held
 * only for their exact text (see fingerprintOf). A managed identity
 * sends the same token for hours, so this is the path nearly every request takes: a Map lookup instead
 * of decoding, verifying and checking (measured in bench/: about 70 µs of CPU per request on the
 * reused-token row). An entry holds only while its signing key is still the very KeyObject the key
 * store has for that kid, so a key removed from (or replaced in) the JWKS takes its tokens with it.
 * Rejections are never remembered: a forged token costs its verification every time, and cannot evict
 * accepted ones. A token is stored at its second acceptance (admit, below). Bounded by entries and by
 * bytes (acceptedEntryBytes); insertion order evicts the oldest.
 */
class AcceptedTokens {
  private readonly entries = new Map<number, AcceptedEntry>()
  private readonly size: number
  private readonly maxBytes: number
  private readonly ttlMs: number
  private readonly clockToleranceMs: number
  private bytes = 0

  constructor (options: AcceptedCacheOptions) {
    this.size = options.size
    this.maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY
    this.ttlMs = options.ttlMs
    this.clockToleranceMs = options.clockToleranceMs
  }

  private delete (fingerprint: number, entry: AcceptedEntry): void {
    this.entries.delete(fingerprint)
    this.bytes -= entry.bytes
  }

  get (token: string, keys: KeyProvider): Identity | undefined {
    const entry = this.entries.get(fingerprintOf(token))
    // Another token with the same 30 bits (chance, or a forgery made to collide) is simply not a hit.
    if (entry === undefined || entry.token !== token) return undefined
    const lookup = Date.now() < entry.validUntilMs ? keys.find(entry.tid, entry.version, entry.kid) : undefined
    if (lookup?.state === 'found' && lookup.key === entry.key && lookup.keyIssuer === entry.keyIssuer) return entry.identity
    this.delete(fingerprintOf(token), entry)
    return undefined
  }

  /**
   * Admission, a doorkeeper as in TinyLFU: a token is stored at its second acceptance, remembered in
   * between as 30 bits of its signature (an RSA signature's bits are uniform) in a 4,096-slot table. A
   * caller that reuses its token (a managed identity, for hours) is stored at its second request and
   * hit from its third; a stream of distinct tokens is not stored at all. Storing every one of them only
   * to evict it 1,000 acceptances later cost the api 70 µs of CPU per request and 40 % of its
   * throughput on distinct tokens (bench/profile.ts --row unique: 3,763 req/s and 226 µs with the
   * cache on, 6,150 and 151 µs with it off, same machine, one after the other): old-generation garbage.
   */
  private readonly seen = new Int32Array(4096)

  private admit (fingerprint: number): boolean {
    const slot = fingerprint & 0xfff
    if (this.seen[slot] === fingerprint) return true
    this.seen[slot] = fingerprint
    return false
  }

  set (token: string, entry: Omit<AcceptedEntry, 'validUntilMs' | 'token'>): void {
    const fingerprint = fingerprintOf(token)
    if (this.size <= 0 || entry.bytes > this.maxBytes || !this.admit(fingerprint)) return
    const exp = entry.identity.claims.exp as number
    const validUntilMs = Math.min(exp * 1000 + this.clockToleranceMs, Date.now() + this.ttlMs)
    const previous = this.entries.get(fingerprint)
    if (previous !== undefined) this.delete(fingerprint, previous)
    while (this.entries.size > 0 && (this.entries.size >= this.size || this.bytes + entry.bytes > this.maxBytes)) {
      const [oldestFingerprint, oldest] = this.entries.entries().next().value as [number, AcceptedEntry]
      this.delete(oldestFingerprint, oldest)
    }
    this.entries.set(fingerprint, { ...entry, token, validUntilMs })
    this.bytes += entry.bytes
  }
}

/** RFC 7519 §4.1 claims every Entra access token carries, plus the caller's client id of its version. */
const REQUIRED_CLAIMS: Readonly<Record<TokenVersion, readonly string[]>> = {
  '2.0': ['iss', 'aud', 'exp', 'nbf', 'iat', 'tid', 'oid', 'sub', 'ver', 'azp'],
  '1.0': ['iss', 'aud', 'exp', 'nbf', 'iat', 'tid', 'oid', 'sub', 'ver', 'appid']
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const SEGMENT = /^[A-Za-z0-9_-]+$/
/** RFC 9110 §5.6.2 token: what an auth-scheme is made of. */
const AUTH_SCHEME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/
/** RFC 6750 §2.1 b64token. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/
/**
 * RFC 9110 §5.5: a field value's leading and trailing whitespace (SP, HTAB) is not part of it. A loop,
 * not /^[ \t]+|[ \t]+$/g: that regex tries its second branch at each of a token's 1,400 positions.
 */
function trimOws (value: string): string {
  let start = 0
  let end = value.length
  while (start < end && (value.charCodeAt(start) === 0x20 || value.charCodeAt(start) === 0x09)) start++
  while (end > start && (value.charCodeAt(end - 1) === 0x20 || value.charCodeAt(end - 1) === 0x09)) end--
  return start === 0 && end === value.length ? value : value.slice(start, end)
}
/** Header parameters that would make a verifier fetch or trust key material named by the token itself. */
const REFUSED_HEADER_PARAMETERS = ['jku', 'x5u', 'jwk', 'crit', 'cty'] as const

const reject = (status: Rejection['status'], reason: Rejection['reason'], description: string, extra: Partial<Rejection> = {}): Rejection =>
  Object.freeze({ ok: false as const, status, error: status === 400 ? 'invalid_request' as const : status === 403 ? 'insufficient_scope' as const : 'invalid_token' as const, reason, description, ...extra })

const invalid = (reason: Rejection['reason'], description: string) => reject(401, reason, description)

/**
 * Microsoft ignores a trailing slash when comparing audiences (IgnoreTrailingSlashWhenValidatingAudience,
 * default true): `api://x` and `api://x/` are the same App ID URI. Client-id GUIDs are left as they are.
 */
export function expandAudiences (audiences: string[]): string[] {
  const out = new Set<string>()
  for (const audience of audiences) {
    const bare = audience.replace(/\/+$/, '')
    if (GUID.test(bare.toLowerCase()) && bare === audience) {
      out.add(audience)
      continue
    }
    out.add(bare)
    out.add(`${bare}/`)
  }
  return [...out]
}

/**
 * Takes the token out of the Authorization header values as received (every occurrence: Node keeps only
 * the first of duplicated Authorization headers, so the caller passes them from rawHeaders).
 *
 * The grammar is RFC 6750 §2.1 within RFC 9110 §11.4: `credentials = "Bearer" 1*SP b64token`, the scheme
 * compared case-insensitively (RFC 9110 §11.1), around it optional whitespace that is not part of the
 * field value (RFC 9110 §5.5). The status follows RFC 6750 §3.1: a request that does not carry exactly one
 * token (no token after the scheme, several words, several headers) is malformed, 400 invalid_request;
 * one token that is not a b64token (e.g. `=` padding inside a segment) is a malformed token, 401
 * invalid_token; no Bearer credentials at all is 401 with reason missing_token.
 */
export function parseAuthorization (values: readonly string[], maxTokenBytes: number): { ok: true, token: string } | Rejection {
  const token = bearerCandidate(values, maxTokenBytes)
  return typeof token === 'string' ? checkB64token(token) : token
}

/**
 * parseAuthorization's first half: the one Bearer credential's text, or the rejection, without the
 * b64token check over its characters. What the plugin looks up in the verified-token cache: a token the
 * cache holds passed isCanonicalBase64url on all three segments, whose alphabet and dots lie within
 * b64token, so its exact text needs no second pass (about 1.3 µs on a 1.4 KB token).
 */
export function bearerCandidate (values: readonly string[], maxTokenBytes: number): string | Rejection {
  if (values.length === 0) return invalid('missing_token', 'a Bearer token is required')
  if (values.length > 1) return reject(400, 'malformed', 'exactly one Authorization header is allowed')
  const value = trimOws(values[0] as string)
  const scheme = AUTH_SCHEME.exec(value)?.[0]
  if (scheme === undefined || scheme.length !== 6 || scheme.toLowerCase() !== 'bearer') return invalid('missing_token', 'a Bearer token is required')
  let start = 6
  while (value.charCodeAt(start) === 0x20) start++
  if (start === 6 || start === value.length) return reject(400, 'malformed', 'the Authorization header must be exactly one Bearer token')
  const token = value.slice(start)
  if (token.length > maxTokenBytes) return invalid('malformed', 'the token is too large')
  return token
}

/** parseAuthorization's second half: the credential is one b64token (RFC 6750 §2.1). */
export function checkB64token (token: string): { ok: true, token: string } | Rejection {
  // One pass over the token when it is well formed: a b64token has no whitespace, so the whitespace
  // test (several words: 400) is needed only for one that is not.
  if (B64TOKEN.test(token)) return { ok: true, token }
  if (/[ \t]/.test(token)) return reject(400, 'malformed', 'the Authorization header must be exactly one Bearer token')
  return invalid('malformed', 'the token is not a signed JWT')
}

/** RFC 6750 §3 scope-token: printable ASCII without space, `"` or `\`; a role outside it cannot be named in a challenge. */
export const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/

/**
 * A 403 names the roles the route requires in its scope attribute (RFC 6750 §3), whatever refused the
 * caller (a missing role, or a delegated token where an app token with a role is required).
 */
export function withRequiredRoles (rejection: Rejection, requiredRoles: readonly string[]): Rejection {
  if (rejection.status !== 403 || requiredRoles.length === 0) return rejection
  return Object.freeze({ ...rejection, scope: requiredRoles.join(' ') })
}

/**
 * How many members a JSON object's text names at its top level, repeats included (JSON.parse keeps only
 * the last of "aud":"a",...,"aud":"b"). Only for text JSON.parse has already accepted, so whitespace is
 * JSON's four characters and every string is closed.
 */
const JSON_WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d])
function topLevelNameCount (json: string): number {
  let count = 0
  let depth = 0
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i)
    if (c === 0x22) {
      let end = i + 1
      while (json.charCodeAt(end) !== 0x22) end += json.charCodeAt(end) === 0x5c ? 2 : 1
      if (depth === 1) {
        let next = end + 1
        while (JSON_WHITESPACE.has(json.charCodeAt(next))) next++
        if (json.charCodeAt(next) === 0x3a) count++
      }
      i = end
    } else if (c === 0x7b || c === 0x5b) {
      depth++
    } else if (c === 0x7d || c === 0x5d) {
      depth--
    }
  }
  return count
}

/**
 * Microsoft rejects "tid" next to "TID" (EnforceSingleClaimCaseInsensitive); we extend it to every claim
 * and to exact repeats. A repeat, however spelled ("tid" and "t\u0069d"), leaves JSON.parse fewer names
 * than the text has; a case variant leaves two names that are one in lower case.
 */
function repeatsAClaim (payload: Record<string, unknown>, payloadJson: string): boolean {
  const names = Object.keys(payload)
  if (topLevelNameCount(payloadJson) !== names.length) return true
  const lower = new Set<string>()
  for (const name of names) lower.add(name.toLowerCase())
  return lower.size !== names.length
}

/** base64url digit values, -1 outside the alphabet (RFC 4648 §5). */
const BASE64URL_VALUE = new Int8Array(128).fill(-1)
for (const [i, c] of [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'].entries()) BASE64URL_VALUE[c.charCodeAt(0)] = i

/**
 * Canonical unpadded base64url (RFC 7515 §2, RFC 4648 §3.5): only the alphabet, no padding, a length that
 * is not 1 mod 4, and the unused low bits of the last character zero. Without the last rule one token has
 * up to 16 spellings of the same bytes, and a cache or deny list keyed on the text is bypassed.
 */
export function isCanonicalBase64url (segment: string): boolean {
  const length = segment.length
  if (length === 0 || length % 4 === 1 || !SEGMENT.test(segment)) return false
  const last = BASE64URL_VALUE[segment.charCodeAt(length - 1)] as number
  return length % 4 === 2 ? (last & 0x0f) === 0 : length % 4 === 3 ? (last & 0x03) === 0 : true
}

// fatal: invalid UTF-8 is refused rather than replaced by U+FFFD; ignoreBOM: a BOM stays in the text,
// where JSON.parse refuses it, instead of being dropped silently.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** A segment's JSON text: strict UTF-8 (RFC 7515 §2 / RFC 8259 §8.1), undefined when it is not. */
function decodeSegment (segment: string): string | undefined {
  try {
    return UTF8.decode(Buffer.from(segment, 'base64url'))
  } catch {
    return undefined
  }
}

/** Every string and member name is well-formed Unicode: no lone surrogate, such as a "\ud800" escape (RFC 8259 §8.2). */
function wellFormed (value: unknown): boolean {
  if (typeof value === 'string') return value.isWellFormed()
  if (typeof value !== 'object' || value === null) return true
  if (Array.isArray(value)) return value.every(wellFormed)
  for (const [name, member] of Object.entries(value)) if (!name.isWellFormed() || !wellFormed(member)) return false
  return true
}

/**
 * NumericDate (RFC 7519 §2): a JSON number of seconds, fractions allowed, that must be finite and hold in
 * a signed 64-bit integer, as Microsoft.IdentityModel reads it (a long): JSON.parse reads 1e400 as
 * Infinity and 1e20 would mean "never expires".
 */
export const NUMERIC_DATE_RANGE = Object.freeze({ min: -(2 ** 63), max: 2 ** 63 })
/** Exclusive bounds: -2^63 < value < 2^63, the set Microsoft.IdentityModel accepts (differential test, F8). */
const isNumericDate = (value: unknown) =>
  typeof value === 'number' && Number.isFinite(value) && value > NUMERIC_DATE_RANGE.min && value < NUMERIC_DATE_RANGE.max

/**
 * Registered JWS header parameters that must be strings when present (RFC 7515 §4.1), whether or not
 * they are used here: a token whose registered members have the wrong type is not a valid JWS, and
 * Microsoft refuses it (IDX14102). alg, kid and typ are checked on their own.
 */
const STRING_HEADER_PARAMETERS = ['x5t', 'x5t#S256'] as const
/**
 * Claims that must be strings when present (RFC 7519 §4.1; OpenID Connect Core §2 for azp; Entra's
 * access-token reference for appid, tid, oid, ver), whether or not the token's version uses them (a v1
 * token with an object azp: IDX14101 at Microsoft).
 */
const STRING_CLAIMS = ['iss', 'sub', 'jti', 'azp', 'appid', 'tid', 'oid', 'ver'] as const

function parseObject (json: string | undefined): Record<string, unknown> | undefined {
  if (json === undefined) return undefined
  try {
    const value: unknown = JSON.parse(json)
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
    // A lone surrogate can only come from a \u escape: strict UTF-8 decoding refuses encoded ones. So
    // text without one needs no walk (Entra's never has one; the walk was 1-2 % of the api's CPU on distinct tokens).
    return !json.includes('\\u') || wellFormed(value) ? value as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}

/** What validation needs from a JOSE header that passed its checks. */
interface CheckedHeader { readonly kid: string, readonly x5t: string | undefined }

/** The JOSE header's rules (RFC 7515 §4.1, and what this api refuses): a checked header or a rejection. */
function checkHeader (rawHeader: string): CheckedHeader | Rejection {
  const header = parseObject(decodeSegment(rawHeader))
  if (!header) return invalid('malformed', 'the token header is not a JSON object')
  if (header.alg !== 'RS256') return invalid('unsupported_alg', 'the token must be signed with RS256')
  // RFC 7515 §4.1.9: typ is a media type, compared case-insensitively, "application/" optional.
  if (header.typ !== undefined && (typeof header.typ !== 'string' || header.typ.toLowerCase().replace(/^application\//, '') !== 'jwt')) return invalid('malformed', 'the token type must be JWT')
  for (const name of STRING_HEADER_PARAMETERS) {
    if (header[name] !== undefined && typeof header[name] !== 'string') return invalid('malformed', 'a token header parameter has the wrong type')
  }
  for (const name of REFUSED_HEADER_PARAMETERS) {
    if (header[name] !== undefined) return invalid('malformed', 'the token header has a parameter that is not accepted')
  }
  const kid = header.kid
  if (typeof kid !== 'string' || !KID_PATTERN.test(kid)) return invalid('malformed', 'the token header lacks a valid kid')
  return Object.freeze({ kid, x5t: header.x5t as string | undefined })
}

/**
 * Every token an issuer signs with one key has the same header text, so its checks are done once per
 * text: decoding, JSON.parse and the rules above were about 3 µs of each request's CPU on distinct
 * tokens. At most HEADER_MEMO_SIZE texts of at most HEADER_MEMO_MAX_LENGTH characters are held (an
 * Entra header is about 140; Entra has a handful of keys), so at most 32 KB; a flood of distinct
 * headers empties it and is checked one by one, as without it.
 */
const HEADER_MEMO_SIZE = 64
const HEADER_MEMO_MAX_LENGTH = 512

/**
 * validate(token): the whole check, an identity or a rejection; never throws. validate.cached(token): the
 * identity if the verified-token cache holds this exact token (and its key is still current), else
 * undefined, synchronously: what lets a caller answer the reused-token case without a promise.
 */
export type TokenValidator = ((token: string) => Promise<ValidationResult>) & { cached: (token: string) => Identity | undefined }

export function createTokenValidator (options: ValidatorOptions): TokenValidator {
  const anyTenant = options.tenants === '*'
  const tenants = new Set(anyTenant ? [] : options.tenants)
  const versions = new Set<string>(options.versions)
  const audiences = new Set(expandAudiences(options.audiences))
  const { keys, maxTokenBytes } = options
  const clockSkewMs = options.clockSkewMs ?? 300_000
  const worker = options.signatureChecks === 'worker' ? options.signatureWorker : undefined
  const accepted = options.acceptedCache ? new AcceptedTokens(options.acceptedCache) : undefined
  const headers = new Map<string, CheckedHeader | Rejection>()
  function headerOf (rawHeader: string): CheckedHeader | Rejection {
    let header = headers.get(rawHeader)
    if (header === undefined) {
      header = checkHeader(rawHeader)
      if (rawHeader.length > HEADER_MEMO_MAX_LENGTH) return header
      if (headers.size >= HEADER_MEMO_SIZE) headers.clear()
      headers.set(rawHeader, header)
    }
    return header
  }

  /** The Entra rules fast-jwt cannot express, on a payload whose signature and standard claims passed. */
  function checkEntraRules (payload: Record<string, unknown>, payloadJson: string, issuer: string, tid: string, version: TokenVersion): Identity | Rejection {
    // Entra never issues several audiences; fast-jwt would accept an array with one match.
    if (typeof payload.aud !== 'string' || !audiences.has(payload.aud)) return invalid('wrong_audience', 'the token is not for this audience')
    // iss is the issuer of this tenant's OpenID configuration for this very ver, so iss, tid and ver are bound.
    if (payload.iss !== issuer || payload.tid !== tid || payload.ver !== version) return invalid('wrong_issuer', 'the token issuer is not accepted')
    if (repeatsAClaim(payload, payloadJson)) return invalid('invalid_claim', 'the token repeats a claim')
    for (const name of STRING_CLAIMS) {
      if (payload[name] !== undefined && typeof payload[name] !== 'string') return invalid('invalid_claim', 'a token claim has the wrong type or value')
    }
    const appId = version === '2.0' ? payload.azp : payload.appid
    if (typeof payload.oid !== 'string' || !GUID.test(payload.oid) || typeof payload.sub !== 'string' || payload.sub === '' ||
        typeof appId !== 'string' || appId === '' || typeof payload.iat !== 'number' ||
        (typeof payload.nbf === 'number' && typeof payload.exp === 'number' && payload.nbf > payload.exp)) {
      return invalid('invalid_claim', 'a token claim has the wrong type or value')
    }
    const roles = payload.roles
    if (roles !== undefined && !(Array.isArray(roles) && roles.every((role) => typeof role === 'string'))) {
      return invalid('invalid_claim', 'a token claim has the wrong type or value')
    }
    if (payload.xms_mirid !== undefined && typeof payload.xms_mirid !== 'string') return invalid('invalid_claim', 'a token claim has the wrong type or value')
    // App-only: scp is what a delegated (user) token carries; idtyp, when emitted, says "app" for app tokens.
    if (payload.scp !== undefined || (payload.idtyp !== undefined && payload.idtyp !== 'app')) {
      return reject(403, 'delegated_token', 'an app-only token is required, not a delegated one')
    }
    Object.freeze(payload)
    return Object.freeze({
      tenantId: tid,
      objectId: payload.oid,
      appId,
      roles: Object.freeze([...(roles as string[] | undefined) ?? []]),
      tokenVersion: version,
      ...(typeof payload.xms_mirid === 'string' ? { managedIdentityResourceId: payload.xms_mirid } : {}),
      claims: payload
    })
  }

  const cached = (token: string): Identity | undefined => token.length > maxTokenBytes ? undefined : accepted?.get(token, keys)

  return Object.assign(async function validate (token: string): Promise<ValidationResult> {
    if (token.length > maxTokenBytes) return invalid('malformed', 'the token is too large')
    const remembered = accepted?.get(token, keys)
    if (remembered !== undefined) return { ok: true, identity: remembered, fromCache: true }
    const first = token.indexOf('.')
    const second = token.indexOf('.', first + 1)
    if (first < 0 || second < 0 || token.indexOf('.', second + 1) >= 0) return invalid('malformed', 'the token is not a signed JWT')
    const rawHeader = token.slice(0, first)
    const rawPayload = token.slice(first + 1, second)
    const rawSignature = token.slice(second + 1)
    // Every segment canonical base64url. A token the accepted-token cache holds passed this already, and
    // any other spelling of it is another text, so the cache cannot be reached around this check.
    if (!isCanonicalBase64url(rawHeader) || !isCanonicalBase64url(rawPayload) || !isCanonicalBase64url(rawSignature)) {
      return invalid('malformed', 'the token is not a signed JWT')
    }

    // The header decides everything before a key is looked up.
    const header = headerOf(rawHeader)
    if ('ok' in header) return header
    const { kid } = header

    // tid and ver (unverified yet) only pick whose keys to try; the verified payload must repeat them.
    const payloadJson = decodeSegment(rawPayload)
    const claims = parseObject(payloadJson)
    if (payloadJson === undefined || !claims) return invalid('malformed', 'the token payload is not a JSON object')
    const tid = claims.tid
    if (tid === undefined) return invalid('missing_claim', 'the token lacks a required claim')
    if (typeof tid !== 'string' || !GUID.test(tid)) return invalid('invalid_claim', 'a token claim has the wrong type or value')
    if (!anyTenant && !tenants.has(tid)) return invalid('wrong_tenant', 'the token tenant is not accepted')
    const ver = claims.ver
    if (ver === undefined) return invalid('missing_claim', 'the token lacks a required claim')
    if (typeof ver !== 'string' || !versions.has(ver)) return invalid('wrong_version', 'the token version is not accepted')
    const version = ver as TokenVersion
    for (const name of ['exp', 'nbf', 'iat'] as const) {
      if (claims[name] !== undefined && !isNumericDate(claims[name])) return invalid('invalid_claim', 'a token time is not a NumericDate in range')
    }

    let lookup = keys.find(tid, version, kid)
    if (lookup.state === 'unknown_tenant') {
      const loaded = keys.loadTenant ? await keys.loadTenant(tid, version, kid, token) : 'unknown_key'
      if (loaded === 'unknown_key') return invalid('unknown_key', 'the signature key was not found')
      if (loaded === 'bad_signature') return invalid('bad_signature', 'the token signature is invalid')
      lookup = keys.find(tid, version, kid)
      if (lookup.state === 'unknown_tenant') lookup = { state: 'not_loaded', retryAfterSeconds: 1 }
    }
    if (lookup.state === 'unknown') {
      await keys.refreshForUnknownKid(tid, version)
      lookup = keys.find(tid, version, kid)
    }
    if (lookup.state === 'not_loaded') {
      return reject(503, 'keys_unavailable', 'the signing keys are not available yet', { retryAfterSeconds: lookup.retryAfterSeconds })
    }
    if (lookup.state === 'unknown' || lookup.state === 'unknown_tenant') return invalid('unknown_key', 'the signature key was not found')

    const { key, issuer, keyIssuer } = lookup
    // A header x5t must name the same key as kid. Microsoft takes the first JWKS key whose id equals kid
    // or x5t (JwtTokenUtilities.ResolveTokenSigningKey), so a token whose x5t names another key is refused
    // there or not depending on the JWKS order (differential test); here it is always refused.
    if (header.x5t !== undefined && key.x5t !== undefined && header.x5t !== key.x5t) return invalid('unknown_key', 'the signature key was not found')
    const valid = worker !== undefined && key.publicKey !== undefined
      ? await worker.check(key.publicKey, token, () => key.signatureValid(token))
      : key.signatureValid(token)
    if (!valid) return invalid('bad_signature', 'the token signature is invalid')
    // The payload decoded above is the one signed: from here on its claims are the issuer's.
    for (const name of REQUIRED_CLAIMS[version]) {
      if (!(name in claims)) return invalid('missing_claim', 'the token lacks a required claim')
    }
    // RFC 7519 §4.1.4-5 with Microsoft's clock skew; both are NumericDates in range (checked above).
    const now = Date.now()
    if (now < (claims.nbf as number) * 1000 - clockSkewMs) return invalid('not_yet_valid', 'the token is not valid yet')
    if (now > (claims.exp as number) * 1000 + clockSkewMs) return invalid('expired', 'the token expired')
    // Signing-key issuer validation (EnableAadSigningKeyIssuerValidation, IDX40005): a key whose v2 JWKS
    // entry names an issuer signs only for it, {tenantid} read as the token's tid; Microsoft also lets it
    // equal the v2 form of the tenant's issuer, which is how a v1 token passes a {tenantid} key. Checked
    // per request, outside the per-payload memo: the key's v2 entry may change on a refresh. Before the
    // Entra rules, so that a token whose key is not its issuer's is 401 even when it is also delegated
    // (a 403 would say the token is valid; the differential test found that order).
    if (keyIssuer !== undefined) {
      const expected = keyIssuer.replaceAll('{tenantid}', tid)
      if (expected !== claims.iss && expected !== lookup.v2Issuer) return invalid('wrong_issuer', 'the signing key does not belong to the token issuer')
    }
    const result = checkEntraRules(claims, payloadJson, issuer, tid, version)
    if ('ok' in result) return result
    accepted?.set(token, { identity: result, bytes: acceptedEntryBytes(token, payloadJson), key, tid, version, kid, keyIssuer })
    return { ok: true, identity: result, fromCache: false }
  }, { cached })
}

/** App-role authorization: any one of the route's roles suffices (Microsoft.Identity.Web's ValidateAppRole). */
export function authorize (identity: Identity, requiredRoles: readonly string[]): Rejection | null {
  if (requiredRoles.length === 0 || requiredRoles.some((role) => identity.roles.includes(role))) return null
  return withRequiredRoles(reject(403, 'missing_role', 'the token lacks a required app role'), requiredRoles)
}
