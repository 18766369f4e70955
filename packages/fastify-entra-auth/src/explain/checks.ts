import { KID_PATTERN } from '../key-store.ts'
import { NUMERIC_DATE_RANGE, expandAudiences, isCanonicalBase64url, type Reason, type TokenVersion } from '../token-validation.ts'

/*
 * Each rule of the api (package README, "Validation rules"), in the order the api runs them, evaluated on
 * its own, so that explain can show every rule a token breaks and not only the first. The verdict never
 * comes from here: it comes from the api's own validator (explain.ts). A test feeds the attack catalogue
 * and the validation tests' tokens through both and requires the first failing check here to name the
 * validator's reason, so the two cannot drift apart unnoticed.
 */

export type CheckStatus = 'pass' | 'fail' | 'not checked' | 'skipped'

export interface Check {
  /** Stable id, e.g. "aud". */
  readonly id: string
  /** What the api requires, in words. */
  readonly rule: string
  readonly status: CheckStatus
  /** On fail: the reason the api answers (the auth_requests_total reason label). */
  readonly reason?: Exclude<Reason, 'none'>
  /** What the token has, or why the check was not run. Never token text beyond claim values. */
  readonly detail: string
}

export interface CheckContext {
  tenants: string[]
  audiences: string[]
  versions: TokenVersion[]
  maxTokenBytes: number
  clockSkewMs: number
  requiredRoles: string[]
  /** The issuer expected for the token's tid and ver (discovery document, or derived offline). */
  issuerFor: (tenant: string, version: TokenVersion) => string
  /** The key lookup and signature outcome, when known (--keys); undefined offline. */
  keys?: { state: 'found' | 'unknown' | 'not_loaded', x5tMismatch?: boolean, signature?: 'valid' | 'invalid', keyIssuer?: string | undefined, v2Issuer?: string }
  now: number
}

export interface DecodedToken {
  header?: Record<string, unknown>
  claims?: Record<string, unknown>
  /** The payload's JSON text, for the duplicate-claim check. */
  payloadJson?: string
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const REFUSED_HEADER_PARAMETERS = ['jku', 'x5u', 'jwk', 'crit', 'cty']

function wellFormed (value: unknown): boolean {
  if (typeof value === 'string') return value.isWellFormed()
  if (typeof value !== 'object' || value === null) return true
  if (Array.isArray(value)) return value.every(wellFormed)
  return Object.entries(value).every(([name, member]) => name.isWellFormed() && wellFormed(member))
}

function decodeObject (segment: string | undefined): { json?: string, value?: Record<string, unknown> } {
  if (segment === undefined || !isCanonicalBase64url(segment)) return {}
  try {
    const json = UTF8.decode(Buffer.from(segment, 'base64url'))
    const value: unknown = JSON.parse(json)
    if (typeof value === 'object' && value !== null && !Array.isArray(value) && wellFormed(value)) return { json, value: value as Record<string, unknown> }
    return { json }
  } catch {
    return {}
  }
}

/** Header and claims of a token, as far as they decode; never verified. */
export function decodeToken (token: string): DecodedToken {
  const [header, payload] = token.split('.')
  const h = decodeObject(header)
  const p = decodeObject(payload)
  return {
    ...(h.value ? { header: h.value } : {}),
    ...(p.value ? { claims: p.value } : {}),
    ...(p.json !== undefined ? { payloadJson: p.json } : {})
  }
}

/** Top-level member names, duplicates included (JSON.parse keeps the last). */
function memberNames (json: string): string[] {
  const names: string[] = []
  let depth = 0
  for (let i = 0; i < json.length; i++) {
    const c = json[i]
    if (c === '"') {
      let end = i + 1
      while (json[end] !== '"') end += json[end] === '\\' ? 2 : 1
      let next = end + 1
      while (/\s/.test(json[next] ?? '')) next++
      if (depth === 1 && json[next] === ':') names.push(JSON.parse(json.slice(i, end + 1)) as string)
      i = end
    } else if (c === '{' || c === '[') {
      depth++
    } else if (c === '}' || c === ']') {
      depth--
    }
  }
  return names
}

const show = (value: unknown) => value === undefined ? 'absent' : JSON.stringify(value)
const isNumericDate = (value: unknown) => typeof value === 'number' && Number.isFinite(value) && value >= NUMERIC_DATE_RANGE.min && value <= NUMERIC_DATE_RANGE.max
const time = (seconds: number) => Number.isFinite(seconds * 1000) && Math.abs(seconds) < 8.64e12 ? new Date(seconds * 1000).toISOString().replace('.000Z', 'Z') : String(seconds)
/** A span of seconds for a reader: minutes up to two hours, then hours. */
const span = (seconds: number) => Math.abs(seconds) < 7200 ? `${Math.round(seconds / 60)} min` : `${(seconds / 3600).toFixed(1)} h`

/** Every check, in the api's order. */
export function runChecks (token: string, decoded: DecodedToken, context: CheckContext): Check[] {
  const checks: Check[] = []
  let blocked: string | undefined
  const add = (id: string, rule: string, evaluate: () => { status: CheckStatus, reason?: Exclude<Reason, 'none'>, detail: string }) => {
    if (blocked !== undefined) {
      checks.push({ id, rule, status: 'skipped', detail: `not evaluated: ${blocked}` })
      return
    }
    checks.push({ id, rule, ...evaluate() })
  }
  const pass = (detail: string) => ({ status: 'pass' as const, detail })
  const fail = (reason: Exclude<Reason, 'none'>, detail: string) => ({ status: 'fail' as const, reason, detail })
  const segments = token.split('.')

  add('size', `at most ${context.maxTokenBytes} bytes`, () =>
    token.length <= context.maxTokenBytes ? pass(`${token.length} bytes`) : fail('malformed', `${token.length} bytes`))
  add('shape', 'three segments of canonical unpadded base64url (a signed JWT, RFC 7515 §2)', () => {
    if (segments.length !== 3) return fail('malformed', `${segments.length} segment(s)${segments.length === 5 ? ': an encrypted token (JWE), not a signed one' : ''}`)
    const bad = segments.findIndex((segment) => !isCanonicalBase64url(segment))
    return bad < 0 ? pass('3 segments') : fail('malformed', `the ${['header', 'payload', 'signature'][bad]} segment is not canonical base64url`)
  })
  if (checks.at(-1)?.status === 'fail' || checks.at(-2)?.status === 'fail') blocked = 'the token is not a signed JWT'
  const header = decoded.header
  add('header', 'the header is a JSON object', () => header ? pass('') : fail('malformed', 'not a JSON object in strict UTF-8'))
  if (!header) blocked ??= 'the header does not decode'
  add('alg', 'alg is RS256', () => header?.alg === 'RS256' ? pass('RS256') : fail('unsupported_alg', `alg ${show(header?.alg)}`))
  // RFC 7515 §4.1.9: typ is a media type, compared case-insensitively, "application/" optional.
  add('typ', 'typ, when present, is JWT', () =>
    header?.typ === undefined || (typeof header.typ === 'string' && header.typ.toLowerCase().replace(/^application\//, '') === 'jwt') ? pass(`typ ${show(header?.typ)}`) : fail('malformed', `typ ${show(header?.typ)}`))
  add('header-types', 'x5t and x5t#S256, when present, are strings (IDX14102)', () => {
    const wrong = ['x5t', 'x5t#S256'].filter((name) => header?.[name] !== undefined && typeof header[name] !== 'string')
    return wrong.length === 0 ? pass('') : fail('malformed', `${wrong.join(', ')} not a string`)
  })
  add('header-parameters', 'no jku, x5u, jwk, crit or cty (key material named by the token itself)', () => {
    const present = REFUSED_HEADER_PARAMETERS.filter((name) => header?.[name] !== undefined)
    return present.length === 0 ? pass('none') : fail('malformed', `has ${present.join(', ')}`)
  })
  add('kid', 'kid is a key id (1-128 of A-Z a-z 0-9 _ -)', () =>
    typeof header?.kid === 'string' && KID_PATTERN.test(header.kid) ? pass(`kid ${header.kid}`) : fail('malformed', `kid ${show(header?.kid)}`))
  const claims = decoded.claims
  add('payload', 'the payload is a JSON object', () => claims ? pass('') : fail('malformed', 'not a JSON object in strict UTF-8'))
  if (!claims) blocked ??= 'the payload does not decode'

  const c = claims ?? {}
  add('tid', `tid is one of the accepted tenants (${context.tenants.join(', ')})`, () => {
    if (c.tid === undefined) return fail('missing_claim', 'tid absent')
    if (typeof c.tid !== 'string' || !GUID.test(c.tid)) return fail('invalid_claim', `tid ${show(c.tid)} is not a tenant id`)
    return context.tenants.includes(c.tid) || context.tenants.includes('*') ? pass(`tid ${c.tid}`) : fail('wrong_tenant', `tid ${c.tid}`)
  })
  add('ver', `ver is one of the accepted versions (${context.versions.join(', ')})`, () => {
    if (c.ver === undefined) return fail('missing_claim', 'ver absent')
    return typeof c.ver === 'string' && (context.versions as string[]).includes(c.ver) ? pass(`ver ${c.ver}`) : fail('wrong_version', `ver ${show(c.ver)}`)
  })
  add('times', 'exp, nbf and iat, when present, are NumericDates in range', () => {
    const bad = (['exp', 'nbf', 'iat'] as const).filter((name) => c[name] !== undefined && !isNumericDate(c[name]))
    return bad.length === 0 ? pass('') : fail('invalid_claim', `${bad.map((name) => `${name} ${show(c[name])}`).join(', ')}`)
  })
  const version = c.ver as TokenVersion
  const tid = c.tid as string
  const keys = context.keys
  // Without an accepted tid and ver the api has no keys and no issuer to compare with.
  const unusable = checks.find((check) => (check.id === 'tid' || check.id === 'ver') && check.status === 'fail')
  const headerFailed = checks.find((check) => ['alg', 'typ', 'header-types', 'header-parameters', 'kid'].includes(check.id) && check.status === 'fail')
  const keyBlocked = blocked ?? (unusable ? `${unusable.id} is not accepted` : headerFailed ? 'the header is refused' : undefined)
  const addKeyCheck = (id: string, rule: string, evaluate: Parameters<typeof add>[2]) =>
    keyBlocked !== undefined && blocked === undefined ? checks.push({ id, rule, status: 'skipped', detail: `not evaluated: ${keyBlocked}` }) : add(id, rule, evaluate)
  addKeyCheck('key', 'kid (and x5t, when present) name one of the tenant\'s published signing keys for this version', () => {
    if (!keys) return { status: 'not checked', detail: 'offline: run with --keys to read the tenant\'s JWKS' }
    if (keys.state === 'not_loaded') return fail('keys_unavailable', 'the tenant\'s keys could not be loaded')
    if (keys.x5tMismatch === true) return fail('unknown_key', `x5t ${show(decoded.header?.x5t)} names another key than kid ${String(decoded.header?.kid)}`)
    return keys.state === 'found' ? pass(`kid ${String(decoded.header?.kid)} is published`) : fail('unknown_key', `kid ${String(decoded.header?.kid)} is not in the tenant's JWKS (v${version})`)
  })
  const keyFailed = checks.at(-1)?.status === 'fail'
  addKeyCheck('signature', 'RS256 signature by that key', () => {
    if (!keys) return { status: 'not checked', detail: 'offline: run with --keys' }
    if (keyFailed) return { status: 'skipped', detail: 'not evaluated: no published key with this kid' }
    return keys.signature === 'valid' ? pass('valid') : fail('bad_signature', 'does not verify with the published key')
  })
  const appIdClaim = version === '2.0' ? 'azp' : 'appid'
  const required = ['iss', 'aud', 'exp', 'nbf', 'iat', 'tid', 'oid', 'sub', 'ver', appIdClaim]
  add('required-claims', `${required.join(', ')} present`, () => {
    const missing = required.filter((name) => !(name in c))
    if (missing.length === 0) return pass('')
    const idToken = missing.includes(appIdClaim) && c.nonce !== undefined ? ' (a nonce and no azp/appid: an ID token, not an access token)' : ''
    return fail('missing_claim', `${missing.join(', ')} absent${idToken}`)
  })
  const issuer = tid && version ? context.issuerFor(tid, version) : ''
  const audiences = new Set(expandAudiences(context.audiences))
  // fast-jwt reports a claim of the wrong type as one error, which the api names by aud, then iss.
  const typeError = (): Exclude<Reason, 'none'> =>
    typeof c.aud !== 'string' || !audiences.has(c.aud) ? 'wrong_audience' : c.iss !== issuer ? 'wrong_issuer' : 'invalid_claim'
  const skewSeconds = context.clockSkewMs / 1000
  const nowSeconds = context.now / 1000
  add('nbf', `nbf is not later than now + ${skewSeconds} s clock skew`, () => {
    if (typeof c.nbf !== 'number') return fail(typeError(), `nbf ${show(c.nbf)} is not a number`)
    return nowSeconds >= c.nbf - skewSeconds ? pass(`nbf ${time(c.nbf)}`) : fail('not_yet_valid', `nbf ${time(c.nbf)}, ${Math.round(c.nbf - nowSeconds)} s from now`)
  })
  add('exp', `exp is not earlier than now - ${skewSeconds} s clock skew`, () => {
    if (typeof c.exp !== 'number') return fail(typeError(), `exp ${show(c.exp)} is not a number`)
    return nowSeconds <= c.exp + skewSeconds ? pass(`exp ${time(c.exp)} (in ${span(c.exp - nowSeconds)})`) : fail('expired', `exp ${time(c.exp)}, ${span(nowSeconds - c.exp)} ago`)
  })
  // Right after the signature and times, before the Entra rules, as the api does: a token whose key is not
  // its issuer's is refused before any 403.
  addKeyCheck('key-issuer', 'the signing key\'s issuer (v2 JWKS entry), when it has one, names this issuer (IDX40005)', () => {
    if (!keys) return { status: 'not checked', detail: 'offline: run with --keys' }
    if (keys.state !== 'found') return { status: 'skipped', detail: 'not evaluated: no published key with this kid' }
    if (keys.keyIssuer === undefined) return pass('the key names no issuer')
    const expected = keys.keyIssuer.replaceAll('{tenantid}', tid)
    return expected === c.iss || expected === keys.v2Issuer ? pass(`key issuer ${keys.keyIssuer}`) : fail('wrong_issuer', `the key signs for ${keys.keyIssuer} only`)
  })
  add('aud', `aud is one string among the accepted audiences (${context.audiences.join(', ')})`, () =>
    typeof c.aud === 'string' && audiences.has(c.aud) ? pass(`aud ${c.aud}`) : fail('wrong_audience', `aud ${show(c.aud)}`))
  addKeyCheck('iss', `iss is the issuer of tenant ${tid}'s v${version} OpenID configuration (${issuer}), bound to tid and ver`, () =>
    c.iss === issuer && c.tid === tid && c.ver === version ? pass(`iss ${String(c.iss)}`) : fail('wrong_issuer', `iss ${show(c.iss)}`))
  add('claim-shapes', `no claim twice (any case); iss, sub, jti, azp, appid, tid, oid, ver strings; oid a GUID; sub and ${appIdClaim} non-empty; iat a number; nbf <= exp; roles strings; xms_mirid a string`, () => {
    const seen = new Set<string>()
    for (const name of decoded.payloadJson === undefined ? [] : memberNames(decoded.payloadJson)) {
      if (seen.has(name.toLowerCase())) return fail('invalid_claim', `claim ${name} appears twice`)
      seen.add(name.toLowerCase())
    }
    const wrong: string[] = []
    // Registered string claims are strings whether or not the token's version uses them (IDX14101).
    for (const name of ['iss', 'sub', 'jti', 'azp', 'appid', 'tid', 'oid', 'ver']) if (c[name] !== undefined && typeof c[name] !== 'string') wrong.push(`${name} ${show(c[name])} not a string`)
    if (typeof c.oid !== 'string' || !GUID.test(c.oid)) wrong.push(`oid ${show(c.oid)}`)
    if (typeof c.sub !== 'string' || c.sub === '') wrong.push(`sub ${show(c.sub)}`)
    if (typeof c[appIdClaim] !== 'string' || c[appIdClaim] === '') wrong.push(`${appIdClaim} ${show(c[appIdClaim])}`)
    if (typeof c.iat !== 'number') wrong.push(`iat ${show(c.iat)}`)
    if (typeof c.nbf === 'number' && typeof c.exp === 'number' && c.nbf > c.exp) wrong.push('nbf after exp')
    if (c.roles !== undefined && !(Array.isArray(c.roles) && c.roles.every((role) => typeof role === 'string'))) wrong.push(`roles ${show(c.roles)}`)
    if (c.xms_mirid !== undefined && typeof c.xms_mirid !== 'string') wrong.push('xms_mirid not a string')
    return wrong.length === 0 ? pass('') : fail('invalid_claim', wrong.join('; '))
  })
  add('app-only', 'an app-only token: no scp, idtyp (when present) "app"', () =>
    c.scp === undefined && (c.idtyp === undefined || c.idtyp === 'app')
      ? pass(`idtyp ${show(c.idtyp)}`)
      : fail('delegated_token', `${c.scp !== undefined ? `scp ${show(c.scp)} (a delegated token: a user signed in)` : ''}${c.scp !== undefined && c.idtyp !== undefined ? ', ' : ''}${c.idtyp !== undefined ? `idtyp ${show(c.idtyp)}` : ''}`))
  // The api looks at the route's roles only once the token is accepted; explain shows them anyway.
  // Roles name app roles of the token's audience in the token's tenant: for another api or tenant they mean nothing here.
  const foreign = checks.find((check) => (check.id === 'aud' || check.id === 'tid') && check.status === 'fail')
  if (foreign && blocked === undefined) {
    checks.push({ id: 'roles', rule: `roles holds one of the route's roles (${context.requiredRoles.join(', ') || 'none'})`, status: 'skipped', detail: `not evaluated: the token is for another ${foreign.id === 'aud' ? 'api' : 'tenant'}, so its roles are not this api's` })
    return checks
  }
  add('roles', context.requiredRoles.length === 0 ? 'the route requires no role' : `roles holds one of the route's roles (${context.requiredRoles.join(', ')})`, () => {
    const roles = Array.isArray(c.roles) ? c.roles as string[] : []
    if (context.requiredRoles.length === 0) return pass(`roles ${show(c.roles)} (no required roles given: AUTH_REQUIRED_ROLES / --roles)`)
    return context.requiredRoles.some((role) => roles.includes(role)) ? pass(`roles ${show(c.roles)}`) : fail('missing_role', `roles ${show(c.roles)}`)
  })
  return checks
}
