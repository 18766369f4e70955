import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { startService, type RunningService } from '../../../scripts/lib/processes.ts'
import type { Identity } from 'fastify-entra-auth'
import { startApi, type TestApi } from './helpers/api.ts'

/*
 * Real Entra-shaped tokens: mock-imds (a real process) issues a managed identity's v2 token for one app
 * registration and a v1 token for another, and the api validates both against mock-imds's v2 and v1
 * OpenID configurations and JWKS.
 */

const tenantId = '4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d'
const v2App = { appId: '9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a', uri: 'api://msi-pair-api-v2', spId: '7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d' }
const v1App = { appId: '1e2d3c4b-5a6f-4e7d-8c9b-0a1f2e3d4c5b', uri: 'api://msi-pair-api-v1', spId: '2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e' }
const roleId = 'c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f'
const identity = { clientId: '5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b', principalId: '6f7a8b9c-0d1e-4f2a-9b3c-4d5e6f7a8b9c' }

const application = (app: typeof v2App, version: 1 | 2) => ({
  appId: app.appId,
  displayName: app.uri,
  identifierUris: [app.uri],
  appRoles: [{ id: roleId, value: 'DoAll', allowedMemberTypes: ['Application'], isEnabled: true }],
  api: { requestedAccessTokenVersion: version },
  servicePrincipal: { id: app.spId, appRoleAssignmentRequired: false }
})

let dir: string
let mockImds: RunningService
let api: TestApi
let v2Only: TestApi

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'api-mock-imds-'))
  const tenantFile = join(dir, 'tenant.json')
  writeFileSync(tenantFile, JSON.stringify({
    tenantId,
    applications: [application(v2App, 2), application(v1App, 1)],
    managedIdentities: [{
      type: 'SystemAssigned',
      ...identity,
      resourceId: '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/Microsoft.Compute/virtualMachines/caller'
    }],
    appRoleAssignments: [
      { principalId: identity.principalId, resourceId: v2App.spId, appRoleId: roleId },
      { principalId: identity.principalId, resourceId: v1App.spId, appRoleId: roleId }
    ]
  }))
  mockImds = await startService('mock-imds', { env: { MOCK_IMDS_TENANT_FILE: tenantFile } })
  const env = { AUTH_TENANT_ID: tenantId, AUTH_AUDIENCE: `${v2App.appId},${v1App.uri}`, LOG_LEVEL: 'warn' }
  api = await startApi(mockImds.url, env)
  v2Only = await startApi(mockImds.url, { ...env, AUTH_ACCEPTED_TOKEN_VERSIONS: '2.0' })
})
after(async () => {
  await api?.app.close()
  await v2Only?.app.close()
  await mockImds?.stop()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

async function imdsToken (resource: string): Promise<string> {
  const url = `${mockImds.url}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=${encodeURIComponent(resource)}`
  const response = await fetch(url, { headers: { Metadata: 'true' } })
  assert.equal(response.status, 200, await response.clone().text())
  return ((await response.json()) as { access_token: string }).access_token
}

test('a v2 token from mock-imds is accepted, with a typed identity', async () => {
  const response = await api.get(`Bearer ${await imdsToken(v2App.uri)}`)
  assert.equal(response.statusCode, 200, response.body)
  const claims = response.json() as Record<string, unknown>
  assert.equal(claims.ver, '2.0')
  assert.equal(claims.iss, `https://login.microsoftonline.com/${tenantId}/v2.0`)
  assert.equal(claims.aud, v2App.appId)
  assert.equal(claims.azp, identity.clientId)
  assert.equal(claims.oid, identity.principalId)
})

test('a v1 token from mock-imds is accepted against the v1 OpenID configuration', async () => {
  const response = await api.get(`Bearer ${await imdsToken(v1App.uri)}`)
  assert.equal(response.statusCode, 200, response.body)
  const claims = response.json() as Record<string, unknown>
  assert.equal(claims.ver, '1.0')
  assert.equal(claims.iss, `https://sts.windows.net/${tenantId}/`)
  assert.equal(claims.aud, v1App.uri)
  assert.equal(claims.appid, identity.clientId)
})

test('with AUTH_ACCEPTED_TOKEN_VERSIONS=2.0 the v1 token is refused (wrong_version) and the v2 one accepted', async () => {
  assert.equal((await v2Only.get(`Bearer ${await imdsToken(v2App.uri)}`)).statusCode, 200)
  const response = await v2Only.get(`Bearer ${await imdsToken(v1App.uri)}`)
  assert.equal(response.statusCode, 401)
  assert.match(String(response.headers['www-authenticate']), /^Bearer error="invalid_token", error_description="the token version is not accepted"$/)
  assert.equal(await v2Only.metric('auth_requests_total', { result: 'rejected', reason: 'wrong_version' }), 1)
})

test('route handlers get the typed identity; each route declares its roles', async (t) => {
  const probe = await startApi(mockImds.url, { AUTH_TENANT_ID: tenantId, AUTH_AUDIENCE: v2App.appId, LOG_LEVEL: 'warn' }, (app) => {
    app.get('/whoami', { config: { auth: { roles: ['Reader', 'DoAll'] } } }, async (request) => {
      const who: Identity | null = request.identity
      return { ...who, claims: undefined }
    })
    app.get('/admin', { config: { auth: { roles: ['Admin'] } } }, async () => ({ ok: true }))
    app.get('/public', async (request) => ({ identity: request.identity }))
  })
  t.after(() => probe.app.close())
  const token = `Bearer ${await imdsToken(v2App.uri)}`
  const whoami = await probe.get(token, '/whoami')
  assert.equal(whoami.statusCode, 200)
  assert.deepEqual(whoami.json(), {
    tenantId,
    objectId: identity.principalId,
    appId: identity.clientId,
    roles: ['DoAll'],
    tokenVersion: '2.0',
    managedIdentityResourceId: '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/Microsoft.Compute/virtualMachines/caller'
  })
  const admin = await probe.get(token, '/admin')
  assert.equal(admin.statusCode, 403)
  assert.equal(admin.headers['www-authenticate'], 'Bearer error="insufficient_scope", error_description="the token lacks a required app role", scope="Admin"')
  const open = await probe.get(undefined, '/public')
  assert.equal(open.statusCode, 200)
  assert.deepEqual(open.json(), { identity: null })
})
