import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import fc from 'fast-check'
import type { FastifyInstance } from 'fastify'
import { api, build, decodePayload, identityHeader, systemIdentity, tenant, userIdentity } from './helpers.ts'

// One server per platform: IMDS on a VM, the identity endpoint on App Service and Container Apps.
let app: FastifyInstance
let appService: FastifyInstance
let containerApps: FastifyInstance
before(async () => {
  app = await build()
  appService = await build({ platform: 'app-service' })
  containerApps = await build({ platform: 'container-apps' })
})
after(() => Promise.all([app.close(), appService.close(), containerApps.close()]))

const allowedResources = new Set([api.appId, ...api.identifierUris])
const principals = new Set(tenant.managedIdentities.map((mi) => mi.principalId))

// Values that are sometimes right, often nearly right, and sometimes hostile.
const value = fc.oneof(
  fc.constantFrom(...allowedResources, 'api://msi-pair-api/', 'API://MSI-PAIR-API', systemIdentity.clientId, userIdentity.clientId,
    userIdentity.principalId, userIdentity.resourceId, '2018-02-01', '2019-08-01', '', '%', '../', '\u0000', 'true'),
  fc.string({ maxLength: 40 }),
  fc.webUrl()
)
const names = fc.constantFrom('api-version', 'resource', 'client_id', 'object_id', 'msi_res_id', 'mi_res_id', 'principal_id', 'clientid', 'bogus')
const query = fc.array(fc.tuple(names, value), { maxLength: 6 })
const headers = fc.record({
  metadata: fc.option(fc.constantFrom('true', 'True', 'false', ''), { nil: undefined }),
  'x-identity-header': fc.option(fc.constantFrom(identityHeader, 'wrong', ''), { nil: undefined }),
  'x-forwarded-for': fc.option(fc.constantFrom('10.0.0.1', ''), { nil: undefined })
}, { requiredKeys: [] })

test('any query and headers: Azure\'s error or a token for an allowed identity and resource, never a crash', async () => {
  const servers = { vm: () => app, 'app-service': () => appService, 'container-apps': () => containerApps }
  await fc.assert(fc.asyncProperty(fc.constantFrom(...Object.keys(servers) as Array<keyof typeof servers>), query, headers, async (platform, pairs, given) => {
    const path = platform === 'vm' ? '/metadata/identity/oauth2/token' : '/msi/token'
    const search = new URLSearchParams(pairs).toString()
    const response = await servers[platform]().inject({
      url: `${path}?${search}`,
      headers: Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) as Record<string, string>
    })
    if (platform === 'container-apps' && response.statusCode === 403) {
      // Container Apps' answer to a missing or wrong X-IDENTITY-HEADER: no body at all.
      assert.equal(response.body, '')
      assert.notEqual(given['x-identity-header'], identityHeader)
      return
    }
    assert.ok([200, 400, 401].includes(response.statusCode), `${platform} ${response.statusCode} ${response.body}`)
    assert.equal(response.headers['content-type'], 'application/json; charset=utf-8')
    const body = response.json()
    if (response.statusCode !== 200) {
      assert.equal(body.access_token, undefined)
      return
    }
    const asked = new URLSearchParams(search)
    assert.ok(allowedResources.has(asked.get('resource') ?? ''), `a token for ${asked.get('resource')}`)
    assert.equal(body.resource, asked.get('resource'))
    assert.ok(principals.has(decodePayload(body.access_token).oid as string))
  }), { numRuns: 400 })
})

test('unknown paths and URLs the router cannot decode: JSON errors too', async () => {
  for (const [url, status] of [['/nope', 404], ['/metadata/identity/oauth2/token/extra', 404], ['/%ZZ/discovery/keys', 400]] as const) {
    const response = await app.inject({ url, headers: { metadata: 'true' } })
    assert.equal(response.statusCode, status, url)
    assert.equal(response.headers['content-type'], 'application/json; charset=utf-8')
    assert.deepEqual(Object.keys(response.json()), ['error', 'error_description'])
  }
})

test('any path: never a crash, always JSON', async () => {
  await fc.assert(fc.asyncProperty(fc.webPath(), fc.constantFrom('GET', 'POST', 'DELETE'), async (path, method) => {
    const response = await app.inject({ method, url: path || '/' })
    assert.ok(response.statusCode < 500, `${method} ${path}: ${response.statusCode}`)
    if (path.startsWith('/metrics') && response.statusCode === 200) return
    assert.match(String(response.headers['content-type']), /^application\/json/)
  }), { numRuns: 200 })
})
