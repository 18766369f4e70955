import assert from 'node:assert/strict'
import { randomUUID, sign } from 'node:crypto'
import { after, before, test } from 'node:test'
import fc from 'fast-check'
import { explainToken, type ExplainOptions } from '../src/explain/explain.ts'
import { startApp, type TestApp } from './helpers/app.ts'
import {
  API_APP_ID_URI, API_CLIENT_ID, OTHER_TENANT, TENANT, TestAuthority, appClaims, b64, createCatalogueKeys, createTestKey, jwtHeader, mint,
  publicJwk, signRaw, startCatalogueAuthority, v1Issuer, v2Issuer
} from './helpers/authority.ts'

/*
 * explain's verdict is the api's (issue 14, item 2): every token of the attack catalogue
 * (attacks.test.ts, rebuilt here case by case with the same keys and the same authority layout), of the
 * validation tests (token-validation.test.ts) and a seeded fast-check corpus of mutated claims goes
 * through the plugin (app.inject on GET /claims, route role DoAll) and through explain with --keys
 * against the same authority: same status, same reason. Offline explain must agree too, except where the
 * api's answer needs the keys (unknown_key, bad_signature, a key's issuer). And for every token, the
 * first check explain marks failed names the verdict's reason.
 */

const keys = createCatalogueKeys()
const { entra, msaKey, v1OnlyKey, attackerKey } = keys
let authority: TestAuthority
let api: TestApp

before(async () => {
  authority = await startCatalogueAuthority(keys)
  api = await startApp(authority.url)
})
after(async () => {
  await api?.app.close()
  await authority?.stop()
})

const now = () => Math.floor(Date.now() / 1000)

/** The attack catalogue's tokens and the validation tests' tokens (each a token, not a header). */
function catalogue (): Array<[string, string]> {
  const header = (extra: Record<string, unknown> = {}) => jwtHeader(entra, extra)
  const claims = () => appClaims()
  const token = mint(entra)
  const [h, p, s] = token.split('.') as [string, string, string]
  const signSegments = (hh: string, pp: string) => `${hh}.${pp}.${sign('sha256', Buffer.from(`${hh}.${pp}`), entra.privateKey).toString('base64url')}`
  const list: Array<[string, string]> = [
    ['v2 app-only', token],
    ['v1 app-only', mint(entra, appClaims({}, '1.0'), { x5t: entra.kid })],
    ['15 exp 2 min ago (inside skew)', mint(entra, appClaims({ exp: now() - 120 }))],
    ['17 nbf 2 min ahead', mint(entra, appClaims({ nbf: now() + 120 }))],
    ['22 aud trailing slash v1', mint(entra, appClaims({ aud: `${API_APP_ID_URI}/` }, '1.0'))],
    ['1 alg none empty signature', `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.`],
    ['2 alg none junk signature', `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.c2ln`],
    ...['None', 'NONE', 'nOnE'].map((alg): [string, string] => [`3 alg ${alg}`, `${b64({ alg, typ: 'JWT', kid: entra.kid })}.${b64(claims())}.c2ln`]),
    ['3 alg rs256', signRaw(header({ alg: 'rs256' }), claims(), entra.privateKey)],
    ['4 RS512', signRaw(header({ alg: 'RS512' }), claims(), entra.privateKey, 'RS512')],
    ['4 PS256', signRaw(header({ alg: 'PS256' }), claims(), entra.privateKey, 'PS256')],
    ['5 HS256 with the public key', signRaw(header({ alg: 'HS256' }), claims(), Buffer.from(entra.publicKey.export({ type: 'spki', format: 'pem' })), 'HS256')],
    ['6 embedded jwk', signRaw(header({ jwk: publicJwk(attackerKey) }), claims(), attackerKey.privateKey)],
    ['7 jku', signRaw(header({ jku: 'https://evil.example/keys' }), claims(), attackerKey.privateKey)],
    ['7 x5u', signRaw(header({ x5u: 'https://evil.example/cert' }), claims(), attackerKey.privateKey)],
    ['8 x5c attacker', signRaw(header({ x5c: [Buffer.from('attacker certificate').toString('base64')] }), claims(), attackerKey.privateKey)],
    ...['../../dev/null', "x' OR '1'='1", 'k'.repeat(500), 'kïd', '', 42].map((kid): [string, string] => [`9 kid ${String(kid).slice(0, 12)}`, signRaw(header({ kid }), claims(), entra.privateKey)]),
    ['9 kid missing', signRaw({ alg: 'RS256', typ: 'JWT' }, claims(), entra.privateKey)],
    ...[['exp'], ['unknown-ext'], []].map((crit): [string, string] => [`10 crit ${JSON.stringify(crit)}`, signRaw(header({ crit }), claims(), entra.privateKey)]),
    ['11 signature stripped', `${h}.${p}.`],
    ['11 two segments', `${h}.${p}`],
    ['12 transplanted signature', `${mint(entra, appClaims({ roles: ['DoAll', 'Admin'] })).split('.').slice(0, 2).join('.')}.${s}`],
    ['13 padding', `${token}==`],
    ['13 + and /', `${h}.${p}.${s.replaceAll('-', '+').replaceAll('_', '/')}x+/`],
    ['typ at+jwt', signRaw(header({ typ: 'at+jwt' }), claims(), entra.privateKey)],
    ['33 nested JWT', signRaw(header({ cty: 'JWT' }), mint(entra), entra.privateKey)],
    ['34 payload array', signRaw(header(), JSON.stringify([appClaims()]), entra.privateKey)],
    ['34 header not JSON', `${b64('not json')}.${b64(claims())}.c2ln`],
    ['35 JWE', `${b64({ alg: 'RSA-OAEP', enc: 'A256GCM' })}.YQ.YQ.YQ.YQ`],
    ['36 oversized', mint(entra, appClaims({ padding: 'x'.repeat(20_000) }))],
    ['14 expired', mint(entra, appClaims({ exp: now() - 3600 }))],
    ['16 nbf ahead', mint(entra, appClaims({ nbf: now() + 3600 }))],
    ['18 exp missing', mint(entra, appClaims({ exp: undefined }))],
    ['19 exp string', mint(entra, appClaims({ exp: String(now() + 3600) }))],
    ['nbf after exp', mint(entra, appClaims({ nbf: now() + 60, exp: now() + 30 }))],
    ['20 confused deputy', mint(entra, appClaims({ aud: '99999999-9999-4999-9999-999999999999' }))],
    ['21 aud missing', mint(entra, appClaims({ aud: undefined }))],
    ['23 several audiences', mint(entra, appClaims({ aud: ['99999999-9999-4999-9999-999999999999', API_CLIENT_ID] }))],
    ['24 other tenant', mint(entra, appClaims({}, '2.0', OTHER_TENANT))],
    ['25 our iss other tid', mint(entra, appClaims({ tid: OTHER_TENANT }))],
    ['26 issuer case', mint(entra, appClaims({ iss: v2Issuer(TENANT).replace('v2.0', 'V2.0') }))],
    ['27 issuer array', mint(entra, appClaims({ iss: ['https://evil.example/', v2Issuer(TENANT)] }))],
    ['28 v1 iss ver 2.0', mint(entra, appClaims({ iss: v1Issuer(TENANT) }))],
    ['28 v2 iss ver 1.0', mint(entra, appClaims({ iss: v2Issuer(TENANT) }, '1.0'))],
    ['29 tid not a GUID', mint(entra, appClaims({ tid: 'contoso.onmicrosoft.com' }))],
    ['29 tid missing', mint(entra, appClaims({ tid: undefined }))],
    ['30 key of another issuer', mint(msaKey)],
    ['issue 12 v1 token, key of another issuer', mint(msaKey, appClaims({}, '1.0'))],
    ['v1 token, v1-only key', mint(v1OnlyKey, appClaims({}, '1.0'))],
    ['ver 3.0', mint(entra, appClaims({ ver: '3.0' }))],
    ['ver number', mint(entra, appClaims({ ver: 2 }))],
    ['42 attacker iss', mint(attackerKey, appClaims({ iss: `https://evil.example/${TENANT}/v2.0` }))],
    ['42 attacker tid', mint(attackerKey, appClaims({ iss: 'https://evil.example', tid: randomUUID() }))],
    ['31 duplicate aud', signRaw(header(), JSON.stringify(claims()).replace('{', '{"aud":"99999999-9999-4999-9999-999999999999",'), entra.privateKey)],
    ['31b escaped duplicate', signRaw(header(), JSON.stringify(claims()).replace('{', '{"a\\u0075d":"99999999-9999-4999-9999-999999999999",'), entra.privateKey)],
    ['32 tid and TID', mint(entra, appClaims({ TID: OTHER_TENANT }))],
    ['oid not a GUID', mint(entra, appClaims({ oid: 'not-a-guid' }))],
    ['azp missing', mint(entra, appClaims({ azp: undefined }))],
    ['roles a string', mint(entra, appClaims({ roles: 'DoAll' }))],
    ['iat a string', mint(entra, appClaims({ iat: 'yesterday' }))],
    ['v1 appid missing', mint(entra, appClaims({ appid: undefined }, '1.0'))],
    ['37 ID token', mint(entra, appClaims({ azp: undefined, azpacr: undefined, idtyp: undefined, roles: undefined, nonce: 'n-0S6_WzA2Mj' }))],
    ['38 scp', mint(entra, appClaims({ scp: 'DoAll', idtyp: undefined }))],
    ['38 idtyp user', mint(entra, appClaims({ idtyp: 'user' }))],
    ['delegated, no roles', mint(entra, appClaims({ scp: 'user_impersonation', roles: undefined, idtyp: undefined }))],
    ['39 no role', mint(entra, appClaims({ roles: undefined }))],
    ['40 another client, another role', mint(entra, appClaims({ azp: randomUUID(), oid: randomUUID(), roles: ['Reader'] }))],
    ['41 unknown kid', mint(createTestKey())],
    ['x5t naming another published key than kid', mint(entra, appClaims({}, '1.0'), { x5t: msaKey.kid })],
    ['forged signature over a known kid', mint(attackerKey)],
    ['respelled signature', `${h}.${p}.${s.slice(0, -1)}${s.at(-1) === 'A' ? 'B' : 'A'}`],
    ['exp 1e20', mint(entra, appClaims({ exp: 1e20 }))],
    ['exp 1e400', signRaw(header(), JSON.stringify(appClaims({ exp: 12345 })).replace('"exp":12345', '"exp":1e400'), entra.privateKey)],
    ['fractional times', mint(entra, appClaims({ exp: now() + 3600.25, nbf: now() - 60.5, iat: now() - 60.75 }))],
    ['exp 9e18', mint(entra, appClaims({ exp: 9e18 }))],
    ['lone surrogate', signRaw(header(), JSON.stringify(appClaims({ note: 'N' })).replace('"note":"N"', '"note":"\\ud800"'), entra.privateKey)],
    ['BOM payload', signSegments(b64(header()), Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(appClaims()))]).toString('base64url'))],
    ['invalid UTF-8', signSegments(b64(header()), Buffer.concat([Buffer.from('{"x":"'), Buffer.from([0xff]), Buffer.from(`",${JSON.stringify(appClaims()).slice(1)}`)]).toString('base64url'))],
    // token-validation.test.ts
    ['validation: over the size cap', 'a'.repeat(8193)],
    ['validation: v1 token', mint(entra, appClaims({}, '1.0'))],
    ['validation: two roles', mint(entra, appClaims({ roles: ['Reader', 'Writer'] }))]
  ]
  return list
}

/** What the plugin answered for one token: status and the reason it logged (none when accepted). */
async function viaPlugin (token: string): Promise<[number, string]> {
  const before = api.logs.length
  const response = await api.get(`Bearer ${token}`)
  const logged = api.logs.slice(before).map((line) => line.auth as { reason?: string } | undefined).find((auth) => auth?.reason !== undefined)
  return [response.statusCode, logged?.reason ?? 'none']
}

const options = (): ExplainOptions => ({ tenants: [TENANT], audiences: [API_CLIENT_ID, API_APP_ID_URI], requiredRoles: ['DoAll'], authorityHost: authority.url })
const NEEDS_KEYS = new Set(['unknown_key', 'bad_signature', 'keys_unavailable'])

async function compare (name: string, token: string, counts: { keys: number, offline: number, offlineSkipped: number }) {
  const [status, reason] = await viaPlugin(token)
  const online = await explainToken(token, { ...options(), keys: true })
  assert.deepEqual([online.verdict.status, online.verdict.reason], [status, reason], `${name}: explain --keys vs the plugin`)
  assert.equal(online.checks.find((check) => check.status === 'fail')?.reason ?? 'none', reason, `${name}: the first failed check (--keys)`)
  counts.keys++
  const offline = await explainToken(token, options())
  const keyIssuer = online.checks.find((check) => check.id === 'key-issuer' && check.status === 'fail') !== undefined
  if (NEEDS_KEYS.has(reason) || keyIssuer) {
    counts.offlineSkipped++
    return
  }
  assert.deepEqual([offline.verdict.status, offline.verdict.reason], [status, reason], `${name}: offline explain vs the plugin`)
  assert.equal(offline.checks.find((check) => check.status === 'fail')?.reason ?? 'none', reason, `${name}: the first failed check (offline)`)
  counts.offline++
}

test('the attack catalogue and the validation tests\' tokens: explain and the plugin agree', async (t) => {
  const counts = { keys: 0, offline: 0, offlineSkipped: 0 }
  const tokens = catalogue()
  for (const [name, token] of tokens) await compare(name, token, counts)
  assert.equal(counts.keys, tokens.length)
  // Most of the catalogue needs no key to be decided.
  assert.ok(counts.offline > tokens.length * 0.75, JSON.stringify(counts))
  t.diagnostic(`tokens ${tokens.length}: --keys agreed on ${counts.keys}, offline on ${counts.offline}, ${counts.offlineSkipped} need the keys`)
})

test('a seeded fast-check corpus of claim and header mutations: explain and the plugin agree', async (t) => {
  const counts = { keys: 0, offline: 0, offlineSkipped: 0 }
  const values = fc.oneof(
    fc.constant(undefined), fc.constant(null), fc.boolean(), fc.integer(), fc.double({ noNaN: true }), fc.string({ maxLength: 8 }),
    fc.constantFrom(TENANT, OTHER_TENANT, API_CLIENT_ID, API_APP_ID_URI, `${API_APP_ID_URI}/`, '1.0', '2.0', 'app', 'user', 'DoAll',
      v1Issuer(TENANT), v2Issuer(TENANT), v2Issuer(OTHER_TENANT), now() - 3600, now() - 200, now() + 200, now() + 3600),
    fc.array(fc.constantFrom('DoAll', 'Reader', API_CLIENT_ID), { maxLength: 2 })
  )
  const names = fc.constantFrom('aud', 'iss', 'tid', 'ver', 'azp', 'appid', 'oid', 'sub', 'roles', 'scp', 'idtyp', 'iat', 'nbf', 'exp', 'xms_mirid', 'Tid', 'nonce')
  await fc.assert(fc.asyncProperty(
    fc.constantFrom<'1.0' | '2.0'>('1.0', '2.0'),
    fc.dictionary(names, values, { maxKeys: 3 }),
    fc.record({ typ: fc.constantFrom(undefined, 'JWT', 'jwt', 'at+jwt'), kid: fc.constantFrom(entra.kid, msaKey.kid, v1OnlyKey.kid, 'unknownkid') }),
    async (version, overrides, headerOverrides) => {
      const claims = appClaims(overrides, version)
      const key = [entra, msaKey, v1OnlyKey].find((candidate) => candidate.kid === headerOverrides.kid) ?? entra
      const token = signRaw({ alg: 'RS256', ...(headerOverrides.typ ? { typ: headerOverrides.typ } : {}), kid: headerOverrides.kid }, claims, key.privateKey)
      await compare(JSON.stringify({ version, overrides, headerOverrides }), token, counts)
    }
  ), { numRuns: 300, seed: 14 })
  assert.equal(counts.keys, 300)
  t.diagnostic(`tokens 300: --keys agreed on ${counts.keys}, offline on ${counts.offline}, ${counts.offlineSkipped} need the keys`)
})
