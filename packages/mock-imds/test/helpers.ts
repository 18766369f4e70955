import type { FastifyInstance } from 'fastify'
import { buildMockImds, type MockImdsOptions } from '../src/index.ts'
import { defaultTenant } from '../src/tenant.ts'

export const tenant = defaultTenant()
export const tenantId = tenant.tenantId
export const api = tenant.applications[0]!
export const apiUri = api.identifierUris[0]!
export const systemIdentity = tenant.managedIdentities.find((mi) => mi.type === 'SystemAssigned')!
export const userIdentity = tenant.managedIdentities.find((mi) => mi.type === 'UserAssigned')!
export const identityHeader = 'test-identity-header'

/** A mock-imds app for inject tests; with admin, its admin API on a free loopback port. */
export async function build (options: MockImdsOptions = {}): Promise<FastifyInstance> {
  const app = await buildMockImds({ logLevel: 'silent', identityHeader, ...options })
  await app.ready()
  return app
}

export const imdsUrl = (resource: string, extra = '') =>
  `/metadata/identity/oauth2/token?api-version=2018-02-01&resource=${encodeURIComponent(resource)}${extra}`

export const identityUrl = (resource: string, extra = '') =>
  `/msi/token?api-version=2019-08-01&resource=${encodeURIComponent(resource)}${extra}`

export const imdsRequest = (app: FastifyInstance, resource = apiUri, extra = '') =>
  app.inject({ method: 'GET', url: imdsUrl(resource, extra), headers: { metadata: 'true' } })

export const identityRequest = (app: FastifyInstance, resource = apiUri, extra = '') =>
  app.inject({ method: 'GET', url: identityUrl(resource, extra), headers: { 'x-identity-header': identityHeader } })

/** The value of one series in a Prometheus text exposition, 0 when absent. */
export async function metricValue (app: FastifyInstance, name: string, labels: Record<string, string>): Promise<number> {
  const text = (await app.inject('/metrics')).body
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue
    const labelText = line.slice(name.length + 1, line.indexOf('}'))
    if (wanted.every((pair) => labelText.split(',').includes(pair))) return Number(line.slice(line.indexOf('}') + 1))
  }
  return 0
}

export const decodePayload = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>
export const decodeHeader = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[0]!, 'base64url').toString()) as Record<string, unknown>
