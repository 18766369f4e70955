import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { defaultTenant, startLocalStack, type LocalStack } from '../../scripts/lib/local-stack.ts'
import { startService, callerImdsEnv, type RunningService } from '../../scripts/lib/processes.ts'

// The whole path with real processes on loopback: the real @azure/identity in the caller asks
// mock-imds for a token over IMDS, and the api validates it against mock-imds's discovery and JWKS.
let stack: LocalStack
before(async () => { stack = await startLocalStack() })
after(async () => { await stack?.stop() })

test('GET /call returns the claims the api saw, with the DoAll role', async () => {
  const { tenantId, apiClientId } = defaultTenant()
  const response = await fetch(`${stack.caller.url}/call`)
  assert.equal(response.status, 200)
  const claims = await response.json() as Record<string, unknown>
  assert.deepEqual(claims.roles, ['DoAll'])
  assert.equal(claims.tid, tenantId)
  assert.equal(claims.aud, apiClientId)
  assert.equal(claims.iss, `https://login.microsoftonline.com/${tenantId}/v2.0`)
  assert.equal(claims.idtyp, 'app')
  assert.equal(claims.oid, claims.sub)
  assert.equal(typeof claims.azp, 'string')
})

test('an identity without a role assignment gets 403 from the api, surfaced by the caller as 502', async (t) => {
  // The default tenant's user-assigned identity has no app role assignment.
  const unassignedClientId = '2c3d4e5f-6a7b-4c8d-8e9f-1a2b3c4d5e6f'
  const caller: RunningService = await startService('caller', {
    env: { ...callerImdsEnv(stack.mockImds.url, stack.api.url, defaultTenant().apiScope), AZURE_CLIENT_ID: unassignedClientId }
  })
  t.after(() => caller.stop())
  const response = await fetch(`${caller.url}/call`)
  assert.equal(response.status, 502)
  const body = await response.json() as { error: string, upstream: { status: number, wwwAuthenticate: string } }
  assert.equal(body.error, 'api_rejected')
  assert.equal(body.upstream.status, 403)
  assert.match(body.upstream.wwwAuthenticate, /^Bearer error="insufficient_scope"/)
})

test('a request without a token gets 401 with an RFC 6750 challenge', async () => {
  const response = await fetch(`${stack.api.url}/claims`)
  assert.equal(response.status, 401)
  assert.match(response.headers.get('www-authenticate') ?? '', /^Bearer error="invalid_token"/)
})
