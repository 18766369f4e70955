import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { build, tenantId } from './helpers.ts'

let app: FastifyInstance
before(async () => { app = await build() })
after(() => app.close())

test('the v2 discovery document: Entra\'s issuer, jwks_uri back at the host that was asked', async () => {
  const response = await app.inject({ url: `/${tenantId}/v2.0/.well-known/openid-configuration`, headers: { host: 'mock-imds:8080' } })
  assert.equal(response.statusCode, 200)
  const doc = response.json()
  assert.equal(doc.issuer, `https://login.microsoftonline.com/${tenantId}/v2.0`)
  assert.equal(doc.jwks_uri, `http://mock-imds:8080/${tenantId}/discovery/v2.0/keys`)
  assert.deepEqual(doc.id_token_signing_alg_values_supported, ['RS256'])
})

test('the v1 discovery document', async () => {
  const doc = (await app.inject({ url: `/${tenantId}/.well-known/openid-configuration`, headers: { host: 'localhost:3002' } })).json()
  assert.equal(doc.issuer, `https://sts.windows.net/${tenantId}/`)
  assert.equal(doc.jwks_uri, `http://localhost:3002/${tenantId}/discovery/keys`)
})

test('JWKS keys as Entra publishes them: kid and x5t; the v2 ones with the issuer template; no private parts', async () => {
  const v2 = (await app.inject(`/${tenantId}/discovery/v2.0/keys`)).json().keys
  const v1 = (await app.inject(`/${tenantId}/discovery/keys`)).json().keys
  assert.equal(v2.length, 1)
  const [key] = v2
  assert.deepEqual(Object.keys(key).sort(), ['e', 'issuer', 'kid', 'kty', 'n', 'use', 'x5t'])
  assert.equal(key.kty, 'RSA')
  assert.equal(key.use, 'sig')
  assert.equal(key.x5t, key.kid)
  assert.equal(key.issuer, 'https://login.microsoftonline.com/{tenantid}/v2.0')
  assert.equal(v1[0].issuer, undefined)
  assert.equal(v1[0].kid, key.kid)
  assert.equal(v1[0].d, undefined)
})

test('the tenant id matches case-insensitively; another tenant gets AADSTS90002', async () => {
  assert.equal((await app.inject(`/${tenantId.toUpperCase()}/discovery/v2.0/keys`)).statusCode, 200)
  for (const path of ['/v2.0/.well-known/openid-configuration', '/.well-known/openid-configuration', '/discovery/v2.0/keys', '/discovery/keys']) {
    const response = await app.inject(`/00000000-0000-4000-8000-000000000000${path}`)
    assert.equal(response.statusCode, 400, path)
    assert.equal(response.json().error, 'invalid_tenant')
    assert.match(response.json().error_description, /^AADSTS90002/)
  }
})

test('the multi-tenant documents (common, organizations) carry Entra\'s {tenantid} issuer template', async () => {
  const v2 = (await app.inject({ url: '/common/v2.0/.well-known/openid-configuration', headers: { host: 'mock:1' } })).json()
  assert.equal(v2.issuer, 'https://login.microsoftonline.com/{tenantid}/v2.0')
  assert.equal(v2.jwks_uri, 'http://mock:1/common/discovery/v2.0/keys')
  const organizations = (await app.inject('/organizations/v2.0/.well-known/openid-configuration')).json()
  assert.equal(organizations.issuer, 'https://login.microsoftonline.com/{tenantid}/v2.0')
  const v1 = (await app.inject('/common/.well-known/openid-configuration')).json()
  assert.equal(v1.issuer, 'https://sts.windows.net/{tenantid}/')
  assert.equal((await app.inject('/common/discovery/v2.0/keys')).json().keys.length, 1)
  // Entra has no v1 "organizations" document.
  assert.equal((await app.inject('/organizations/.well-known/openid-configuration')).statusCode, 400)
  // A tenant asked for in capitals is named by its id.
  const upper = (await app.inject({ url: `/${tenantId.toUpperCase()}/v2.0/.well-known/openid-configuration`, headers: { host: 'mock:1' } })).json()
  assert.equal(upper.jwks_uri, `http://mock:1/${tenantId}/discovery/v2.0/keys`)
})
