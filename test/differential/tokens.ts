import { createHmac, sign, type KeyObject } from 'node:crypto'
import fc from 'fast-check'
import {
  API_APP_ID_URI, API_CLIENT_ID, OTHER_TENANT, TENANT, appClaims, createTestKey, v1Issuer, v2Issuer, type TestKey
} from '../../packages/fastify-entra-auth/test/helpers/authority.ts'

/*
 * Tokens for the differential test: valid v1 and v2 app-only tokens as Entra issues them to a managed
 * identity, and mutations of every header member and claim. A generated Spec is plain data (so that
 * fast-check can shrink and print it); build() turns it into a signed token against the real clock at
 * the moment it is sent, so both validators judge times the way they were meant.
 */

/** The signing keys of the local authority, and how each is published. */
export interface KeyWorld {
  /** Published in v1 and v2 JWKS; v2 issuer is the {tenantid} template (as Entra). */
  current: TestKey
  /** A second published key (Entra publishes several; a rotation brings the next in). */
  next: TestKey
  /** Rotated out: no longer published anywhere. */
  removed: TestKey
  /** Published in both; its v2 entry names another tenant as issuer (as the MSA tenant's key does). */
  otherTenant: TestKey
  /** Published in both; its v2 entry has no issuer member. */
  noIssuer: TestKey
  /** Published only in the v1 JWKS. */
  v1Only: TestKey
  /** Published only in the v2 JWKS. */
  v2Only: TestKey
  /**
   * The api's own signing key (claims mapping): listed, with the tenant's keys, only by the documents read
   * with `?appid=<the api's client id>` (Microsoft Learn, access-tokens, "Validate the signature").
   */
  appKey: TestKey
}

/** A tenant no configuration of the test lists (multi-tenant apis accept it; the authority serves it). */
export const THIRD_TENANT = '5c1e7a1d-3b0e-4f5a-9d1c-2e8f7a6b4c3d'

export type KeyName = keyof KeyWorld

export function createKeyWorld (): KeyWorld {
  return {
    current: createTestKey(),
    next: createTestKey(),
    removed: createTestKey(),
    otherTenant: createTestKey({ jwksIssuer: v2Issuer(OTHER_TENANT) }),
    noIssuer: createTestKey({ jwksIssuer: null }),
    v1Only: createTestKey(),
    v2Only: createTestKey(),
    appKey: createTestKey()
  }
}

/** The JWKS contents per token version for the authority of TENANT. */
export function publishedKeys (world: KeyWorld): { v1: TestKey[], v2: TestKey[] } {
  const both = [world.current, world.next, world.otherTenant, world.noIssuer]
  return { v1: [...both, world.v1Only], v2: [...both, world.v2Only] }
}

/** A JSON value written as raw text, so that values JSON.stringify cannot make (1e400, bad UTF-8) can be sent. */
export type Raw =
  | { json: unknown }
  | { text: string }
  | { bytes: number[] }

/** One change to a valid token. */
export type Mutation =
  | { kind: 'claim', name: string, op: 'absent' }
  | { kind: 'claim', name: string, op: 'set', value: Raw, label: string }
  | { kind: 'claim', name: string, op: 'duplicate', value: Raw, label: string, position: 'before' | 'after' }
  | { kind: 'time', name: 'exp' | 'nbf' | 'iat', offsetSeconds: number }
  | { kind: 'header', name: string, op: 'absent' }
  | { kind: 'header', name: string, op: 'set', value: Raw, label: string }
  | { kind: 'header', name: string, op: 'duplicate', value: Raw, label: string, position: 'before' | 'after' }
  | { kind: 'signer', key: KeyName | 'attacker' }
  /**
   * The token is issued by another tenant: tid and iss (of the token's version) both name it, or only one
   * of them does (the other still names the first tenant).
   */
  | { kind: 'tenant', tenant: 'other' | 'third', part: 'both' | 'iss' | 'tid' }
  | { kind: 'alg', alg: 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'HS256' | 'none' }
  | { kind: 'encoding', segment: 'header' | 'payload' | 'signature', op: 'padding' | 'noncanonical' | 'std-alphabet' }
  | { kind: 'signature', op: 'empty' | 'truncated' | 'flipped' | 'transplanted' }
  | { kind: 'payload-text', op: 'bom' | 'array' | 'not-json' | 'whitespace' }

export interface Spec {
  version: '1.0' | '2.0'
  mutations: Mutation[]
}

export interface Case {
  spec: Spec
  token: string
  /** One line for a human: the version and each mutation. */
  description: string
}

const str = (json: unknown): Raw => ({ json })

export function describeMutation (m: Mutation): string {
  switch (m.kind) {
    case 'claim':
      return m.op === 'absent' ? `claim ${m.name} absent` : m.op === 'set' ? `claim ${m.name} = ${m.label}` : `claim ${m.name} duplicated ${m.position} as ${m.label}`
    case 'time': return `${m.name} = now ${m.offsetSeconds >= 0 ? '+' : ''}${m.offsetSeconds}s`
    case 'header':
      return m.op === 'absent' ? `header ${m.name} absent` : m.op === 'set' ? `header ${m.name} = ${m.label}` : `header ${m.name} duplicated ${m.position} as ${m.label}`
    case 'signer': return `signed by key ${m.key}`
    case 'tenant': return m.part === 'both' ? `issued by the ${m.tenant} tenant (tid and iss)` : `${m.part} only names the ${m.tenant} tenant`
    case 'alg': return `alg ${m.alg} (signed so)`
    case 'encoding': return `${m.segment} ${m.op} base64url`
    case 'signature': return `signature ${m.op}`
    case 'payload-text': return `payload text ${m.op}`
  }
}

export const describeSpec = (spec: Spec) =>
  [`v${spec.version}`, ...spec.mutations.map(describeMutation)].join('; ')

// ---------------------------------------------------------------------------------------------------
// Arbitraries

const OTHER_GUID = '0b3f8a5e-1c2d-4e5f-8a9b-0c1d2e3f4a5b'
const INVALID_UTF8: Raw = { bytes: [...Buffer.from('"ab'), 0xff, 0xfe, ...Buffer.from('cd"')] }
const OVERLONG_UTF8: Raw = { bytes: [...Buffer.from('"a'), 0xc0, 0xaf, ...Buffer.from('b"')] }
const LONE_SURROGATE: Raw = { text: '"ab\\ud800cd"' }
const LONE_LOW_SURROGATE: Raw = { text: '"\\udc00"' }
const PAIRED_SURROGATE: Raw = { text: '"\\ud83d\\ude00"' }

const wrongTypes: Array<[string, Raw]> = [
  ['number 5', str(5)], ['true', str(true)], ['null', str(null)], ['{}', str({})], ['[]', str([])], ['"x"', str('x')]
]

/** Replacement values per claim: [label, raw value]. */
function claimValues (): Record<string, Array<[string, Raw]>> {
  return {
    aud: [
      ['other guid', str(OTHER_GUID)], ['client id', str(API_CLIENT_ID)], ['app id uri', str(API_APP_ID_URI)],
      ['app id uri + "/"', str(`${API_APP_ID_URI}/`)], ['client id + "/"', str(`${API_CLIENT_ID}/`)],
      ['client id upper case', str(API_CLIENT_ID.toUpperCase())], ['app id uri upper case', str(API_APP_ID_URI.toUpperCase())],
      ['[client id]', str([API_CLIENT_ID])], ['[other, client id]', str([OTHER_GUID, API_CLIENT_ID])],
      ['[app id uri, other]', str([API_APP_ID_URI, OTHER_GUID])], ['[other]', str([OTHER_GUID])], ['""', str('')],
      ['spn:client id', str(`spn:${API_CLIENT_ID}`)]
    ],
    iss: [
      ['v2 other tenant', str(v2Issuer(OTHER_TENANT))], ['v1 other tenant', str(v1Issuer(OTHER_TENANT))],
      ['v2 issuer', str(v2Issuer(TENANT))], ['v1 issuer', str(v1Issuer(TENANT))],
      ['v2 + "/"', str(`${v2Issuer(TENANT)}/`)], ['v1 without "/"', str(v1Issuer(TENANT).slice(0, -1))],
      ['v2 "V2.0"', str(v2Issuer(TENANT).replace('v2.0', 'V2.0'))], ['v2 host upper case', str(v2Issuer(TENANT).replace('login.microsoftonline.com', 'LOGIN.microsoftonline.com'))],
      ['v2 http', str(v2Issuer(TENANT).replace('https', 'http'))],
      ['US Gov v2', str(`https://login.microsoftonline.us/${TENANT}/v2.0`)], ['China v2', str(`https://login.partner.microsoftonline.cn/${TENANT}/v2.0`)],
      ['China v1', str(`https://sts.chinacloudapi.cn/${TENANT}/`)], ['template', str('https://login.microsoftonline.com/{tenantid}/v2.0')],
      ['v2 tenant upper case', str(v2Issuer(TENANT.toUpperCase()))], ['[v2 issuer]', str([v2Issuer(TENANT)])]
    ],
    tid: [
      ['other tenant', str(OTHER_TENANT)], ['upper case', str(TENANT.toUpperCase())], ['not a guid', str('contoso.onmicrosoft.com')],
      ['{tenantid}', str('{tenantid}')], ['""', str('')], ['braced guid', str(`{${TENANT}}`)]
    ],
    ver: [['"1.0"', str('1.0')], ['"2.0"', str('2.0')], ['"2"', str('2')], ['2.0 number', { text: '2.0' }], ['"3.0"', str('3.0')]],
    oid: [['not a guid', str('abc')], ['other guid', str(OTHER_GUID)], ['""', str('')]],
    sub: [['""', str('')], ['other', str(OTHER_GUID)]],
    azp: [['""', str('')], ['other', str(OTHER_GUID)]],
    appid: [['""', str('')], ['other', str(OTHER_GUID)]],
    roles: [
      ['[]', str([])], ['["Other"]', str(['Other'])], ['"DoAll"', str('DoAll')], ['["DoAll","Other"]', str(['DoAll', 'Other'])],
      ['["doall"]', str(['doall'])], ['"DoAll Other"', str('DoAll Other')], ['["DoAll Other"]', str(['DoAll Other'])],
      ['[5]', str([5])], ['["DoAll", 5]', str(['DoAll', 5])]
    ],
    scp: [['"user_impersonation"', str('user_impersonation')], ['"DoAll"', str('DoAll')], ['""', str('')]],
    idtyp: [['"user"', str('user')], ['"app"', str('app')], ['"APP"', str('APP')]],
    xms_mirid: [['number', str(5)]],
    nonce: [['"abc"', str('abc')]],
    exp: [
      ['1e20', { text: '1e20' }], ['1e400', { text: '1e400' }], ['-1e400', { text: '-1e400' }], ['2^63', { text: '9223372036854775808' }],
      ['2^53+1', { text: '9007199254740993' }], ['0', str(0)], ['-1', str(-1)], ['"string of now+3600"', { json: 'later' }],
      ['4102444800 (2100)', str(4102444800)], ['253402300800 (year 10000)', str(253402300800)]
    ],
    nbf: [['1e20', { text: '1e20' }], ['-1e400', { text: '-1e400' }], ['0', str(0)], ['"0"', str('0')]],
    iat: [['1e20', { text: '1e20' }], ['"0"', str('0')], ['0', str(0)]]
  }
}

const CLAIMS = ['aud', 'iss', 'tid', 'ver', 'exp', 'nbf', 'iat', 'oid', 'sub', 'azp', 'appid', 'roles', 'scp', 'idtyp', 'xms_mirid', 'nonce'] as const

const encodedStrings: Array<[string, Raw]> = [
  ['invalid UTF-8', INVALID_UTF8], ['overlong UTF-8', OVERLONG_UTF8], ['lone high surrogate', LONE_SURROGATE],
  ['lone low surrogate', LONE_LOW_SURROGATE], ['surrogate pair', PAIRED_SURROGATE]
]

const pick = <T>(items: readonly T[]) => fc.constantFrom(...items)

function claimMutation (): fc.Arbitrary<Mutation> {
  const values = claimValues()
  return fc.oneof(
    pick(CLAIMS).map((name): Mutation => ({ kind: 'claim', name, op: 'absent' })),
    fc.tuple(pick(CLAIMS), pick(wrongTypes)).map(([name, [label, value]]): Mutation => ({ kind: 'claim', name, op: 'set', value, label })),
    pick(Object.entries(values).flatMap(([name, list]) => list.map(([label, value]) => ({ name, label, value }))))
      .map(({ name, label, value }): Mutation => ({ kind: 'claim', name, op: 'set', value, label })),
    // Strings that are not Unicode, in a claim that is checked and in one that is only carried.
    fc.tuple(pick(['xms_mirid', 'aio', 'oid', 'azp', 'appid', 'sub']), pick(encodedStrings))
      .map(([name, [label, value]]): Mutation => ({ kind: 'claim', name, op: 'set', value, label })),
    // The same member twice in the raw JSON: exact and case variants, the evil value first or last.
    fc.tuple(pick(['aud', 'iss', 'tid', 'ver', 'exp', 'roles', 'scp', 'TID', 'Aud', 'ISS', 'Roles', 'Exp', 'idtyp']), pick(['before', 'after'] as const))
      .chain(([name, position]) => {
        const evil = (values[name.toLowerCase()] ?? wrongTypes).concat([['"x"', str('x')]])
        return pick(evil).map(([label, value]): Mutation => ({ kind: 'claim', name, op: 'duplicate', value, label, position }))
      }),
    // Claims a managed identity token does not carry, set to values that matter elsewhere.
    pick(['TID', 'Tid', 'AUD', 'Roles', 'SCP', 'http://schemas.microsoft.com/identity/claims/tenantid', 'role', 'http://schemas.microsoft.com/identity/claims/scope'])
      .chain((name) => pick<[string, Raw]>([['other tenant', str(OTHER_TENANT)], ['"DoAll"', str('DoAll')], ['["DoAll"]', str(['DoAll'])], ['tenant', str(TENANT)]])
        .map(([label, value]): Mutation => ({ kind: 'claim', name, op: 'set', value, label })))
  )
}

/** Seconds from now, kept at least 15 s away from every boundary the 5 min skew draws (now ± 300 s). */
const awayFromSkew = fc.oneof(
  fc.integer({ min: -200 * 86400, max: -315 }),
  fc.integer({ min: -285, max: 285 }),
  fc.integer({ min: 315, max: 200 * 86400 }),
  fc.constantFrom(-3600, -330, -270, -60, 60, 270, 330, 3600)
)
const fractional = fc.tuple(awayFromSkew, fc.constantFrom(0, 0.5, 0.001, 0.999)).map(([s, f]) => s + f)

function timeMutation (): fc.Arbitrary<Mutation> {
  return fc.tuple(pick(['exp', 'nbf', 'iat'] as const), fc.oneof(awayFromSkew, fractional))
    .map(([name, offsetSeconds]): Mutation => ({ kind: 'time', name, offsetSeconds }))
}

const HEADERS = ['alg', 'typ', 'kid', 'x5t'] as const

function headerMutation (): fc.Arbitrary<Mutation> {
  const values: Record<string, Array<[string, Raw]>> = {
    alg: [['"rs256"', str('rs256')], ['"none"', str('none')], ['"RS512" (signed RS256)', str('RS512')], ['""', str('')]],
    typ: [['"at+jwt"', str('at+jwt')], ['"jwt"', str('jwt')], ['"JOSE"', str('JOSE')], ['"application/jwt"', str('application/jwt')], ['7', str(7)]],
    kid: [['unknown', str('AAAAAAAAAAAAAAAAAAAAAAAAAAA')], ['""', str('')], ['upper case', { text: '"$KID_UPPER"' }], ['next key\'s kid', { text: '"$KID_next"' }], ['../../etc', str('../../etc/passwd')]],
    x5t: [['kid', { text: '"$KID_current"' }], ['next key\'s kid', { text: '"$KID_next"' }], ['unknown', str('BBBBBBBBBBBBBBBBBBBBBBBBBBB')]],
    jku: [['attacker url', str('https://attacker.example/keys')]],
    x5u: [['attacker url', str('https://attacker.example/cert')]],
    jwk: [['attacker jwk', str({ kty: 'RSA', n: 'AQAB', e: 'AQAB' })]],
    x5c: [['attacker cert', str(['MIIB'])]],
    crit: [['["exp"]', str(['exp'])], ['["unknown-ext"]', str(['unknown-ext'])], ['[]', str([])]],
    cty: [['"JWT"', str('JWT')], ['"json"', str('json')]],
    zip: [['"DEF"', str('DEF')]],
    enc: [['"A256GCM"', str('A256GCM')]]
  }
  return fc.oneof(
    pick(HEADERS).map((name): Mutation => ({ kind: 'header', name, op: 'absent' })),
    fc.tuple(pick(HEADERS), pick(wrongTypes)).map(([name, [label, value]]): Mutation => ({ kind: 'header', name, op: 'set', value, label })),
    pick(Object.entries(values).flatMap(([name, list]) => list.map(([label, value]) => ({ name, label, value }))))
      .map(({ name, label, value }): Mutation => ({ kind: 'header', name, op: 'set', value, label })),
    fc.tuple(pick(['alg', 'kid', 'typ', 'ALG', 'Kid']), pick(['before', 'after'] as const)).chain(([name, position]) =>
      pick<[string, Raw]>([['"none"', str('none')], ['"HS256"', str('HS256')], ['unknown', str('AAAA')], ['"RS256"', str('RS256')], ['"JWT"', str('JWT')]])
        .map(([label, value]): Mutation => ({ kind: 'header', name, op: 'duplicate', value, label, position })))
  )
}

const tenantMutation = fc.tuple(pick(['other', 'third'] as const), pick(['both', 'iss', 'tid'] as const))
  .map(([tenant, part]): Mutation => ({ kind: 'tenant', tenant, part }))

/** Weights of the tenant switches (default 1) and of the signer choices (default 2), against 20 for all other mutations. */
export interface Focus { tenant?: number, signer?: number }

export function mutationArbitrary (focus: Focus = {}): fc.Arbitrary<Mutation> {
  return fc.oneof(
    { weight: 6, arbitrary: claimMutation() },
    { weight: 4, arbitrary: timeMutation() },
    { weight: 4, arbitrary: headerMutation() },
    { weight: focus.signer ?? 2, arbitrary: pick<KeyName | 'attacker'>(['current', 'next', 'removed', 'otherTenant', 'noIssuer', 'v1Only', 'v2Only', 'appKey', 'attacker']).map((key): Mutation => ({ kind: 'signer', key })) },
    { weight: focus.tenant ?? 1, arbitrary: tenantMutation },
    { weight: 1, arbitrary: pick(['RS256', 'RS384', 'RS512', 'PS256', 'HS256', 'none'] as const).map((alg): Mutation => ({ kind: 'alg', alg })) },
    { weight: 2, arbitrary: fc.tuple(pick(['header', 'payload', 'signature'] as const), pick(['padding', 'noncanonical', 'std-alphabet'] as const)).map(([segment, op]): Mutation => ({ kind: 'encoding', segment, op })) },
    { weight: 1, arbitrary: pick(['empty', 'truncated', 'flipped', 'transplanted'] as const).map((op): Mutation => ({ kind: 'signature', op })) },
    { weight: 1, arbitrary: pick(['bom', 'array', 'not-json', 'whitespace'] as const).map((op): Mutation => ({ kind: 'payload-text', op })) }
  )
}

/**
 * Changes that matter only together, too rare to come from random pairs: the app roles moved from roles
 * to another claim Microsoft.Identity.Web also reads as roles (role; ClaimTypes.Role's URI).
 */
const ROLE_URI = 'http://schemas.microsoft.com/ws/2008/06/identity/claims/role'
const pairsOfInterest = fc.tuple(pick(['role', ROLE_URI]), pick<[string, Raw]>([['"DoAll"', str('DoAll')], ['["DoAll"]', str(['DoAll'])]]))
  .map(([name, [label, value]]): Mutation[] => [{ kind: 'claim', name: 'roles', op: 'absent' }, { kind: 'claim', name, op: 'set', value, label }])

/** About a fifth of the specs are valid tokens; the rest carry one to three mutations (1 in 26: a pair of interest). */
export function specArbitrary (focus: Focus = {}): fc.Arbitrary<Spec> {
  return fc.record({
    version: pick(['1.0', '2.0'] as const),
    mutations: fc.oneof(
      { weight: 5, arbitrary: fc.constant<Mutation[]>([]) },
      { weight: 15, arbitrary: fc.array(mutationArbitrary(focus), { minLength: 1, maxLength: 1 }) },
      { weight: 5, arbitrary: fc.array(mutationArbitrary(focus), { minLength: 2, maxLength: 3 }) },
      { weight: 1, arbitrary: pairsOfInterest }
    )
  })
}

// ---------------------------------------------------------------------------------------------------
// Building a token

type Member = [name: string, value: Raw]

function rawBytes (value: Raw): Buffer {
  if ('bytes' in value) return Buffer.from(value.bytes)
  if ('text' in value) return Buffer.from(value.text, 'utf8')
  return Buffer.from(JSON.stringify(value.json), 'utf8')
}

function objectBytes (members: Member[]): Buffer {
  const parts: Buffer[] = [Buffer.from('{')]
  members.forEach(([name, value], i) => {
    parts.push(Buffer.from(`${i > 0 ? ',' : ''}${JSON.stringify(name)}:`), rawBytes(value))
  })
  parts.push(Buffer.from('}'))
  return Buffer.concat(parts)
}

function applyMemberMutation (members: Member[], m: Extract<Mutation, { kind: 'claim' | 'header' }>, substitute: (value: Raw) => Raw): Member[] {
  const at = members.findIndex(([name]) => name === m.name)
  if (m.op === 'absent') return members.filter(([name]) => name !== m.name)
  const value = substitute(m.value)
  if (m.op === 'set') {
    if (at < 0) return [...members, [m.name, value]]
    return members.map((member, i) => i === at ? [m.name, value] : member)
  }
  // A duplicate: the evil value before or after the original member (JSON.parse keeps the last one).
  const index = at < 0 ? members.length : at
  const copy = [...members]
  copy.splice(m.position === 'before' ? index : index + 1, 0, [m.name, value])
  return copy
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/** The same bytes spelled differently: the unused low bits of the last character set (RFC 4648 §3.5). */
export function nonCanonical (segment: string): string | undefined {
  const bytes = Buffer.from(segment, 'base64url').length
  const unused = segment.length * 6 - bytes * 8
  if (unused <= 0 || segment.length === 0) return undefined
  const last = ALPHABET.indexOf(segment[segment.length - 1] as string)
  const changed = ALPHABET[last | ((1 << unused) - 1)] as string
  return changed === segment[segment.length - 1] ? undefined : segment.slice(0, -1) + changed
}

function encode (bytes: Buffer, op: 'padding' | 'noncanonical' | 'std-alphabet' | undefined): string {
  const text = bytes.toString('base64url')
  if (op === 'padding') return text.length % 4 === 0 ? `${text}` : text + '='.repeat(4 - (text.length % 4))
  if (op === 'noncanonical') return nonCanonical(text) ?? text
  if (op === 'std-alphabet') return bytes.toString('base64').replace(/=+$/, '')
  return text
}

function signWith (alg: string, input: string, key: KeyObject): Buffer {
  switch (alg) {
    case 'none': return Buffer.alloc(0)
    case 'HS256': return createHmac('sha256', key.export({ format: 'jwk' }).n as string).update(input).digest()
    case 'PS256': return sign('sha256', Buffer.from(input), { key, padding: 6, saltLength: 32 })
    case 'RS384': return sign('sha384', Buffer.from(input), key)
    case 'RS512': return sign('sha512', Buffer.from(input), key)
    default: return sign('sha256', Buffer.from(input), key)
  }
}

/**
 * Mints the token a spec describes, now. `attacker` signs with a key the authority never published,
 * under the current key's kid.
 */
export function build (spec: Spec, world: KeyWorld, attacker: TestKey, nowSeconds = Math.floor(Date.now() / 1000)): Case {
  const tenantSwitch = [...spec.mutations].reverse().find((m) => m.kind === 'tenant')
  const switched = tenantSwitch === undefined ? TENANT : tenantSwitch.tenant === 'other' ? OTHER_TENANT : THIRD_TENANT
  const claims = appClaims({}, spec.version, tenantSwitch?.part === 'iss' ? TENANT : switched)
  // Half a switch: iss names one tenant and tid the other.
  if (tenantSwitch?.part === 'iss') claims.iss = (spec.version === '2.0' ? v2Issuer : v1Issuer)(switched)
  if (tenantSwitch?.part === 'tid') claims.iss = (spec.version === '2.0' ? v2Issuer : v1Issuer)(TENANT)
  claims.iat = nowSeconds - 300
  claims.nbf = nowSeconds - 300
  claims.exp = nowSeconds + 3600
  let payload: Member[] = Object.entries(claims).map(([name, value]) => [name, str(value)])

  const signer = [...spec.mutations].reverse().find((m) => m.kind === 'signer')?.key ?? 'current'
  const signingKey = signer === 'attacker' ? attacker : world[signer]
  const kidOf = signer === 'attacker' ? world.current.kid : signingKey.kid
  const alg = [...spec.mutations].reverse().find((m) => m.kind === 'alg')?.alg ?? 'RS256'
  let header: Member[] = [['alg', str(alg)], ['typ', str('JWT')], ['kid', str(kidOf)]]
  if (spec.version === '1.0') header.push(['x5t', str(kidOf)])

  const substitute = (value: Raw): Raw => {
    if (!('text' in value) || !value.text.includes('$KID')) return value
    return { text: value.text.replace('$KID_UPPER', kidOf.toUpperCase()).replace(/\$KID_(\w+)/, (_, name: KeyName) => world[name].kid) }
  }
  for (const m of spec.mutations) {
    if (m.kind === 'claim') payload = applyMemberMutation(payload, m, substitute)
    else if (m.kind === 'header') header = applyMemberMutation(header, m, substitute)
    else if (m.kind === 'time') payload = applyMemberMutation(payload, { kind: 'claim', name: m.name, op: 'set', value: { text: String(nowSeconds + m.offsetSeconds) }, label: '' }, substitute)
  }

  // JSON text rarely encodes to the 62nd/63rd characters; "???" does ("Pz8/"), so the standard alphabet shows.
  const stdAlphabet = (segment: string) => spec.mutations.some((m) => m.kind === 'encoding' && m.segment === segment && m.op === 'std-alphabet')
  if (stdAlphabet('header')) header.push(['x-msi-pair', str('???')])
  if (stdAlphabet('payload')) payload.push(['x-msi-pair', str('???')])

  const textOp = [...spec.mutations].reverse().find((m) => m.kind === 'payload-text')?.op
  let payloadBytes = objectBytes(payload)
  if (textOp === 'bom') payloadBytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), payloadBytes])
  else if (textOp === 'array') payloadBytes = Buffer.concat([Buffer.from('['), payloadBytes, Buffer.from(']')])
  else if (textOp === 'not-json') payloadBytes = Buffer.concat([payloadBytes.subarray(0, -1), Buffer.from(',')])
  else if (textOp === 'whitespace') payloadBytes = Buffer.from(`\n ${payloadBytes.toString('latin1')} \t`, 'latin1')

  const encodingOf = (segment: 'header' | 'payload' | 'signature') =>
    [...spec.mutations].reverse().find((m): m is Extract<Mutation, { kind: 'encoding' }> => m.kind === 'encoding' && m.segment === segment)?.op
  const input = `${encode(objectBytes(header), encodingOf('header'))}.${encode(payloadBytes, encodingOf('payload'))}`
  let signature = encode(signWith(alg, input, signingKey.privateKey), encodingOf('signature'))

  const signatureOp = [...spec.mutations].reverse().find((m) => m.kind === 'signature')?.op
  if (signatureOp === 'empty') signature = ''
  else if (signatureOp === 'truncated') signature = signature.slice(0, -4)
  else if (signatureOp === 'flipped') signature = (signature[0] === 'A' ? 'B' : 'A') + signature.slice(1)
  else if (signatureOp === 'transplanted') signature = encode(signWith('RS256', `${input}x`, signingKey.privateKey), undefined)

  return { spec, token: `${input}.${signature}`, description: describeSpec(spec) }
}
