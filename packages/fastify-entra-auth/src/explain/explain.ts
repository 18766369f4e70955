import { KeyStore, KID_PATTERN } from '../key-store.ts'
import { resolveOptions, type FastifyEntraAuthOptions } from '../options.ts'
import {
  authorize, createTokenValidator, expandAudiences, parseAuthorization, withRequiredRoles,
  type KeyProvider, type Reason, type Rejection, type TokenVersion
} from '../token-validation.ts'
import { decodeToken, runChecks, type Check, type CheckContext } from './checks.ts'
import { expectedIssuer } from './clouds.ts'
import { probeFetch } from './fetch-failure.ts'
import { callerOf, fixesFor, notesFor, type ApiSettings, type Fix, type FixContext } from './fixes.ts'
import { OFFLINE_SKIPS, OfflineKeys, resign } from './offline-keys.ts'

/*
 * explain: why the api would accept or refuse a token, and what to change. The verdict is the api's own:
 * the same resolveOptions, createTokenValidator, parseAuthorization and authorize the plugin runs, with
 * either the real KeyStore (--keys) or OfflineKeys (signature not checked). checks.ts adds the rule-by-rule
 * view and fixes.ts the advice; neither decides anything.
 */

/** explain's settings: the plugin's options that decide a verdict, the route's roles, and Entra facts for the fixes. */
export interface ExplainOptions extends Pick<FastifyEntraAuthOptions, 'tenants' | 'audiences' | 'tokenVersions' | 'authorityHost' | 'clockSkewMs' | 'maxTokenBytes'> {
  /** The route's roles (any one suffices); empty: roles are not checked. @default [] */
  requiredRoles?: readonly string[]
  /** Read the discovery documents and JWKS and check the signature (network). @default false */
  keys?: boolean
  /** The api's app registration has its own signing keys: discovery is read with ?appid=<it> (--keys). */
  signingKeysAppId?: string
  /** Deadline of each discovery/JWKS request in ms (--keys). @default 5000 */
  fetchTimeoutMs?: number
  /** Object id of the api's service principal, filled into the assignment command. */
  apiServicePrincipalId?: string
  /** Id of the app role to assign, filled into the assignment command. */
  appRoleId?: string
  /** When the role was assigned: a token issued before it is a cached token. */
  roleAssignedAt?: Date
  /** The client id (or object id) of the identity expected to call: a note when the token names another. */
  expectedCallerId?: string
}

export interface Verdict {
  readonly accepted: boolean
  /** The api's answer: 200, or the rejection's status. */
  readonly status: 200 | 400 | 401 | 403 | 503
  readonly reason: Reason
  readonly error?: Rejection['error']
  readonly description?: string
  readonly scope?: string
  /** offline: the signature and the key-dependent checks were not run. */
  readonly signature: 'checked' | 'not checked'
}

export interface ExplainReport {
  readonly verdict: Verdict
  readonly mode: 'offline' | 'keys'
  /** What offline mode skipped; empty with --keys. */
  readonly notChecked: readonly string[]
  readonly settings: ApiSettings & {
    /** Offline only: the authority host is no Entra login host, so the public cloud's issuer forms were assumed. */
    issuerAssumed: boolean
  }
  /** The header members and claims, decoded and unverified; never the token or its signature. */
  readonly header: Readonly<Record<string, unknown>> | undefined
  readonly claims: Readonly<Record<string, unknown>> | undefined
  readonly caller: ReturnType<typeof callerOf>
  readonly checks: readonly Check[]
  readonly fixes: readonly Fix[]
  readonly notes: readonly string[]
}

/** Thrown for settings explain cannot run with (exit 2). `setting` names the option. */
export class ExplainInputError extends Error {
  override name = 'ExplainInputError'
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const HEADER_SHOWN = ['alg', 'typ', 'kid', 'x5t', 'jku', 'x5u', 'jwk', 'crit', 'cty']

/** The token out of what a user pastes: surrounding whitespace and an optional "Bearer " go. */
export function normalizeToken (input: string): string {
  return input.trim().replace(/^bearer\s+/i, '').trim()
}

interface KeyFacts {
  state: 'found' | 'unknown' | 'not_loaded'
  x5tMismatch?: boolean
  signature?: 'valid' | 'invalid'
  keyIssuer?: string | undefined
  v2Issuer?: string
  issuer?: string
}

/** The token's key and signature, as the KeyStore sees them (after the validator ran, so no extra fetch). */
function keyFacts (store: KeyStore, token: string, header: Record<string, unknown> | undefined, claims: Record<string, unknown> | undefined): KeyFacts | undefined {
  const kid = header?.kid
  const tid = claims?.tid
  const ver = claims?.ver
  if (typeof kid !== 'string' || !KID_PATTERN.test(kid) || typeof tid !== 'string' || (ver !== '1.0' && ver !== '2.0')) return undefined
  const lookup = store.find(tid, ver, kid)
  if (lookup.state !== 'found') return { state: lookup.state === 'not_loaded' ? 'not_loaded' : 'unknown' }
  // The validator refuses a header x5t that names another key than kid (Microsoft resolves either).
  const keyX5t = (lookup.key as { x5t?: string }).x5t
  if (typeof header?.x5t === 'string' && keyX5t !== undefined && header.x5t !== keyX5t) return { state: 'unknown', x5tMismatch: true }
  let signature: 'valid' | 'invalid' = 'valid'
  const signatureValid = (lookup.key as { signatureValid?: (token: string) => boolean }).signatureValid
  if (signatureValid !== undefined) {
    signature = signatureValid(token) ? 'valid' : 'invalid'
  } else {
    try {
      lookup.key.verify(token)
    } catch (error) {
      if ((error as { code?: string }).code === 'FAST_JWT_INVALID_SIGNATURE') signature = 'invalid'
    }
  }
  return { state: 'found', signature, keyIssuer: lookup.keyIssuer, v2Issuer: lookup.v2Issuer, issuer: lookup.issuer }
}

/**
 * Whether a kid is published under the discovery document read with ?appid=<appId> (app-specific signing
 * keys, Microsoft Learn access-tokens "Validate the signature"), for the unknown_key diagnosis. Keys only
 * from the authority's own origin; any failure is "no".
 */
async function kidUnderAppKeys (authorityHost: string, tenant: string, version: TokenVersion, appId: string, kid: string, timeoutMs: number): Promise<boolean> {
  try {
    const path = version === '2.0' ? 'v2.0/.well-known/openid-configuration' : '.well-known/openid-configuration'
    const discovery = await fetch(`${authorityHost}/${tenant}/${path}?appid=${encodeURIComponent(appId)}`, { signal: AbortSignal.timeout(timeoutMs), redirect: 'error' })
    const document = await discovery.json() as { jwks_uri?: unknown }
    if (typeof document.jwks_uri !== 'string') return false
    const jwksUri = new URL(document.jwks_uri)
    if (jwksUri.origin !== new URL(authorityHost).origin && jwksUri.protocol !== 'https:') return false
    const jwks = await (await fetch(jwksUri, { signal: AbortSignal.timeout(timeoutMs), redirect: 'error' })).json() as { keys?: Array<{ kid?: unknown }> }
    return Array.isArray(jwks.keys) && jwks.keys.some((key) => key.kid === kid)
  } catch {
    return false
  }
}

/**
 * One line per distinct key-load failure (v1 and v2 discovery failing alike is one), each with the URL
 * and the cause: the key store's log has only "TypeError: fetch failed" for a refused connection, an
 * unknown host or a timeout, so such a failure's URL is asked once more to learn which it was.
 */
async function describeKeyFailures (failures: ReadonlyArray<{ tenant: string, version: TokenVersion, error: string }>, authorityHost: string, appId: string | undefined, timeoutMs: number): Promise<string[]> {
  const lines: string[] = []
  for (const error of new Set(failures.map((failure) => failure.error))) {
    const first = failures.find((failure) => failure.error === error) as { tenant: string, version: TokenVersion }
    const path = first.version === '2.0' ? 'v2.0/.well-known/openid-configuration' : '.well-known/openid-configuration'
    const url = `${authorityHost}/${first.tenant}/${path}${appId === undefined ? '' : `?appid=${encodeURIComponent(appId)}`}`
    // The store's own errors (status, not JSON, no keys) already name their URL or document.
    const described = /^TimeoutError/.test(error)
      ? `GET ${url}: timeout (no answer within ${timeoutMs} ms)`
      : /fetch failed/i.test(error) ? await probeFetch(url, timeoutMs) : null
    const line = described ?? error
    if (!lines.includes(line)) lines.push(line)
  }
  return lines
}

/**
 * Explains a token against the api's settings. Throws ExplainInputError (or the plugin's
 * EntraAuthOptionsError) for settings the api itself would refuse to start with.
 */
export async function explainToken (input: string, options: ExplainOptions): Promise<ExplainReport> {
  const resolved = resolveOptions({
    tenants: options.tenants,
    audiences: options.audiences,
    ...(options.tokenVersions ? { tokenVersions: options.tokenVersions } : {}),
    ...(options.authorityHost ? { authorityHost: options.authorityHost } : {}),
    ...(options.clockSkewMs !== undefined ? { clockSkewMs: options.clockSkewMs } : {}),
    ...(options.maxTokenBytes !== undefined ? { maxTokenBytes: options.maxTokenBytes } : {}),
    ...(options.signingKeysAppId !== undefined ? { signingKeysAppId: options.signingKeysAppId } : {})
  })
  const requiredRoles = [...(options.requiredRoles ?? [])]
  for (const [name, value] of [['apiServicePrincipalId', options.apiServicePrincipalId], ['appRoleId', options.appRoleId]] as const) {
    if (value !== undefined && !GUID.test(value)) throw new ExplainInputError(`${name} must be a GUID, got "${value}"`)
  }
  const token = normalizeToken(input)
  const { authorityHost, audiences, tokenVersions, clockSkewMs, maxTokenBytes, signingKeysAppId } = resolved
  // A list of tenant ids, or '*' (any tenant) where the package supports multi-tenant apis.
  const tenants = resolved.tenants as readonly string[] | '*'
  const tenantList = tenants === '*' ? ['*'] : [...tenants]
  const online = options.keys === true
  const keyErrors: string[] = []
  let store: KeyStore | undefined
  let keys: KeyProvider
  if (online) {
    const failures: Array<{ tenant: string, version: TokenVersion, error: string }> = []
    const log = { info () {}, warn () {}, error: (context: object) => { failures.push(context as { tenant: string, version: TokenVersion, error: string }) } }
    store = new KeyStore({
      authorityHost,
      tenants: resolved.tenants,
      maxTenants: resolved.maxTenants,
      versions: tokenVersions,
      verifier: { audiences: expandAudiences(audiences), clockToleranceMs: clockSkewMs },
      refreshIntervalMs: 3_600_000,
      cooldownMs: 0,
      timeoutMs: options.fetchTimeoutMs ?? 5000,
      retryMaxMs: 60_000,
      log,
      ...(signingKeysAppId === undefined ? {} : { appId: signingKeysAppId })
    })
    await store.start()
    keyErrors.push(...await describeKeyFailures(failures, authorityHost, signingKeysAppId, options.fetchTimeoutMs ?? 5000))
    keys = store
  } else {
    keys = new OfflineKeys({ authorityHost, audiences, clockToleranceMs: clockSkewMs })
  }

  try {
    // What the plugin's onRequest hook does, minus the request itself (duplicate headers, query tokens).
    // The plugin's call (src/plugin.ts) without its accepted-token cache: one token, once.
    const validate = createTokenValidator({ tenants: resolved.tenants, audiences, versions: tokenVersions, maxTokenBytes, keys, clockSkewMs })
    const parsed = parseAuthorization([`Bearer ${token}`], maxTokenBytes)
    let outcome = parsed.ok ? await validate(parsed.token) : parsed
    if (keys instanceof OfflineKeys && keys.lookedUp) {
      // The original token passed every check before the key lookup (the probe answered "unknown kid");
      // the rest runs on its header and payload signed with the key the offline provider answers with.
      const resigned = resign(token)
      keys.answerWithKey = true
      const offlineValidate = createTokenValidator({ tenants: resolved.tenants, audiences, versions: tokenVersions, maxTokenBytes: Math.max(maxTokenBytes, resigned.length), keys, clockSkewMs })
      outcome = await offlineValidate(resigned)
    }
    const denied = outcome.ok ? authorize(outcome.identity, requiredRoles) : withRequiredRoles(outcome, requiredRoles)
    const now = Date.now()

    const decoded = decodeToken(token)
    const facts = store ? keyFacts(store, token, decoded.header, decoded.claims) : undefined
    const context: CheckContext = {
      tenants: tenantList,
      audiences,
      versions: tokenVersions,
      maxTokenBytes,
      clockSkewMs,
      requiredRoles,
      issuerFor: (tenant, version) => facts?.issuer ?? expectedIssuer(authorityHost, tenant, version).issuer,
      ...(store ? { keys: facts ?? { state: 'unknown' as const } } : {}),
      now
    }
    const checks = runChecks(token, decoded, context)
    const claims = decoded.claims ?? {}
    let appSpecificKeysOf: string | undefined
    if (denied?.reason === 'unknown_key' && signingKeysAppId === undefined && typeof claims.aud === 'string' && GUID.test(claims.aud)) {
      const found = await kidUnderAppKeys(authorityHost, String(claims.tid), claims.ver as TokenVersion, claims.aud, String(decoded.header?.kid), options.fetchTimeoutMs ?? 5000)
      if (found) appSpecificKeysOf = claims.aud
    }
    const settings: ApiSettings = { tenants: tenantList, audiences, tokenVersions, authorityHost, requiredRoles, clockSkewMs, maxTokenBytes }
    const fixContext: FixContext = {
      claims,
      settings: {
        ...settings,
        apiServicePrincipalId: options.apiServicePrincipalId,
        appRoleId: options.appRoleId,
        roleAssignedAt: options.roleAssignedAt,
        expectedCallerId: options.expectedCallerId
      },
      now,
      appSpecificKeysOf,
      keyErrors
    }
    const verdict: Verdict = denied
      ? { accepted: false, status: denied.status, reason: denied.reason, error: denied.error, description: denied.description, ...(denied.scope ? { scope: denied.scope } : {}), signature: online ? 'checked' : 'not checked' }
      : { accepted: true, status: 200, reason: 'none', signature: online ? 'checked' : 'not checked' }
    const notes = notesFor(fixContext, verdict.reason)
    // The verdict is the validator's; the check list is explain's reading of it. Should they ever part
    // (a rule added to the validator and not here), say so rather than show a list that contradicts it.
    const decisive = checks.find((check) => check.status === 'fail')
    if ((decisive?.reason ?? 'none') !== verdict.reason) {
      notes.unshift(`The api's validator answered ${verdict.status} ${verdict.reason}${verdict.description ? ` ("${verdict.description}")` : ''}, which the checks above do not show first: this explanation lags the validator; the verdict is the validator's.`)
    }
    const header = decoded.header ? Object.fromEntries(HEADER_SHOWN.filter((name) => name in (decoded.header as object)).map((name) => [name, decoded.header?.[name]])) : undefined
    return {
      verdict,
      mode: online ? 'keys' : 'offline',
      notChecked: online ? [] : OFFLINE_SKIPS,
      settings: {
        ...settings,
        issuerAssumed: !online && expectedIssuer(authorityHost, 'tenant', '2.0').assumed
      },
      header,
      claims: decoded.claims,
      caller: callerOf(claims),
      checks,
      fixes: fixesFor(checks, fixContext),
      notes
    }
  } finally {
    store?.stop()
  }
}
