import assert from 'node:assert/strict'
import { verify as cryptoVerify } from 'node:crypto'
import { describe, test } from 'node:test'
import { createVerifier } from 'fast-jwt'
import type { KeyLookup, SigningKey } from '../src/key-store.ts'
import { authorize, createTokenValidator, expandAudiences, parseAuthorization, type KeyProvider, type TokenVersion } from '../src/token-validation.ts'
import { API_CLIENT_ID, TENANT, appClaims, createTestKey, mint, v2Issuer, type TestKey } from './helpers/authority.ts'

/* The validation module on its own: no Fastify, no HTTP, keys from a hand-made provider. */

function signingKey (key: TestKey): SigningKey {
  const verify = createVerifier({
    key: key.publicKey.export({ type: 'spki', format: 'pem' }) as string,
    algorithms: ['RS256'],
    allowedIss: v2Issuer(TENANT),
    allowedAud: [API_CLIENT_ID],
    requiredClaims: ['iss', 'aud', 'exp', 'nbf', 'iat', 'tid', 'oid', 'sub', 'ver', 'azp'],
    clockTolerance: 300_000
  })
  return {
    kid: key.kid,
    issuer: key.jwksIssuer,
    signatureValid: (token) => {
      const dot = token.lastIndexOf('.')
      return cryptoVerify('sha256', Buffer.from(token.slice(0, dot)), key.publicKey, Buffer.from(token.slice(dot + 1), 'base64url'))
    },
    verify: (token) => ({ payload: verify(token) as Record<string, unknown>, fromCache: false })
  }
}

class Keys implements KeyProvider {
  known = new Map<string, SigningKey>()
  loaded = true
  refreshes = 0
  onRefresh: () => void = () => {}
  find (_tenant: string, _version: TokenVersion, kid: string): KeyLookup {
    if (!this.loaded) return { state: 'not_loaded', retryAfterSeconds: 7 }
    const key = this.known.get(kid)
    return key ? { state: 'found', key, issuer: v2Issuer(TENANT), keyIssuer: key.issuer, v2Issuer: v2Issuer(TENANT) } : { state: 'unknown' }
  }

  async refreshForUnknownKid () { this.refreshes++; this.onRefresh() }
}

const validator = (keys: Keys) => createTokenValidator({ tenants: [TENANT], versions: ['2.0'], audiences: [API_CLIENT_ID], maxTokenBytes: 8192, keys })

describe('validate', () => {
  const a = createTestKey()
  test('accepts an app-only v2 token and returns a frozen, typed identity', async () => {
    const keys = new Keys()
    keys.known.set(a.kid, signingKey(a))
    const result = await validator(keys)(mint(a))
    assert.ok(result.ok)
    assert.equal(result.identity.tenantId, TENANT)
    assert.equal(result.identity.tokenVersion, '2.0')
    assert.deepEqual(result.identity.roles, ['DoAll'])
    assert.ok(Object.isFrozen(result.identity) && Object.isFrozen(result.identity.claims))
  })
  test('an unknown kid asks for one refresh, then succeeds if the refresh brought the key', async () => {
    const keys = new Keys()
    keys.onRefresh = () => keys.known.set(a.kid, signingKey(a))
    assert.ok((await validator(keys)(mint(a))).ok)
    assert.equal(keys.refreshes, 1)
  })
  test('an unknown kid that stays unknown is unknown_key', async () => {
    const keys = new Keys()
    const result = await validator(keys)(mint(a))
    assert.deepEqual(result.ok ? null : [result.status, result.error, result.reason], [401, 'invalid_token', 'unknown_key'])
    assert.equal(keys.refreshes, 1)
  })
  test('keys never loaded: 503 keys_unavailable with the retry delay', async () => {
    const keys = new Keys()
    keys.loaded = false
    const result = await validator(keys)(mint(a))
    assert.deepEqual(result.ok ? null : [result.status, result.reason, result.retryAfterSeconds], [503, 'keys_unavailable', 7])
  })
  test('a token over the size cap is refused before it is decoded', async () => {
    const result = await validator(new Keys())(`${'a'.repeat(8193)}`)
    assert.deepEqual(result.ok ? null : [result.status, result.reason, result.description], [401, 'malformed', 'the token is too large'])
  })
  test('a v1 token when only v2 is accepted: wrong_version, before any key lookup', async () => {
    const keys = new Keys()
    const result = await validator(keys)(mint(a, appClaims({}, '1.0')))
    assert.deepEqual(result.ok ? null : result.reason, 'wrong_version')
    assert.equal(keys.refreshes, 0)
  })
})

describe('parseAuthorization', () => {
  const cases: Array<[string[], number | 'ok']> = [
    [[], 401],
    [['Bearer abc.def.ghi'], 'ok'],
    [['BEARER abc.def.ghi'], 'ok'],
    [['Bearer  abc.def.ghi'], 'ok'],
    [['Bearer abc.def.ghi '], 'ok'],
    [[' Bearer abc.def.ghi'], 'ok'],
    [['Bearer abc.def.ghi=='], 'ok'],
    [['Bearer abc.de=f.ghi'], 401],
    [['Bearer abc.def.g"hi'], 401],
    [['Bearer\tabc.def.ghi'], 400],
    [['Bearer abc def'], 400],
    [['Bearer'], 400],
    [['Bearer   '], 400],
    [['Bearer abc', 'Bearer abc'], 400],
    [['Basic abc'], 401],
    [['Bearerabc'], 401],
    [['Bearer ' + 'a'.repeat(9000)], 401]
  ]
  for (const [values, expected] of cases) {
    test(`${JSON.stringify(values).slice(0, 60)} -> ${expected}`, () => {
      const result = parseAuthorization(values, 8192)
      assert.equal(result.ok ? 'ok' : result.status, expected)
    })
  }
})

test('expandAudiences: App ID URIs with and without the trailing slash; GUIDs as they are', () => {
  assert.deepEqual(expandAudiences([API_CLIENT_ID, 'api://x', 'https://contoso.com/api/']).sort(),
    [API_CLIENT_ID, 'api://x', 'api://x/', 'https://contoso.com/api', 'https://contoso.com/api/'].sort())
})

test('authorize: any one of the roles suffices; none names them all in scope', async () => {
  const keys = new Keys()
  const a = createTestKey()
  keys.known.set(a.kid, signingKey(a))
  const result = await validator(keys)(mint(a, appClaims({ roles: ['Reader', 'Writer'] })))
  assert.ok(result.ok)
  assert.equal(authorize(result.identity, ['Writer', 'Admin']), null)
  assert.equal(authorize(result.identity, []), null)
  const denied = authorize(result.identity, ['Admin', 'Owner'])
  assert.deepEqual(denied && [denied.status, denied.error, denied.reason, denied.scope], [403, 'insufficient_scope', 'missing_role', 'Admin Owner'])
})
