import type { ErrorAnswer } from './error-answers.ts'
import { defaultTenant, startMockImds } from './mock-imds.ts'

type Platform = 'vm' | 'app-service' | 'container-apps'
type Tenant = ReturnType<typeof defaultTenant>

interface Situation {
  name: string
  platform: Platform
  /** The tenant the mock holds, derived from the default one. */
  tenant?: (tenant: Tenant) => Tenant
  /** The token request, relative to the mock; the right headers are added unless `headers` replaces them. */
  path: string
  headers?: Record<string, string>
  method?: string
  reason: ErrorAnswer['reason']
  hint: RegExp
}

const resource = encodeURIComponent('api://msi-pair-api')
const imds = (query: string) => `/metadata/identity/oauth2/token?api-version=2018-02-01&resource=${resource}${query}`
const identity = (query: string, apiVersion = '2019-08-01') => `/msi/token?api-version=${apiVersion}&resource=${resource}${query}`
const unknownClientId = '&client_id=99999999-9999-4999-8999-999999999999'

/** No system-assigned identity; the default user-assigned one, and optionally a second. */
const userAssignedOnly = (count: 1 | 2) => (tenant: Tenant): Tenant => {
  const lone = tenant.managedIdentities.find((identity) => identity.type === 'UserAssigned')!
  const second = { ...lone, clientId: '4e5f6a7b-8c9d-4e0f-8a1b-3c4d5e6f7a8b', principalId: '5f6a7b8c-9d0e-4f1a-9b2c-4d5e6f7a8b9c', resourceId: `${lone.resourceId}-2` }
  const managedIdentities = count === 1 ? [lone] : [lone, second]
  const principals = new Set(managedIdentities.map((identity) => identity.principalId))
  return { ...tenant, managedIdentities, appRoleAssignments: tenant.appRoleAssignments.filter((a) => principals.has(a.principalId)) }
}

/**
 * Every error answer mock-imds gives as each platform, for the situations a deployment meets: no
 * or a wrong identity header, an identity it cannot pick, an api the tenant does not know, a
 * malformed request. Each is asked of a real mock-imds (in this process) and recorded as it
 * answered, so that a change of the mock's bodies reaches the classifier's test.
 */
const situations: Situation[] = [
  { name: 'vm: no Metadata header', platform: 'vm', path: imds(''), headers: {}, reason: 'bad_request', hint: /proxy/ },
  { name: 'vm: unknown client_id', platform: 'vm', path: imds(unknownClientId), reason: 'identity_not_found', hint: /AZURE_CLIENT_ID/ },
  { name: 'vm: several user-assigned identities, none selected', platform: 'vm', tenant: userAssignedOnly(2), path: imds(''), reason: 'identity_not_found', hint: /AZURE_CLIENT_ID/ },
  { name: 'vm: unknown resource', platform: 'vm', path: imds('').replace(resource, encodeURIComponent('api://unknown')), reason: 'invalid_resource', hint: /scope/ },
  { name: 'vm: no resource', platform: 'vm', path: '/metadata/identity/oauth2/token?api-version=2018-02-01', reason: 'bad_request', hint: /malformed/ },
  { name: 'vm: bad api-version', platform: 'vm', path: imds('').replace('2018-02-01', '2000-01-01'), reason: 'bad_request', hint: /malformed/ },
  { name: 'container-apps: no X-IDENTITY-HEADER', platform: 'container-apps', path: identity(''), headers: {}, reason: 'unauthorized', hint: /IDENTITY_HEADER/ },
  { name: 'container-apps: wrong X-IDENTITY-HEADER', platform: 'container-apps', path: identity(''), headers: { 'x-identity-header': 'stale' }, reason: 'unauthorized', hint: /IDENTITY_HEADER/ },
  { name: 'container-apps: unknown client_id', platform: 'container-apps', path: identity(unknownClientId), reason: 'identity_not_found', hint: /AZURE_CLIENT_ID/ },
  { name: 'container-apps: several user-assigned identities, none selected', platform: 'container-apps', tenant: userAssignedOnly(2), path: identity(''), reason: 'identity_not_found', hint: /AZURE_CLIENT_ID/ },
  { name: 'container-apps: unknown resource', platform: 'container-apps', path: identity('').replace(resource, encodeURIComponent('api://unknown')), reason: 'invalid_resource', hint: /scope/ },
  { name: 'container-apps: unsupported api-version', platform: 'container-apps', path: identity('', '2017-09-01'), reason: 'bad_request', hint: /malformed/ },
  { name: 'app-service: no X-IDENTITY-HEADER', platform: 'app-service', path: identity(''), headers: {}, reason: 'unauthorized', hint: /IDENTITY_HEADER/ },
  { name: 'app-service: lone user-assigned identity, none selected', platform: 'app-service', tenant: userAssignedOnly(1), path: identity(''), reason: 'identity_not_found', hint: /AZURE_CLIENT_ID/ },
  { name: 'app-service: unknown client_id', platform: 'app-service', path: identity(unknownClientId), reason: 'identity_not_found', hint: /AZURE_CLIENT_ID/ },
  { name: 'app-service: unknown resource', platform: 'app-service', path: identity('').replace(resource, encodeURIComponent('api://unknown')), reason: 'invalid_resource', hint: /scope/ }
]

/** Asks a mock-imds per platform and tenant for each situation; its answers, as ErrorAnswers. */
export async function mockAnswers (): Promise<ErrorAnswer[]> {
  const answers: ErrorAnswer[] = []
  for (const situation of situations) {
    const tenant = (situation.tenant ?? ((t: Tenant) => t))(defaultTenant())
    const mock = await startMockImds({ port: 0, logLevel: 'silent', tenant, platform: situation.platform } as Parameters<typeof startMockImds>[0])
    try {
      const headers = situation.headers ?? (situation.platform === 'vm' ? { metadata: 'true' } : { 'x-identity-header': 'mock-imds-identity-header' })
      const response = await fetch(`${mock.url}${situation.path}`, { method: situation.method ?? 'GET', headers })
      const body = await response.text()
      if (response.ok) throw new Error(`${situation.name}: mock-imds answered ${response.status} ${body}`)
      const contentType = response.headers.get('content-type')
      answers.push({
        name: `mock-imds as ${situation.name}: ${response.status} ${body.slice(0, 80) || '(empty)'}`,
        status: response.status,
        body,
        ...(contentType ? { headers: { 'content-type': contentType } } : {}),
        reason: situation.reason,
        hint: situation.hint,
        source: `mock-imds --platform ${situation.platform}`
      })
    } finally {
      await mock.close()
    }
  }
  return answers
}
