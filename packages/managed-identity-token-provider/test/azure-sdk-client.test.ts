import assert from 'node:assert/strict'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, test } from 'node:test'
import {
  bearerTokenAuthenticationPolicy,
  createDefaultHttpClient,
  createEmptyPipeline,
  createPipelineRequest,
  type Pipeline
} from '@azure/core-rest-pipeline'
import { ManagedIdentityTokenProvider, TokenUnavailableError } from '../src/index.ts'
import { apiScope, startMockImds, defaultTenant } from './mock-imds.ts'

// What every Azure SDK client does with a credential: core-rest-pipeline's
// bearerTokenAuthenticationPolicy asks it for a token per request, caches it by its
// expiresOnTimestamp / refreshAfterTimestamp, and sends it as a Bearer header. Here the credential
// is the provider around the real ManagedIdentityCredential, against a real mock-imds, and the
// "service" is a loopback server that records what arrives. The SDK freezes its endpoint per
// process: one mock-imds for this file, set before the first token request.

const secondScope = 'api://second-api/.default'

let mock: Awaited<ReturnType<typeof startMockImds>>
let service: { url: string, seen: IncomingHttpHeaders[], close: () => Promise<void> }

before(async () => {
  // The default tenant plus a second api, so that two scopes get two different tokens.
  const tenant = defaultTenant()
  const api = tenant.applications[0]!
  const second = {
    ...api,
    appId: '9d1e4b62-3c8f-4a7b-8e2d-6f5a4b3c2d1e',
    displayName: 'second-api',
    identifierUris: ['api://second-api'],
    servicePrincipal: { ...api.servicePrincipal, id: '6e7f8091-a2b3-4c4d-8e5f-60718293a4b5' }
  }
  mock = await startMockImds({ port: 0, logLevel: 'silent', tenant: { ...tenant, applications: [api, second] } })
  process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = mock.url

  const seen: IncomingHttpHeaders[] = []
  const server = createServer((request, response) => {
    seen.push(request.headers)
    response.writeHead(200, { 'content-type': 'application/json' }).end('{}')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  service = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()) })
  }
})

after(async () => {
  await service?.close()
  await mock?.close()
})

async function tokenRequests (): Promise<number> {
  const text = (await mock.app.inject('/metrics')).body
  return text.split('\n').filter((line) => line.startsWith('mock_imds_token_requests_total{'))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0)
}

/** The claims of a JWT, unverified: only to see which audience a token is for. */
const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { aud: string, exp: number }

function pipelineFor (credential: ManagedIdentityTokenProvider, scopes: string): Pipeline {
  const pipeline = createEmptyPipeline()
  pipeline.addPolicy(bearerTokenAuthenticationPolicy({ credential, scopes }))
  // The bearer policy refuses plain http; the request leaves it as https and this last policy
  // sends it to the loopback server over http, so that no certificate is needed.
  pipeline.addPolicy({
    name: 'loopback',
    sendRequest: async (request, next) => { request.url = request.url.replace(/^https:/, 'http:'); return await next(request) }
  })
  return pipeline
}

test('an Azure SDK pipeline gets its Bearer token from the provider, reuses it, and keeps two scopes apart', async (t) => {
  const credential = new ManagedIdentityTokenProvider({ attemptTimeoutMs: 2000, waitTimeoutMs: 5000 })
  t.after(() => credential.close())
  const httpClient = createDefaultHttpClient()
  const send = async (pipeline: Pipeline) => {
    const response = await pipeline.sendRequest(httpClient, createPipelineRequest({ url: `${service.url.replace(/^http:/, 'https:')}/resource`, allowInsecureConnection: true }))
    assert.equal(response.status, 200)
    const authorization = service.seen.at(-1)?.authorization ?? ''
    assert.match(authorization, /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/)
    return authorization.slice('Bearer '.length)
  }

  const first = pipelineFor(credential, apiScope)
  const tokens = [await send(first), await send(first), await send(first)]
  assert.equal(new Set(tokens).size, 1, 'the same token on every request')
  assert.equal(claimsOf(tokens[0]!).aud, defaultTenant().applications[0]!.appId, 'a token for the first api (v2: aud is its client ID)')
  assert.equal(await tokenRequests(), 1, 'one token request for three calls')

  const second = pipelineFor(credential, secondScope)
  const other = [await send(second), await send(second)]
  assert.equal(new Set(other).size, 1)
  assert.notEqual(other[0], tokens[0], 'each scope has its own token')
  assert.equal(claimsOf(other[0]!).aud, '9d1e4b62-3c8f-4a7b-8e2d-6f5a4b3c2d1e')
  assert.equal(await tokenRequests(), 2, 'one more token request, for the second scope')

  // And back to the first scope: still its own token, from the provider's hold, no request.
  assert.equal(await send(first), tokens[0])
  const direct = await credential.getToken(apiScope)
  assert.equal(direct.token, tokens[0])
  assert.equal(direct.tokenType, 'Bearer')
  // In ms (not seconds); MSAL goes through expires_in, which can lose the odd second.
  assert.ok(Math.abs(direct.expiresOnTimestamp - claimsOf(direct.token).exp * 1000) <= 1000, `expiresOnTimestamp in ms: ${direct.expiresOnTimestamp} vs exp ${claimsOf(direct.token).exp}`)
  assert.ok(direct.refreshAfterTimestamp! > Date.now() && direct.refreshAfterTimestamp! < direct.expiresOnTimestamp, 'refreshAfterTimestamp before expiry')
  assert.equal(await tokenRequests(), 2)
  assert.equal(credential.notReadyReason(), null, 'both scopes hold a fresh token')
})

test('a managed identity token is for one scope: two at once are refused with reason invalid_scope', async () => {
  const credential = new ManagedIdentityTokenProvider()
  await assert.rejects(credential.getToken([apiScope, secondScope]), { name: 'TokenUnavailableError', reason: 'invalid_scope' })
  credential.close()
})

test('through the SDK: an unknown clientId says when asking again can reach the endpoint (the cooldown left), and never carries a status', async () => {
  const before = await tokenRequests()
  const credential = new ManagedIdentityTokenProvider({ clientId: '99999999-9999-4999-8999-999999999999', fatalCooldownMs: 30_000 })
  const first = await credential.getToken(apiScope).then(() => undefined, (e: unknown) => e as TokenUnavailableError)
  const second = await credential.getToken(apiScope).then(() => undefined, (e: unknown) => e as TokenUnavailableError)
  credential.close()
  for (const error of [first, second]) {
    assert.ok(error instanceof TokenUnavailableError)
    assert.equal(error.reason, 'identity_not_found')
    assert.equal(error.endpointStatus, 400)
    assert.equal(error.statusCode, 503)
    assert.equal('status' in error, false)
  }
  assert.ok(first!.retryAfterMs! > 29_000 && first!.retryAfterMs! <= 30_000, `first: ${first!.retryAfterMs}`)
  assert.ok(second!.retryAfterMs! <= first!.retryAfterMs! && second!.retryAfterMs! > 29_000, `second: ${second!.retryAfterMs}`)
  assert.equal(await tokenRequests() - before, 1, 'the second call was answered from the cooldown')
})

test('through the SDK: a scope unknown to the tenant (AADSTS500011) fails its own calls, not readiness', async () => {
  const credential = new ManagedIdentityTokenProvider()
  try {
    await credential.getToken(apiScope)
    assert.equal(credential.notReadyReason(), null)
    await assert.rejects(credential.getToken('api://not-in-the-tenant/.default'), { name: 'TokenUnavailableError', reason: 'invalid_resource', deploymentError: true, endpointStatus: 400 })
    assert.equal(credential.notReadyReason(), null)
    assert.ok(credential.expiresInSeconds() > 3000, `expiresInSeconds ${credential.expiresInSeconds()}`)
  } finally {
    credential.close()
  }
})
