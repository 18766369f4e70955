/*
 * A consumer of the three packed packages, outside the repository: compiled with tsc against the
 * installed .d.ts (strict), then run. mock-imds runs from its own tarball's bin (started by the test);
 * this program only knows its URL, as any service's tests would.
 */
import { writeFileSync } from 'node:fs'
import Fastify from 'fastify'
import fastifyEntraAuth from 'fastify-entra-auth'
import { ManagedIdentityTokenProvider } from 'managed-identity-token-provider'
import { defaultTenant, type MockImdsOptions } from 'mock-imds'
import { Registry } from 'prom-client'

// The mock's library entry is typed too: its built-in tenant tells the api which app it is.
const tenant = defaultTenant()
const api = tenant.applications[0]
if (api === undefined) throw new Error('the built-in tenant has no application')
const appIdUri = api.identifierUris[0] ?? api.appId
// Typed options compile as a user would write them (the test starts the mock from its bin).
export const inProcessOptions: MockImdsOptions = { port: 0, logLevel: 'warn' }

// The token provider finds IMDS through AZURE_POD_IDENTITY_AUTHORITY_HOST, set by the test.
const provider = new ManagedIdentityTokenProvider()
const accessToken = await provider.getToken(`${appIdUri}/.default`)

const registry = new Registry()
const app = Fastify()
await app.register(fastifyEntraAuth, {
  tenants: [tenant.tenantId],
  audiences: [api.appId, appIdUri],
  authorityHost: process.env.MOCK_IMDS_URL ?? '',
  registry
})
app.get('/orders', { config: { auth: { roles: ['DoAll'] } } }, async (request) => ({
  appId: request.identity?.appId,
  roles: request.identity?.roles
}))

app.get('/admin', { config: { auth: { roles: ['Admin.Write'] } } }, async () => ({ ok: true }))
await app.ready()

const accepted = await app.inject({ url: '/orders', headers: { authorization: `Bearer ${accessToken.token}` } })
const refused = await app.inject({ url: '/orders' })
const forbidden = await app.inject({ url: '/admin', headers: { authorization: `Bearer ${accessToken.token}` } })
// For the test's run of the entra-explain bin on the same token (the bin never prints it).
writeFileSync('token.txt', accessToken.token)
const metrics = await registry.metrics()
process.stdout.write(JSON.stringify({
  expiresInSeconds: Math.round((accessToken.expiresOnTimestamp - Date.now()) / 1000),
  accepted: { status: accepted.statusCode, body: accepted.json() },
  refused: { status: refused.statusCode, challenge: refused.headers['www-authenticate'] },
  forbidden: { status: forbidden.statusCode, challenge: forbidden.headers['www-authenticate'] },
  ready: app.entraAuth.notReadyReason() === null,
  metricsRegistered: metrics.includes('auth_requests_total')
}) + '\n')
await app.close()
