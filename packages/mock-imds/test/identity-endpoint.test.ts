import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { apiUri, build, decodePayload, identityHeader, identityRequest, identityUrl, systemIdentity, userIdentity } from './helpers.ts'

let app: FastifyInstance
// App Service's rules; what Container Apps answers differently is in platforms.test.ts.
before(async () => { app = await build({ platform: 'app-service' }) })
after(() => app.close())

const appServiceError = (response: Awaited<ReturnType<typeof identityRequest>>, status: number, message: RegExp) => {
  assert.equal(response.statusCode, status, response.body)
  assert.equal(response.headers['content-type'], 'application/json; charset=utf-8')
  const body = response.json()
  assert.deepEqual(Object.keys(body), ['statusCode', 'message', 'correlationId'])
  assert.equal(body.statusCode, status)
  assert.match(body.message, message)
  assert.match(body.correlationId, /^[0-9a-f-]{36}$/)
}

test('the identity endpoint\'s response: strings, the identity used, the resource echoed', async () => {
  const response = await identityRequest(app)
  assert.equal(response.statusCode, 200)
  assert.equal(response.headers.server, undefined)
  const body = response.json()
  assert.deepEqual(Object.keys(body).sort(), ['access_token', 'client_id', 'expires_on', 'not_before', 'resource', 'token_type'])
  for (const [name, value] of Object.entries(body)) assert.equal(typeof value, 'string', name)
  assert.equal(body.resource, apiUri)
  assert.equal(body.client_id, systemIdentity.clientId)
  assert.equal(body.expires_on, String(decodePayload(body.access_token).exp))
})

test('X-IDENTITY-HEADER must match the configured secret', async () => {
  appServiceError(await app.inject({ url: identityUrl(apiUri) }), 401, /X-IDENTITY-HEADER/)
  appServiceError(await app.inject({ url: identityUrl(apiUri), headers: { 'x-identity-header': `${identityHeader}x` } }), 401, /X-IDENTITY-HEADER/)
  appServiceError(await app.inject({ url: identityUrl(apiUri), headers: { 'x-identity-header': '' } }), 401, /X-IDENTITY-HEADER/)
})

test('api-version 2019-08-01 and a resource are required', async () => {
  const headers = { 'x-identity-header': identityHeader }
  appServiceError(await app.inject({ url: `/msi/token?resource=${apiUri}`, headers }), 400, /api-version/)
  appServiceError(await app.inject({ url: `/msi/token?api-version=2017-09-01&resource=${apiUri}`, headers }), 400, /api-version/)
  appServiceError(await app.inject({ url: '/msi/token?api-version=2019-08-01', headers }), 400, /resource/)
})

test('client_id, principal_id, object_id and mi_res_id select the user-assigned identity', async () => {
  for (const selector of [
    `&client_id=${userIdentity.clientId}`,
    `&principal_id=${userIdentity.principalId}`,
    `&object_id=${userIdentity.principalId}`,
    `&mi_res_id=${encodeURIComponent(userIdentity.resourceId)}`
  ]) {
    const response = await identityRequest(app, apiUri, selector)
    assert.equal(response.statusCode, 200, selector)
    assert.equal(response.json().client_id, userIdentity.clientId)
    assert.equal(decodePayload(response.json().access_token).oid, userIdentity.principalId)
  }
})

test('errors in App Service\'s shape: unknown identity, unknown resource, two selectors, IMDS\'s msi_res_id spelling', async () => {
  appServiceError(await identityRequest(app, apiUri, '&client_id=00000000-0000-4000-8000-000000000000'), 400, /^Unable to load the proper Managed Identity\.$/)
  appServiceError(await identityRequest(app, 'api://unknown'), 400, /AADSTS500011/)
  appServiceError(await identityRequest(app, apiUri, `&client_id=${userIdentity.clientId}&principal_id=${userIdentity.principalId}`), 400, /Only one of/)
  // msi_res_id is IMDS's spelling: here it selects nothing, so the system-assigned identity answers.
  const imdsSpelling = await identityRequest(app, apiUri, `&msi_res_id=${encodeURIComponent(userIdentity.resourceId)}`)
  assert.equal(imdsSpelling.json().client_id, systemIdentity.clientId)
})

test('methods other than GET: 405 in App Service\'s shape', async () => {
  const response = await app.inject({ method: 'POST', url: identityUrl(apiUri), headers: { 'x-identity-header': identityHeader } })
  appServiceError(response, 405, /Only GET/)
})
