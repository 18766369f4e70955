import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { loadTenantFile } from '../src/tenant.ts'
import { build, decodeHeader, decodePayload, imdsRequest } from './helpers.ts'

// The conformance tenant: a v2 and a v1 registration (the latter with appRoleAssignmentRequired),
// a system-assigned identity and two user-assigned ones, one of them without any role.
const tenantFile = new URL('../../../test/conformance/tenant.yaml', import.meta.url).pathname
const tenant = loadTenantFile(tenantFile)
const [v2App, v1App] = tenant.applications
const [system, assigned, unassigned] = tenant.managedIdentities
const tid = tenant.tenantId

let app: FastifyInstance
let dir: string
before(async () => {
  app = await build({ tenant: tenantFile })
  dir = mkdtempSync(join(tmpdir(), 'mock-imds-tokens-'))
})
after(async () => {
  await app.close()
  rmSync(dir, { recursive: true, force: true })
})

test('a v2 token, claim for claim as Entra issues one to a managed identity', async () => {
  const body = (await imdsRequest(app, 'api://conformance-v2')).json()
  const header = decodeHeader(body.access_token)
  assert.deepEqual(Object.keys(header).sort(), ['alg', 'kid', 'typ'])
  assert.equal(header.alg, 'RS256')
  const claims = decodePayload(body.access_token)
  assert.equal(claims.aud, v2App?.appId)
  assert.equal(claims.iss, `https://login.microsoftonline.com/${tid}/v2.0`)
  assert.equal(claims.ver, '2.0')
  assert.equal(claims.azp, system?.clientId)
  assert.equal(claims.azpacr, '2')
  assert.equal(claims.idtyp, 'app')
  assert.equal(claims.oid, system?.principalId)
  assert.equal(claims.sub, claims.oid)
  assert.equal(claims.tid, tid)
  assert.deepEqual(claims.roles, ['DoAll'])
  assert.equal(claims.xms_mirid, system?.resourceId)
  assert.match(String(claims.uti), /^[A-Za-z0-9_-]{20,}$/)
  for (const absent of ['appid', 'appidacr', 'idp', 'scp', 'upn', 'name']) assert.equal(absent in claims, false, absent)
  const now = Math.floor(Date.now() / 1000)
  // nbf and iat five minutes back, exp 24 h out: 86 700 s between them, as in Azure's responses.
  assert.equal(claims.nbf, claims.iat)
  assert.ok(Math.abs((claims.nbf as number) - (now - 300)) <= 2)
  assert.equal((claims.exp as number) - (claims.nbf as number), 86_700)
})

test('a v1 token: aud is the resource as asked, appid/appidacr, the sts.windows.net issuer, x5t in the header', async () => {
  const body = (await imdsRequest(app, 'api://conformance-v1')).json()
  const header = decodeHeader(body.access_token)
  assert.equal(header.x5t, header.kid)
  const claims = decodePayload(body.access_token)
  assert.equal(claims.aud, 'api://conformance-v1')
  assert.equal(claims.iss, `https://sts.windows.net/${tid}/`)
  assert.equal(claims.idp, `https://sts.windows.net/${tid}/`)
  assert.equal(claims.ver, '1.0')
  assert.equal(claims.appid, system?.clientId)
  assert.equal(claims.appidacr, '2')
  assert.equal('azp' in claims, false)
  // Asked by appId, aud is the appId.
  const byGuid = decodePayload((await imdsRequest(app, v1App?.appId)).json().access_token)
  assert.equal(byGuid.aud, v1App?.appId)
})

test('roles only when assigned; AADSTS501051 when the registration requires an assignment and there is none', async () => {
  const noRole = decodePayload((await imdsRequest(app, 'api://conformance-v2', `&client_id=${unassigned?.clientId}`)).json().access_token)
  assert.equal('roles' in noRole, false)
  const required = await imdsRequest(app, 'api://conformance-v1', `&client_id=${unassigned?.clientId}`)
  assert.equal(required.statusCode, 400)
  assert.equal(required.json().error, 'invalid_grant')
  assert.match(required.json().error_description, new RegExp(`^AADSTS501051: Application '${unassigned?.clientId}'`))
  // The assigned user-assigned identity has a role on v2 only, and v1 requires an assignment on v1.
  assert.equal((await imdsRequest(app, 'api://conformance-v1', `&client_id=${assigned?.clientId}`)).statusCode, 400)
})

test('several user-assigned identities and no system-assigned one: a selector is required', async (t) => {
  const file = join(dir, 'no-system.json')
  writeFileSync(file, JSON.stringify({
    ...tenant,
    managedIdentities: tenant.managedIdentities.filter((mi) => mi.type === 'UserAssigned'),
    appRoleAssignments: tenant.appRoleAssignments.filter((a) => a.principalId !== system?.principalId)
  }))
  const noSystem = await build({ tenant: file })
  t.after(() => noSystem.close())
  const response = await imdsRequest(noSystem, 'api://conformance-v2')
  assert.equal(response.statusCode, 400)
  assert.deepEqual(response.json(), {
    error: 'invalid_request',
    error_description: 'Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request'
  })
  assert.equal((await imdsRequest(noSystem, 'api://conformance-v2', `&client_id=${assigned?.clientId}`)).statusCode, 200)
})

test('tokenLifetimeSeconds makes short-lived tokens', async (t) => {
  const short = await build({ tokenLifetimeSeconds: 120 })
  t.after(() => short.close())
  const body = (await imdsRequest(short)).json()
  const claims = decodePayload(body.access_token)
  assert.equal((claims.exp as number) - (claims.nbf as number), 420)
  assert.ok(Number(body.expires_in) <= 120 && Number(body.expires_in) >= 118)
})
