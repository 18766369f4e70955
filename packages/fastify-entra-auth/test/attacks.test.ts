import assert from 'node:assert/strict'
import { randomUUID, sign } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import {
  API_APP_ID_URI, API_CLIENT_ID, OTHER_TENANT, TENANT, TestAuthority, appClaims, b64, createCatalogueKeys, createTestKey, jwtHeader,
  mint, publicJwk, signRaw, startCatalogueAuthority, v1Issuer, v2Issuer
} from './helpers/authority.ts'
import { startApp as startApi, type TestApp as TestApi } from './helpers/app.ts'

/*
 * The attack catalogue of shared/research/entra-token-validation.md §6 (numbers in the test names),
 * plus the api's own rules. Every case asserts the HTTP status, the RFC 6750 error in WWW-Authenticate
 * and the reason counted in auth_requests_total.
 */

type Expected = { status: number, error: string, reason: string }
const ACCEPTED: Expected = { status: 200, error: '', reason: 'none' }
const rejected = (reason: string): Expected => ({ status: 401, error: 'invalid_token', reason })
const badRequest = (reason: string): Expected => ({ status: 400, error: 'invalid_request', reason })
const forbidden = (reason: string): Expected => ({ status: 403, error: 'insufficient_scope', reason })

const keys = createCatalogueKeys()
const { entra, msaKey, v1OnlyKey, attackerKey } = keys
let authority: TestAuthority
let attacker: TestAuthority
let api: TestApi

const header = (extra: Record<string, unknown> = {}) => jwtHeader(entra, extra)

before(async () => {
  authority = await startCatalogueAuthority(keys)
  attacker = await TestAuthority.start({ [TENANT]: [attackerKey] })
  api = await startApi(authority.url, {}, (app) => {
    app.get('/two-roles', { config: { auth: { roles: ['Orders.Read', 'Orders.Write'] } } }, async () => 'ok')
  })
})
after(async () => {
  await api?.app.close()
  await authority?.stop()
  await attacker?.stop()
})

const resultOf = (status: number) => status === 200 ? 'accepted' : status === 403 ? 'forbidden' : status === 503 ? 'unavailable' : 'rejected'

async function inspect (authorization: string | string[] | undefined, expected: Expected, path = '/claims') {
  const before = await api.metric('auth_requests_total', { result: resultOf(expected.status), reason: expected.reason })
  const response = await api.get(authorization, path)
  assert.equal(response.statusCode, expected.status, `status (body ${response.body})`)
  const challenge = response.headers['www-authenticate']
  if (expected.status === 200) {
    assert.equal(challenge, undefined)
  } else {
    assert.match(String(challenge), new RegExp(`^Bearer error="${expected.error}", error_description="[^"\\\\]+"`))
    assert.equal((response.json() as { error: string }).error, expected.error)
    // RFC 6750 §3: every 403 insufficient_scope names the scope (here: the route's roles) that would do.
    if (expected.status === 403) assert.match(String(challenge), new RegExp(`, scope="${path === '/two-roles' ? 'Orders\\.Read Orders\\.Write' : 'DoAll'}"$`))
    else assert.doesNotMatch(String(challenge), /scope=/)
    // Nothing of the token comes back, not even a fragment of its payload.
    const token = (Array.isArray(authorization) ? authorization.join(' ') : authorization ?? '').replace(/^Bearer /i, '')
    for (const part of token.split('.').filter((p) => p.length >= 8)) {
      assert.ok(!response.body.includes(part) && !String(challenge).includes(part), 'the response echoes the token')
    }
  }
  assert.equal(await api.metric('auth_requests_total', { result: resultOf(expected.status), reason: expected.reason }), before + 1, `reason ${expected.reason}`)
  return response
}

/** inspect without the response, for node:test's void-returning test functions. */
async function check (authorization: string | string[] | undefined, expected: Expected, path = '/claims'): Promise<void> {
  await inspect(authorization, expected, path)
}

const bearer = (token: string) => `Bearer ${token}`

describe('accepted tokens', () => {
  test('a v2 app-only token: 200 with the claims and a typed identity', async () => {
    const response = await inspect(bearer(mint(entra)), ACCEPTED)
    const claims = response.json() as Record<string, unknown>
    assert.equal(claims.tid, TENANT)
    assert.equal(claims.azp, appClaims().azp)
  })
  test('a v1 app-only token, against the v1 OpenID configuration', async () => {
    const response = await inspect(bearer(mint(entra, appClaims({}, '1.0'), { x5t: entra.kid })), ACCEPTED)
    assert.equal((response.json() as Record<string, unknown>).iss, v1Issuer(TENANT))
  })
  test('15: expired 2 minutes ago is inside Microsoft\'s 5 minute clock skew', async () => {
    await check(bearer(mint(entra, appClaims({ exp: Math.floor(Date.now() / 1000) - 120 }))), ACCEPTED)
  })
  test('17: nbf 2 minutes ahead is inside the clock skew', async () => {
    await check(bearer(mint(entra, appClaims({ nbf: Math.floor(Date.now() / 1000) + 120 }))), ACCEPTED)
  })
  test('22: aud with a trailing slash on the App ID URI (IgnoreTrailingSlashWhenValidatingAudience)', async () => {
    await check(bearer(mint(entra, appClaims({ aud: `${API_APP_ID_URI}/` }, '1.0'))), ACCEPTED)
  })
  test('the Bearer scheme is case-insensitive (RFC 7235)', async () => {
    await check(`bearer ${mint(entra)}`, ACCEPTED)
  })
})

describe('the Authorization header', () => {
  test('no header: 401 missing_token', () => check(undefined, rejected('missing_token')))
  test('another scheme: 401 missing_token', () => check('Basic dXNlcjpwYXNz', rejected('missing_token')))
  test('Bearer without a token: 400', () => check('Bearer', badRequest('malformed')))
  test('Bearer with two tokens: 400', () => check(`Bearer ${mint(entra)} ${mint(entra)}`, badRequest('malformed')))
  test('two Authorization headers: 400', () => check([bearer(mint(entra)), bearer(mint(entra))], badRequest('malformed')))
  test('a token in the query string as well: 400 (RFC 6750 §2.3 not supported)', () =>
    check(bearer(mint(entra)), badRequest('malformed'), '/claims?access_token=abc'))
  test('13: whitespace inside the token: 400', () => {
    const token = mint(entra)
    return check(`Bearer ${token.slice(0, 20)} ${token.slice(20)}`, badRequest('malformed'))
  })
  // RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token; RFC 9110 §11.4 the same for token68.
  test('issue 12: two spaces after Bearer: accepted (1*SP)', () => check(`Bearer  ${mint(entra)}`, ACCEPTED))
  test('issue 12: five spaces after BEARER: accepted', () => check(`BEARER     ${mint(entra)}`, ACCEPTED))
  test('whitespace around the field value is not part of it (RFC 9110 §5.5): accepted', () => check(` \tBearer ${mint(entra)} \t`, ACCEPTED))
  test('a tab instead of the space after Bearer: 400 (1*SP, not whitespace)', () => check(`Bearer\t${mint(entra)}`, badRequest('malformed')))
  test('Bearer followed by spaces only: 400', () => check('Bearer    ', badRequest('malformed')))
  test('a comma after the scheme: not Bearer credentials: 400', () => check(`Bearer,${mint(entra)}`, badRequest('malformed')))
  test('Bearer glued to the token: another scheme, 401 missing_token', () => check(`Bearer${mint(entra)}`, rejected('missing_token')))
  test('issue 12: "=" padding at the end of the payload segment: a bad token, 401 invalid_token', () => {
    const [h, p, sig] = mint(entra).split('.') as [string, string, string]
    const padded = p.length % 4 === 0 ? `${h}.${p}.${sig}` : `${h}.${p}${'='.repeat(4 - (p.length % 4))}.${sig}`
    assert.notEqual(padded, [h, p, sig].join('.'), 'the payload needs padding for this case')
    return check(bearer(padded), rejected('malformed'))
  })
  test('characters outside b64token (%, !, non-ASCII): 401 invalid_token', async () => {
    const token = mint(entra)
    await check(bearer(`${token.slice(0, 30)}%41${token.slice(33)}`), rejected('malformed'))
    await check(bearer(`${token.slice(0, 30)}!${token.slice(31)}`), rejected('malformed'))
    await check(bearer(`${token.slice(0, 30)}é${token.slice(31)}`), rejected('malformed'))
  })
})

describe('header and shape (rejected before any key lookup)', () => {
  const claims = () => appClaims()
  test('1: alg none with an empty signature', () => check(bearer(`${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.`), rejected('malformed')))
  test('2: alg none with a junk signature', () => check(bearer(`${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.c2ln`), rejected('unsupported_alg')))
  for (const alg of ['None', 'NONE', 'nOnE']) {
    test(`3: alg ${alg}`, () => check(bearer(`${b64({ alg, typ: 'JWT', kid: entra.kid })}.${b64(claims())}.c2ln`), rejected('unsupported_alg')))
  }
  test('3: alg rs256 (lower case) over a valid RS256 signature', () =>
    check(bearer(signRaw(header({ alg: 'rs256' }), claims(), entra.privateKey)), rejected('unsupported_alg')))
  for (const alg of ['RS512', 'PS256'] as const) {
    test(`4: ${alg}, validly signed with the real key`, () =>
      check(bearer(signRaw(header({ alg }), claims(), entra.privateKey, alg)), rejected('unsupported_alg')))
  }
  test('5: HS256 keyed with the public key (SPKI PEM, PKCS#1 PEM, JWK JSON)', async () => {
    const secrets = [
      entra.publicKey.export({ type: 'spki', format: 'pem' }),
      entra.publicKey.export({ type: 'pkcs1', format: 'pem' }),
      JSON.stringify(publicJwk(entra))
    ]
    for (const secret of secrets) {
      await check(bearer(signRaw(header({ alg: 'HS256' }), claims(), Buffer.from(secret), 'HS256')), rejected('unsupported_alg'))
    }
  })
  test('6: an embedded jwk header with the attacker\'s key', () =>
    check(bearer(signRaw(header({ jwk: publicJwk(attackerKey) }), claims(), attackerKey.privateKey)), rejected('malformed')))
  test('7: jku and x5u pointing at the attacker: refused, and never fetched', async () => {
    const before = attacker.jwksRequests()
    for (const name of ['jku', 'x5u']) {
      await check(bearer(signRaw(header({ [name]: `${attacker.url}/${TENANT}/discovery/v2.0/keys` }), claims(), attackerKey.privateKey)), rejected('malformed'))
    }
    assert.equal(attacker.jwksRequests(), before)
  })
  test('8: an x5c header with the attacker\'s certificate is ignored: the signature fails', () =>
    check(bearer(signRaw(header({ x5c: [Buffer.from('attacker certificate').toString('base64')] }), claims(), attackerKey.privateKey)), rejected('bad_signature')))
  test('9: kid injection (path, SQL, very long, unicode, missing): refused without a JWKS fetch', async () => {
    const fetches = authority.jwksRequests()
    for (const kid of ['../../dev/null', "x' OR '1'='1", 'k'.repeat(500), 'kïd', '', 42]) {
      await check(bearer(signRaw(header({ kid }), claims(), entra.privateKey)), rejected('malformed'))
    }
    await check(bearer(signRaw({ alg: 'RS256', typ: 'JWT' }, claims(), entra.privateKey)), rejected('malformed'))
    assert.equal(authority.jwksRequests(), fetches)
  })
  for (const crit of [['exp'], ['unknown-ext'], []]) {
    test(`10: crit ${JSON.stringify(crit)}`, () => check(bearer(signRaw(header({ crit }), claims(), entra.privateKey)), rejected('malformed')))
  }
  test('11: signature stripped (h.p.)', () => check(bearer(mint(entra).replace(/[^.]+$/, '')), rejected('malformed')))
  test('11: two segments (h.p)', () => check(bearer(mint(entra).replace(/\.[^.]+$/, '')), rejected('malformed')))
  test('12: a signature transplanted from another valid token', () => {
    const [h, p] = mint(entra, appClaims({ roles: ['DoAll', 'Admin'] })).split('.')
    const signature = mint(entra).split('.')[2]
    return check(bearer(`${h}.${p}.${signature}`), rejected('bad_signature'))
  })
  test('13: non-canonical base64 (padding, + and /)', async () => {
    const token = mint(entra)
    await check(bearer(`${token}==`), rejected('malformed'))
    const [h, p, s] = token.split('.') as [string, string, string]
    await check(bearer(`${h}.${p}.${s.replaceAll('-', '+').replaceAll('_', '/')}x+/`), rejected('malformed'))
  })
  test('typ other than JWT', () => check(bearer(signRaw(header({ typ: 'at+jwt' }), claims(), entra.privateKey)), rejected('malformed')))
  test('33: a nested JWT (cty: JWT)', () => check(bearer(signRaw(header({ cty: 'JWT' }), mint(entra), entra.privateKey)), rejected('malformed')))
  test('34: a payload that is a JSON array, a header that is not JSON', async () => {
    await check(bearer(signRaw(header(), JSON.stringify([appClaims()]), entra.privateKey)), rejected('malformed'))
    await check(bearer(`${b64('not json')}.${b64(claims())}.c2ln`), rejected('malformed'))
  })
  test('35: a JWE (five segments)', () => check(bearer(`${b64({ alg: 'RSA-OAEP', enc: 'A256GCM' })}.YQ.YQ.YQ.YQ`), rejected('malformed')))
  test('36: an oversized but validly signed token (20 KB claim)', () =>
    check(bearer(mint(entra, appClaims({ padding: 'x'.repeat(20_000) }))), rejected('malformed')))
})

describe('lifetime', () => {
  const now = () => Math.floor(Date.now() / 1000)
  test('14: expired an hour ago', () => check(bearer(mint(entra, appClaims({ exp: now() - 3600 }))), rejected('expired')))
  test('16: nbf an hour ahead', () => check(bearer(mint(entra, appClaims({ nbf: now() + 3600 }))), rejected('not_yet_valid')))
  test('18: exp missing', () => check(bearer(mint(entra, appClaims({ exp: undefined }))), rejected('missing_claim')))
  test('19: exp as a string', () => check(bearer(mint(entra, appClaims({ exp: String(now() + 3600) }))), rejected('invalid_claim')))
  test('nbf after exp (each inside the skew)', () => check(bearer(mint(entra, appClaims({ nbf: now() + 60, exp: now() + 30 }))), rejected('invalid_claim')))
})

describe('audience', () => {
  test('20: another api\'s audience (confused deputy)', () =>
    check(bearer(mint(entra, appClaims({ aud: '99999999-9999-4999-9999-999999999999' }))), rejected('wrong_audience')))
  test('21: aud missing', () => check(bearer(mint(entra, appClaims({ aud: undefined }))), rejected('missing_claim')))
  test('23: several audiences, ours among them', () =>
    check(bearer(mint(entra, appClaims({ aud: ['99999999-9999-4999-9999-999999999999', API_CLIENT_ID] }))), rejected('wrong_audience')))
})

describe('issuer, tenant and version', () => {
  test('24: the issuer and tid of another tenant, signed with the shared key', () =>
    check(bearer(mint(entra, appClaims({}, '2.0', OTHER_TENANT))), rejected('wrong_tenant')))
  test('25: our issuer with another tenant\'s tid', () =>
    check(bearer(mint(entra, appClaims({ tid: OTHER_TENANT }))), rejected('wrong_tenant')))
  test('26: issuer case variant (/V2.0)', () =>
    check(bearer(mint(entra, appClaims({ iss: v2Issuer(TENANT).replace('v2.0', 'V2.0') }))), rejected('wrong_issuer')))
  test('27: issuer as an array [evil, ours]', () =>
    check(bearer(mint(entra, appClaims({ iss: ['https://evil.example/', v2Issuer(TENANT)] }))), rejected('wrong_issuer')))
  test('28: a v1 issuer with ver 2.0, a v2 issuer with ver 1.0', async () => {
    await check(bearer(mint(entra, appClaims({ iss: v1Issuer(TENANT) }))), rejected('wrong_issuer'))
    await check(bearer(mint(entra, appClaims({ iss: v2Issuer(TENANT) }, '1.0'))), rejected('wrong_issuer'))
  })
  test('29: tid not a GUID; tid missing', async () => {
    await check(bearer(mint(entra, appClaims({ tid: 'contoso.onmicrosoft.com' }))), rejected('invalid_claim'))
    await check(bearer(mint(entra, appClaims({ tid: undefined }))), rejected('missing_claim'))
  })
  test('30: signed by a key whose JWKS issuer is another tenant (signing-key issuer validation)', () =>
    check(bearer(mint(msaKey)), rejected('wrong_issuer')))
  test('issue 12: a v1 token signed by that key: refused through the key\'s v2 JWKS entry (IDX40005)', () =>
    check(bearer(mint(msaKey, appClaims({}, '1.0'))), rejected('wrong_issuer')))
  test('a v1 token signed by a {tenantid} key passes through the v2 form of the tenant\'s issuer', () =>
    check(bearer(mint(entra, appClaims({}, '1.0'))), ACCEPTED))
  test('differential F6: a v1 token signed by a key of the v1 JWKS only (no v2 entry, so no issuer to check): 401 unknown_key', () =>
    check(bearer(mint(v1OnlyKey, appClaims({}, '1.0'))), rejected('unknown_key')))
  test('differential F5: registered members of the wrong JSON type, used or not: x5t not a string, azp an object in a v1 token, jti a number', async () => {
    for (const x5t of [true, 5, {}, []]) await check(bearer(mint(entra, appClaims(), { x5t })), rejected('malformed'))
    await check(bearer(mint(entra, appClaims({ azp: {} }, '1.0'))), rejected('invalid_claim'))
    await check(bearer(mint(entra, appClaims({ appid: 7 }))), rejected('invalid_claim'))
    await check(bearer(mint(entra, appClaims({ jti: 12 }))), rejected('invalid_claim'))
    await check(bearer(mint(entra, appClaims(), { 'x5t#S256': 5 })), rejected('malformed'))
    await check(bearer(mint(entra, appClaims(), { 'x5t#S256': 'abc', x5t: entra.kid })), ACCEPTED)
  })
  test('differential F7: typ "application/jwt" is the media type JWT (RFC 7515 §4.1.9): accepted; "application/at+jwt" is not', async () => {
    await check(bearer(mint(entra, appClaims(), { typ: 'application/jwt' })), ACCEPTED)
    await check(bearer(mint(entra, appClaims(), { typ: 'Application/JWT' })), ACCEPTED)
    await check(bearer(mint(entra, appClaims(), { typ: 'application/at+jwt' })), rejected('malformed'))
  })
  test('unknown or unsupported ver', async () => {
    await check(bearer(mint(entra, appClaims({ ver: '3.0' }))), rejected('wrong_version'))
    await check(bearer(mint(entra, appClaims({ ver: 2 }))), rejected('wrong_version'))
  })
  test('42: an attacker\'s issuer never decides where keys come from', async () => {
    const before = attacker.jwksRequests() + attacker.requests.size
    await check(bearer(mint(attackerKey, appClaims({ iss: `${attacker.url}/${TENANT}/v2.0` }))), rejected('bad_signature'))
    await check(bearer(mint(attackerKey, appClaims({ iss: attacker.url, tid: randomUUID() }))), rejected('wrong_tenant'))
    assert.equal(attacker.jwksRequests() + attacker.requests.size, before)
  })
})

describe('claims', () => {
  test('31: duplicate JSON members ("aud" twice): rejected rather than last-wins', () => {
    const claims = appClaims()
    const json = JSON.stringify(claims).replace('{', '{"aud":"99999999-9999-4999-9999-999999999999",')
    return check(bearer(signRaw(header(), json, entra.privateKey)), rejected('invalid_claim'))
  })
  test('31b: a duplicate spelled with a JSON escape ("a\\u0075d" is "aud") is still a duplicate', () => {
    const json = JSON.stringify(appClaims()).replace('{', '{"a\\u0075d":"99999999-9999-4999-9999-999999999999",')
    assert.match(json, /"a\\u0075d"/)
    return check(bearer(signRaw(header(), json, entra.privateKey)), rejected('invalid_claim'))
  })
  test('32: case-variant duplicates (tid and TID)', () =>
    check(bearer(mint(entra, appClaims({ TID: OTHER_TENANT }))), rejected('invalid_claim')))
  test('required claims of the right type: oid, azp, roles, iat', async () => {
    await check(bearer(mint(entra, appClaims({ oid: 'not-a-guid' }))), rejected('invalid_claim'))
    await check(bearer(mint(entra, appClaims({ azp: undefined }))), rejected('missing_claim'))
    await check(bearer(mint(entra, appClaims({ roles: 'DoAll' }))), rejected('invalid_claim'))
    await check(bearer(mint(entra, appClaims({ iat: 'yesterday' }))), rejected('invalid_claim'))
    await check(bearer(mint(entra, appClaims({ appid: undefined }, '1.0'))), rejected('missing_claim'))
  })
})

describe('app-only authorization', () => {
  test('37: an ID token (no azp, a nonce, no roles) is not an access token', () => {
    const claims = appClaims({ azp: undefined, azpacr: undefined, idtyp: undefined, roles: undefined, nonce: 'n-0S6_WzA2Mj', preferred_username: 'a@contoso.com' })
    return check(bearer(mint(entra, claims)), rejected('missing_claim'))
  })
  test('38: a delegated token (scp)', () => check(bearer(mint(entra, appClaims({ scp: 'DoAll', idtyp: undefined }))), forbidden('delegated_token')))
  test('38: idtyp user', () => check(bearer(mint(entra, appClaims({ idtyp: 'user' }))), forbidden('delegated_token')))
  test('issue 12: a delegated token (scp, no roles): 403 whose challenge names the route\'s roles', () =>
    check(bearer(mint(entra, appClaims({ scp: 'user_impersonation', roles: undefined, idtyp: undefined }))), forbidden('delegated_token')))
  test('issue 12: a delegated token on a route with two roles: scope="Orders.Read Orders.Write"', () =>
    check(bearer(mint(entra, appClaims({ scp: 'user_impersonation', roles: undefined, idtyp: undefined }))), forbidden('delegated_token'), '/two-roles'))
  test('a missing role on a route with two roles: both named', () =>
    check(bearer(mint(entra)), forbidden('missing_role'), '/two-roles'))
  test('39: an app token without the required role names the role in the challenge', async () => {
    const response = await inspect(bearer(mint(entra, appClaims({ roles: undefined }))), forbidden('missing_role'))
    assert.match(String(response.headers['www-authenticate']), /, scope="DoAll"$/)
  })
  test('40: another client app of our tenant, same key, another role', () =>
    check(bearer(mint(entra, appClaims({ azp: randomUUID(), oid: randomUUID(), roles: ['Reader'] }))), forbidden('missing_role')))
})

describe('keys', () => {
  test('41 (single request): an unknown kid is 401 unknown_key', () =>
    check(bearer(mint(createTestKey())), rejected('unknown_key')))
  test('a forged signature over a known kid', () => check(bearer(mint(attackerKey)), rejected('bad_signature')))
})

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
/** The other spellings of a base64url segment that decode to the same bytes (its last character's unused bits set). */
function respellings (segment: string): string[] {
  const unused = segment.length % 4 === 2 ? 0x0f : segment.length % 4 === 3 ? 0x03 : 0
  const last = ALPHABET.indexOf(segment.at(-1) as string)
  const out: string[] = []
  for (let bits = 1; bits <= unused; bits++) out.push(segment.slice(0, -1) + ALPHABET[last | bits])
  return out
}
/** A token signed over exactly these segment texts (so a non-canonical spelling carries a valid signature). */
const signSegments = (header: string, payload: string) =>
  `${header}.${payload}.${sign('sha256', Buffer.from(`${header}.${payload}`), entra.privateKey).toString('base64url')}`
/** Claims whose JSON makes the payload's base64url length 2 mod 4 (so its last character has 4 unused bits). */
function claimsWithPaddingBits (): Record<string, unknown> {
  for (let n = 0; ; n++) {
    const claims = appClaims({ pad: 'x'.repeat(n) })
    if (b64(claims).length % 4 === 2) return claims
  }
}

describe('issue 12: canonical base64url in every segment (RFC 7515 §2, RFC 4648 §3.5)', () => {
  test('the signature respelled in its unused low bits (same bytes): each of the 15 spellings is 401 malformed', async () => {
    const token = mint(entra)
    const signature = token.split('.')[2] as string
    assert.equal(signature.length % 4, 2, 'a 2048-bit signature leaves 4 unused bits')
    const spellings = respellings(signature)
    assert.equal(spellings.length, 15)
    for (const spelling of spellings) {
      assert.deepEqual(Buffer.from(spelling, 'base64url'), Buffer.from(signature, 'base64url'), 'the same signature bytes')
      await check(bearer(`${token.slice(0, token.lastIndexOf('.'))}.${spelling}`), rejected('malformed'))
    }
    await check(bearer(token), ACCEPTED)
  })
  test('a payload respelled and validly signed over that spelling: 401 malformed', async () => {
    const header = b64({ alg: 'RS256', typ: 'JWT', kid: entra.kid })
    const payload = b64(claimsWithPaddingBits())
    await check(bearer(signSegments(header, payload)), ACCEPTED)
    for (const spelling of respellings(payload)) await check(bearer(signSegments(header, spelling)), rejected('malformed'))
  })
  test('a header respelled and validly signed over that spelling: 401 malformed', async () => {
    let extra = ''
    while (b64({ alg: 'RS256', typ: 'JWT', kid: entra.kid, x: extra }).length % 4 !== 3) extra += 'y'
    const header = b64({ alg: 'RS256', typ: 'JWT', kid: entra.kid, x: extra })
    await check(bearer(signSegments(header, b64(appClaims()))), ACCEPTED)
    for (const spelling of respellings(header)) await check(bearer(signSegments(spelling, b64(appClaims()))), rejected('malformed'))
  })
  test('"=" padding on the signature (a valid b64token): 401 malformed', async () => {
    await check(bearer(`${mint(entra)}==`), rejected('malformed'))
  })
  test('a segment whose length is 1 mod 4 (no such base64): 401 malformed', async () => {
    const token = mint(entra)
    assert.equal(`${token}AAA`.split('.')[2]?.length as number % 4, 1)
    await check(bearer(`${token}AAA`), rejected('malformed'))
  })
})

describe('issue 12: NumericDate finite and in range (RFC 7519 §2; a signed 64-bit integer, as Microsoft reads it)', () => {
  const now = () => Math.floor(Date.now() / 1000)
  test('exp 1e20 (never expires): 401 invalid_claim', () => check(bearer(mint(entra, appClaims({ exp: 1e20 }))), rejected('invalid_claim')))
  test('exp 1e400 in the JSON text (JSON.parse reads Infinity): 401 invalid_claim', () => {
    const json = JSON.stringify(appClaims({ exp: 12345 })).replace('"exp":12345', '"exp":1e400')
    return check(bearer(signRaw(header(), json, entra.privateKey)), rejected('invalid_claim'))
  })
  test('exp -1e400 and nbf 1e19, iat 2^63: 401 invalid_claim', async () => {
    const json = JSON.stringify(appClaims({ nbf: 12345 })).replace('"nbf":12345', '"nbf":-1e400')
    await check(bearer(signRaw(header(), json, entra.privateKey)), rejected('invalid_claim'))
    await check(bearer(mint(entra, appClaims({ nbf: 1e19 }))), rejected('invalid_claim'))
    await check(bearer(mint(entra, appClaims({ iat: 2 ** 63 }))), rejected('invalid_claim'))
  })
  test('fractional NumericDates stay accepted (RFC 7519 §2)', () =>
    check(bearer(mint(entra, appClaims({ exp: now() + 3600.25, nbf: now() - 60.5, iat: now() - 60.75 }))), ACCEPTED))
  test('the upper end of the range: exp 9e18 and year 10000 are NumericDates (inside a signed 64-bit integer, as for Microsoft)', async () => {
    await check(bearer(mint(entra, appClaims({ exp: 9e18 }))), ACCEPTED)
    await check(bearer(mint(entra, appClaims({ exp: 253402300800 }))), ACCEPTED)
  })
})

describe('issue 12: strings that are not Unicode', () => {
  const headerText = () => b64({ alg: 'RS256', typ: 'JWT', kid: entra.kid })
  test('invalid UTF-8 bytes inside a claim value, validly signed: 401 malformed', async () => {
    const json = Buffer.from(JSON.stringify(appClaims({ note: 'AB' })))
    const at = json.indexOf('"AB"') + 1
    for (const bytes of [[0xff], [0xc3], [0xed, 0xa0, 0x80] /* an encoded surrogate */, [0xc0, 0xaf]]) {
      const broken = Buffer.concat([json.subarray(0, at), Buffer.from(bytes), json.subarray(at)])
      await check(bearer(signSegments(headerText(), broken.toString('base64url'))), rejected('malformed'))
    }
  })
  test('invalid UTF-8 in the header: 401 malformed', () => {
    const json = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: entra.kid, x: 'A' }))
    const broken = Buffer.concat([json.subarray(0, json.length - 3), Buffer.from([0xfe]), json.subarray(json.length - 3)])
    return check(bearer(signSegments(broken.toString('base64url'), b64(appClaims()))), rejected('malformed'))
  })
  test('a lone surrogate escape in a claim value or a claim name: 401 malformed', async () => {
    const base = JSON.stringify(appClaims({ note: 'N' }))
    for (const json of [base.replace('"note":"N"', '"note":"\\ud800"'), base.replace('"note":"N"', '"note":"a\\udfffb"'), base.replace('"note":"N"', '"\\ud800":"N"'), base.replace('"roles":["DoAll"]', '"roles":["DoAll","\\udc00"]')]) {
      assert.notEqual(json, base)
      await check(bearer(signRaw(header(), json, entra.privateKey)), rejected('malformed'))
    }
  })
  test('a surrogate pair escape (a real character) stays accepted', () => {
    const json = JSON.stringify(appClaims({ note: 'N' })).replace('"note":"N"', '"note":"\\ud83d\\ude00"')
    return check(bearer(signRaw(header(), json, entra.privateKey)), ACCEPTED)
  })
  test('a byte order mark before the payload JSON: 401 malformed', () =>
    check(bearer(signSegments(headerText(), Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(appClaims()))]).toString('base64url'))), rejected('malformed')))
})
