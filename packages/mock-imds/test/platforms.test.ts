/*
 * The platform profiles, against what each real platform answers (issue 13, items 1-3, and the
 * sources in src/profiles.ts and the README's platform table). Each numbered input of the issue is
 * one test here, with the real platform's answer as the expected value.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { Platform, TenantModel } from '../src/index.ts'
import { apiUri, build, decodePayload, identityHeader, identityRequest, identityUrl, imdsRequest, imdsUrl, systemIdentity, tenant, userIdentity } from './helpers.ts'

const guid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** The built-in tenant without its system-assigned identity and with `userAssigned` user-assigned ones. */
function tenantWith (userAssigned: number): TenantModel {
  const copies = Array.from({ length: userAssigned }, (_, i) => ({
    ...userIdentity,
    clientId: userIdentity.clientId.replace(/.$/, String(i)),
    principalId: userIdentity.principalId.replace(/.$/, String(i)),
    resourceId: `${userIdentity.resourceId}-${i}`
  }))
  return { ...structuredClone(tenant), managedIdentities: copies, appRoleAssignments: [] }
}

async function withServer (t: { after: (fn: () => Promise<void>) => void }, platform: Platform, tenantModel: TenantModel = tenant): Promise<FastifyInstance> {
  const app = await build({ platform, tenant: tenantModel })
  t.after(() => app.close())
  return app
}

/** App Service's, Functions' and Container Apps' answer for an identity they cannot load (azure-sdk-for-net#43691). */
function assertUnableToLoad (response: Awaited<ReturnType<typeof identityRequest>>) {
  assert.equal(response.statusCode, 400, response.body)
  assert.equal(response.headers['content-type'], 'application/json; charset=utf-8')
  const body = response.json() as { statusCode: number, message: string, correlationId: string }
  assert.deepEqual(Object.keys(body), ['statusCode', 'message', 'correlationId'])
  assert.equal(body.statusCode, 400)
  assert.equal(body.message, 'Unable to load the proper Managed Identity.')
  assert.match(body.correlationId, guid)
  assert.equal(response.headers['x-correlation-id'], body.correlationId)
}

test('issue 13 item 1: Container Apps, a token request without X-IDENTITY-HEADER: 403 with an empty body', async (t) => {
  const app = await withServer(t, 'container-apps')
  const missing = await app.inject({ url: identityUrl(apiUri) })
  assert.equal(missing.statusCode, 403)
  assert.equal(missing.body, '')
  assert.equal(missing.headers['content-length'], '0')
  // A Metadata header does not stand in for it (the capture sent one).
  const withMetadata = await app.inject({ url: identityUrl(apiUri), headers: { metadata: 'true' } })
  assert.equal(withMetadata.statusCode, 403)
  assert.equal(withMetadata.body, '')
  // A wrong value: unknown on Azure; the mock answers as for a missing one.
  const wrong = await app.inject({ url: identityUrl(apiUri), headers: { 'x-identity-header': 'not-the-secret' } })
  assert.equal(wrong.statusCode, 403)
  assert.equal(wrong.body, '')
  // The right one gets a token.
  assert.equal((await identityRequest(app)).statusCode, 200)
})

test('App Service keeps its JSON 401 for a missing X-IDENTITY-HEADER (Azure\'s answer there is unknown)', async (t) => {
  const app = await withServer(t, 'app-service')
  const missing = await app.inject({ url: identityUrl(apiUri) })
  assert.equal(missing.statusCode, 401)
  assert.equal(missing.json().statusCode, 401)
})

for (const platform of ['app-service', 'container-apps'] as const) {
  test(`issue 13 item 2, ${platform}: a client_id not assigned to the app: 400 "Unable to load the proper Managed Identity."`, async (t) => {
    const app = await withServer(t, platform)
    assertUnableToLoad(await identityRequest(app, apiUri, '&client_id=00000000-0000-4000-8000-000000000000'))
    // The other selectors name an unassigned identity the same way.
    assertUnableToLoad(await identityRequest(app, apiUri, '&principal_id=00000000-0000-4000-8000-000000000000'))
    assertUnableToLoad(await identityRequest(app, apiUri, '&mi_res_id=%2Fsubscriptions%2Fnope'))
  })

  test(`issue 13 item 2, ${platform}: no selector while only several user-assigned identities exist: the same 400`, async (t) => {
    const app = await withServer(t, platform, tenantWith(2))
    assertUnableToLoad(await identityRequest(app))
    // Naming one of them works.
    const named = await identityRequest(app, apiUri, `&client_id=${tenantWith(2).managedIdentities[1]!.clientId}`)
    assert.equal(named.statusCode, 200, named.body)
  })

  test(`issue 13 item 3, ${platform}: no system-assigned identity, exactly one user-assigned, no selector: 400, no fallback`, async (t) => {
    const app = await withServer(t, platform, tenantWith(1))
    assertUnableToLoad(await identityRequest(app))
  })
}

test('issue 13 item 3, the contrast: IMDS on a VM falls back to the only user-assigned identity (200)', async (t) => {
  const lone = tenantWith(1)
  const app = await withServer(t, 'vm', lone)
  const response = await imdsRequest(app)
  assert.equal(response.statusCode, 200, response.body)
  assert.equal(response.json().client_id, lone.managedIdentities[0]!.clientId)
  assert.equal(decodePayload(response.json().access_token).oid, lone.managedIdentities[0]!.principalId)
})

test('IMDS keeps its own words: "Identity not found", "Multiple user assigned identities exist"', async (t) => {
  const vm = await withServer(t, 'vm')
  const unknown = await imdsRequest(vm, apiUri, '&client_id=00000000-0000-4000-8000-000000000000')
  assert.equal(unknown.statusCode, 400)
  assert.deepEqual(unknown.json(), { error: 'invalid_request', error_description: 'Identity not found' })
  const several = await withServer(t, 'vm', tenantWith(2))
  assert.deepEqual((await imdsRequest(several)).json(), {
    error: 'invalid_request',
    error_description: 'Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request'
  })
})

test('Container Apps: an unsupported api-version in ASP.NET API Versioning\'s shape (microsoft/azure-container-apps#297)', async (t) => {
  const app = await withServer(t, 'container-apps')
  const response = await app.inject({ url: `/msi/token?api-version=2017-09-01&resource=${encodeURIComponent(apiUri)}`, headers: { 'x-identity-header': identityHeader } })
  assert.equal(response.statusCode, 400)
  const body = response.json() as { error: { code: string, message: string } }
  assert.equal(body.error.code, 'UnsupportedApiVersion')
  assert.match(body.error.message, /^The HTTP resource that matches the request URI '.*\/msi\/token' does not support the API version '2017-09-01'\.$/)
})

test('each platform has only its own token endpoint; the other answers 404 saying which platform this is', async (t) => {
  const vm = await withServer(t, 'vm')
  const noIdentityEndpoint = await vm.inject({ url: identityUrl(apiUri), headers: { 'x-identity-header': identityHeader } })
  assert.equal(noIdentityEndpoint.statusCode, 404)
  assert.match(noIdentityEndpoint.json().error_description, /VM \/ VM Scale Sets \(IMDS\).*--platform app-service or container-apps/)
  for (const platform of ['app-service', 'container-apps'] as const) {
    const app = await withServer(t, platform)
    const noImds = await app.inject({ url: imdsUrl(apiUri), headers: { metadata: 'true' } })
    assert.equal(noImds.statusCode, 404)
    assert.match(noImds.json().error_description, /--platform vm/)
  }
})

test('the default platform is a VM; the identity header check of App Service passes the system-assigned identity', async (t) => {
  const app = await build()
  t.after(() => app.close())
  assert.equal((await imdsRequest(app)).statusCode, 200)
  const appService = await withServer(t, 'app-service')
  assert.equal((await identityRequest(appService)).json().client_id, systemIdentity.clientId)
})
