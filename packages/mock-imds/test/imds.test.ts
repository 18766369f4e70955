import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { api, apiUri, build, decodePayload, imdsRequest, imdsUrl, systemIdentity, tenantId, userIdentity } from './helpers.ts'

let app: FastifyInstance
before(async () => { app = await build() })
after(() => app.close())

const jsonError = (response: Awaited<ReturnType<typeof imdsRequest>>, status: number, error: string, description: RegExp) => {
  assert.equal(response.statusCode, status, response.body)
  assert.equal(response.headers['content-type'], 'application/json; charset=utf-8')
  const body = response.json()
  assert.deepEqual(Object.keys(body), ['error', 'error_description'])
  assert.equal(body.error, error)
  assert.match(body.error_description, description)
}

test('the real IMDS response: every value a string, expires_on epoch seconds, resource echoed exactly', async () => {
  const response = await imdsRequest(app)
  assert.equal(response.statusCode, 200)
  assert.equal(response.headers['content-type'], 'application/json; charset=utf-8')
  // No Server header: IMDS's would switch newer SDKs to another flow.
  assert.equal(response.headers.server, undefined)
  const body = response.json()
  assert.deepEqual(Object.keys(body).sort(),
    ['access_token', 'client_id', 'expires_in', 'expires_on', 'ext_expires_in', 'not_before', 'resource', 'token_type'])
  for (const [name, value] of Object.entries(body)) assert.equal(typeof value, 'string', name)
  assert.equal(body.resource, apiUri)
  assert.equal(body.token_type, 'Bearer')
  assert.equal(body.client_id, systemIdentity.clientId)
  const claims = decodePayload(body.access_token)
  assert.equal(body.expires_on, String(claims.exp))
  assert.equal(body.not_before, String(claims.nbf))
  const now = Math.floor(Date.now() / 1000)
  assert.ok(Math.abs(Number(body.expires_in) - 86_400) <= 2)
  assert.ok(Math.abs(Number(body.expires_on) - (now + 86_400)) <= 2)
  assert.equal(body.ext_expires_in, '86400')
})

test('the path works with and without the trailing slash the SDK adds', async () => {
  const response = await app.inject({ url: imdsUrl(apiUri).replace('/token?', '/token/?'), headers: { metadata: 'true' } })
  assert.equal(response.statusCode, 200)
})

test('a resource given as the appId GUID is echoed as given', async () => {
  const response = await imdsRequest(app, api.appId)
  assert.equal(response.statusCode, 200)
  assert.equal(response.json().resource, api.appId)
  // v2 registration: aud is the appId whatever was asked.
  assert.equal(decodePayload(response.json().access_token).aud, api.appId)
})

test('Metadata: true is required, exactly', async () => {
  for (const headers of [{}, { metadata: 'True' }, { metadata: 'false' }]) {
    jsonError(await app.inject({ url: imdsUrl(apiUri), headers }), 400, 'invalid_request', /^Required metadata header not specified$/)
  }
})

test('X-Forwarded-For is rejected, as IMDS rejects anything that came through a proxy', async () => {
  jsonError(await app.inject({ url: imdsUrl(apiUri), headers: { metadata: 'true', 'x-forwarded-for': '10.0.0.1' } }),
    400, 'invalid_request', /X-Forwarded-For/)
})

test('api-version 2018-02-01 or later is required', async () => {
  for (const version of ['', '2017-12-01', 'latest', '2018-2-1']) {
    const response = await app.inject({ url: `/metadata/identity/oauth2/token?api-version=${version}&resource=${apiUri}`, headers: { metadata: 'true' } })
    jsonError(response, 400, 'invalid_request', /api-version is invalid or was not specified/)
  }
  const newer = await app.inject({ url: `/metadata/identity/oauth2/token?api-version=2021-02-01&resource=${apiUri}`, headers: { metadata: 'true' } })
  assert.equal(newer.statusCode, 200)
  jsonError(await app.inject({ url: '/metadata/identity/oauth2/token?resource=x', headers: { metadata: 'true' } }), 400, 'invalid_request', /api-version/)
})

test('resource is required', async () => {
  jsonError(await app.inject({ url: '/metadata/identity/oauth2/token?api-version=2018-02-01', headers: { metadata: 'true' } }),
    400, 'invalid_request', /resource/)
})

test('client_id, object_id and msi_res_id each select the user-assigned identity; none selects the system-assigned one', async () => {
  const selectors = [
    `&client_id=${userIdentity.clientId}`,
    `&client_id=${userIdentity.clientId.toUpperCase()}`,
    `&object_id=${userIdentity.principalId}`,
    `&msi_res_id=${encodeURIComponent(userIdentity.resourceId)}`
  ]
  for (const selector of selectors) {
    const response = await imdsRequest(app, apiUri, selector)
    assert.equal(response.statusCode, 200, selector)
    assert.equal(response.json().client_id, userIdentity.clientId)
    const claims = decodePayload(response.json().access_token)
    assert.equal(claims.azp, userIdentity.clientId)
    assert.equal(claims.oid, userIdentity.principalId)
    // No role assigned to this identity: no roles claim at all.
    assert.equal('roles' in claims, false)
    assert.equal(claims.xms_mirid, userIdentity.resourceId)
  }
  const system = decodePayload((await imdsRequest(app)).json().access_token)
  assert.equal(system.oid, systemIdentity.principalId)
  assert.deepEqual(system.roles, ['DoAll'])
})

test('an unknown identity, two selectors or a repeated parameter: 400, never a token', async () => {
  jsonError(await imdsRequest(app, apiUri, '&client_id=00000000-0000-4000-8000-000000000000'), 400, 'invalid_request', /^Identity not found$/)
  jsonError(await imdsRequest(app, apiUri, '&msi_res_id=/subscriptions/x'), 400, 'invalid_request', /^Identity not found$/)
  jsonError(await imdsRequest(app, apiUri, `&client_id=${userIdentity.clientId}&object_id=${userIdentity.principalId}`), 400, 'invalid_request', /Only one of/)
  jsonError(await imdsRequest(app, apiUri, `&client_id=${userIdentity.clientId}&client_id=${systemIdentity.clientId}`), 400, 'invalid_request', /Duplicate/)
})

test('an unknown resource: AADSTS500011 in Entra\'s words, with its trailer', async () => {
  const response = await imdsRequest(app, 'api://msi-pair-api/')
  jsonError(response, 400, 'invalid_resource', new RegExp(`^AADSTS500011: The resource principal named api://msi-pair-api/ was not found in the tenant named ${tenantId}\\.`))
  assert.match(response.json().error_description, /\r\nTrace ID: [0-9a-f-]{36}\r\nCorrelation ID: [0-9a-f-]{36}\r\nTimestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/)
})

test('methods other than GET: 405', async () => {
  const response = await app.inject({ method: 'POST', url: imdsUrl(apiUri), headers: { metadata: 'true' } })
  jsonError(response, 405, 'invalid_request', /Only GET/)
  assert.equal(response.headers.allow, 'GET')
})

test('tokens are cached per identity and resource, as the managed identity service caches them', async () => {
  const first = (await imdsRequest(app)).json()
  const again = (await imdsRequest(app)).json()
  assert.equal(again.access_token, first.access_token)
  const otherResource = (await imdsRequest(app, api.appId)).json()
  assert.notEqual(otherResource.access_token, first.access_token)
  const otherIdentity = (await imdsRequest(app, apiUri, `&client_id=${userIdentity.clientId}`)).json()
  assert.notEqual(otherIdentity.access_token, first.access_token)
  // The same identity by another selector is the same identity: the same cached token.
  assert.equal((await imdsRequest(app, apiUri, `&object_id=${userIdentity.principalId}`)).json().access_token, otherIdentity.access_token)
})
