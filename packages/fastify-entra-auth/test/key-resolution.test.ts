import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { OTHER_TENANT, TENANT, TestAuthority, appClaims, createTestKey, mint, v2Issuer, type TestKey } from './helpers/authority.ts'
import { startApp, type TestApp } from './helpers/app.ts'

/*
 * Which published key a token names. kid picks the key; a header x5t, when present, must name the same
 * key (the JWK's x5t). Microsoft takes the first JWKS key whose id equals kid or x5t, so a token signed
 * by the key its kid names but whose x5t names a key listed earlier is refused there (IDX10511), and
 * accepted when the other key is listed later: found by the differential test (test/differential).
 */

let authority: TestAuthority
let first: TestKey
let second: TestKey
/** Published in the tenant's JWKS, but its v2 entry names another tenant as its issuer. */
let foreign: TestKey
let api: TestApp
before(async () => {
  first = createTestKey()
  second = createTestKey()
  foreign = createTestKey({ jwksIssuer: v2Issuer(OTHER_TENANT) })
  authority = await TestAuthority.start({ [TENANT]: [first, second, foreign] })
  api = await startApp(authority.url)
})
after(async () => {
  await api?.app.close()
  await authority?.stop()
})

const status = async (token: string) => (await api.get(`Bearer ${token}`)).statusCode

test('x5t equal to the key\'s x5t (Entra: the kid), or absent: accepted, v1 and v2', async () => {
  for (const version of ['1.0', '2.0'] as const) {
    assert.equal(await status(mint(second, appClaims({}, version), { x5t: second.kid })), 200)
    assert.equal(await status(mint(second, appClaims({}, version))), 200)
  }
})

test('x5t naming another published key than kid: 401 unknown key, whichever key is listed first', async () => {
  for (const [signer, other] of [[second, first], [first, second]] as const) {
    const response = await api.get(`Bearer ${mint(signer, appClaims(), { x5t: other.kid })}`)
    assert.equal(response.statusCode, 401)
    assert.match(String(response.headers['www-authenticate']), /error="invalid_token", error_description="the signature key was not found"/)
  }
  assert.equal(await status(mint(first, appClaims(), { x5t: 'AAAAAAAAAAAAAAAAAAAAAAAAAAA' })), 401)
})

test('a key whose issuer is another tenant: 401 wrong_issuer before any 403, even for a delegated token (Microsoft: IDX40005)', async () => {
  for (const claims of [appClaims(), appClaims({ scp: 'user_impersonation' }), appClaims({ roles: ['Other'] }), appClaims({}, '1.0')]) {
    const response = await api.get(`Bearer ${mint(foreign, claims)}`)
    assert.equal(response.statusCode, 401, JSON.stringify(claims))
    assert.match(String(response.headers['www-authenticate']), /error="invalid_token", error_description="the signing key does not belong to the token issuer"/)
  }
  assert.equal((await api.get(`Bearer ${mint(first, appClaims({ scp: 'user_impersonation' }))}`)).statusCode, 403, 'the same delegated token with the tenant\'s own key')
})
