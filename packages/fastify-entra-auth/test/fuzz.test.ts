import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import fc from 'fast-check'
import { API_CLIENT_ID, TENANT, TestAuthority, appClaims, createTestKey, mint, signRaw, type TestKey } from './helpers/authority.ts'
import { startApp as startApi, type TestApp as TestApi } from './helpers/app.ts'

/*
 * Property: whatever arrives in the Authorization header, the api answers 200, 400, 401 or 403 (its keys
 * are loaded, so never 503), with an RFC 6750 challenge on every refusal, and never a 5xx or a crash.
 */

let authority: TestAuthority
let api: TestApi
let key: TestKey

before(async () => {
  key = createTestKey()
  authority = await TestAuthority.start({ [TENANT]: [key] })
  // A cooldown of 0 lets unknown kids reach the JWKS path too.
  api = await startApi(authority.url, { jwks: { cooldownMs: 0 } }, undefined, 'warn')
})
after(async () => {
  await api?.app.close()
  await authority?.stop()
})

async function assertWellBehaved (authorization: string) {
  const response = await api.get(authorization)
  assert.ok([200, 400, 401, 403].includes(response.statusCode), `status ${response.statusCode} for ${JSON.stringify(authorization.slice(0, 200))}: ${response.body}`)
  if (response.statusCode !== 200) {
    assert.match(String(response.headers['www-authenticate']), /^Bearer error="(invalid_request|invalid_token|insufficient_scope)", error_description="[ !#-[\]-~]+"/)
    assert.ok(typeof (response.json() as { error?: unknown }).error === 'string')
  }
  return response.statusCode
}

// Header values Node would accept from the network: no CR, LF or NUL.
const headerChar = fc.oneof(
  fc.constantFrom(...'ABCXYZabcxyz0189-_.+/= \t~'),
  fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
  fc.integer({ min: 0x80, max: 0xff }).map((c) => String.fromCharCode(c))
)
const headerString = (maxLength: number) => fc.string({ unit: headerChar, maxLength })
const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

test('arbitrary header values, with and without a Bearer prefix', async () => {
  await fc.assert(fc.asyncProperty(
    fc.oneof(headerString(300), headerString(300).map((s) => `Bearer ${s}`), headerString(40).map((s) => `bearer  ${s}`)),
    async (value) => { await assertWellBehaved(value) }
  ), { numRuns: 2000 })
})

test('a valid token mutated: characters replaced, cut, segments added or dropped', async () => {
  const token = mint(key)
  await fc.assert(fc.asyncProperty(
    fc.array(fc.tuple(fc.nat(token.length), fc.nat(12), headerString(6)), { minLength: 1, maxLength: 4 }),
    async (edits) => {
      let mutated = token
      for (const [at, cut, insert] of edits) mutated = mutated.slice(0, at) + insert + mutated.slice(at + cut)
      await assertWellBehaved(`Bearer ${mutated}`)
    }
  ), { numRuns: 1500 })
})

const jsonish = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.string({ maxLength: 20 }), fc.integer(), fc.constant(null), fc.constant(undefined))

test('validly signed tokens with arbitrary headers and claims reach the deep checks safely', async () => {
  const claimNames = ['aud', 'iss', 'exp', 'nbf', 'iat', 'tid', 'TID', 'oid', 'sub', 'ver', 'azp', 'appid', 'roles', 'scp', 'idtyp', 'xms_mirid', 'nonce']
  let accepted = 0
  await fc.assert(fc.asyncProperty(
    fc.record({
      alg: fc.constantFrom('RS256', 'RS256', 'RS256', 'none', 'HS256', 'RS512', 'rs256', 5),
      kid: fc.oneof(fc.constant(key.kid), fc.constant(key.kid), fc.string({ maxLength: 30 }), fc.constant(undefined)),
      typ: fc.constantFrom('JWT', undefined, 'at+jwt', 7)
    }, { requiredKeys: [] }),
    fc.dictionary(fc.constantFrom(...claimNames), jsonish, { maxKeys: 4 }),
    fc.constantFrom('1.0', '2.0'),
    async (header, overrides, version) => {
      const claims = appClaims(overrides, version)
      if (version === '1.0' && claims.aud === 'api://msi-pair-api' && Math.random() < 0.3) claims.aud = API_CLIENT_ID
      const status = await assertWellBehaved(`Bearer ${signRaw({ ...header }, claims, key.privateKey)}`)
      if (status === 200) accepted++
    }
  ), { numRuns: 800 })
  assert.ok(accepted > 0, 'some generated tokens are valid, so the property explores acceptance too')
})

test('unsigned structural garbage: JSON headers and payloads of any shape', async () => {
  await fc.assert(fc.asyncProperty(
    fc.jsonValue({ maxDepth: 3 }), fc.jsonValue({ maxDepth: 3 }), fc.base64String({ maxLength: 40 }),
    async (header, payload, signature) => {
      await assertWellBehaved(`Bearer ${b64(header)}.${b64(payload)}.${signature.replaceAll('=', '').replaceAll('+', '-').replaceAll('/', '_')}`)
    }
  ), { numRuns: 1000 })
})

// Last: the hook answers an exception inside the validator as 401 malformed, so "never a 5xx" alone
// would pass a validator that throws on some input. The line it logs then must never have appeared.
test('no fuzzed request made the validator throw', () => {
  const threw = api.logs.filter((line) => line.msg === 'token validation threw')
  assert.deepEqual(threw.map((line) => (line.err as { message?: string } | undefined)?.message), [], 'the validator threw')
})
