import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { stringify } from 'yaml'
import { MockImdsConfigError, resolveOptions } from '../src/options.ts'
import { TenantFileError, defaultTenant, parseTenant } from '../src/tenant.ts'

const valid = () => structuredClone(defaultTenant()) as unknown as Record<string, any>

test('the built-in tenant: the api with DoAll for applications, assigned to the system-assigned identity only', () => {
  const tenant = defaultTenant()
  const [api] = tenant.applications
  assert.equal(api?.api?.requestedAccessTokenVersion, 2)
  const role = api?.appRoles.find((r) => r.value === 'DoAll')
  assert.deepEqual(role?.allowedMemberTypes, ['Application'])
  const system = tenant.managedIdentities.find((mi) => mi.type === 'SystemAssigned')
  const user = tenant.managedIdentities.find((mi) => mi.type === 'UserAssigned')
  assert.deepEqual(tenant.appRoleAssignments.map((a) => a.principalId), [system?.principalId])
  assert.ok(user)
})

test('a bad field fails with its path', () => {
  const cases: Array<[(t: Record<string, any>) => void, RegExp]> = [
    [(t) => { t.applications[0].appId = 'not-a-guid' }, /\/applications\/0\/appId/],
    [(t) => { t.managedIdentities[1].type = 'Both' }, /\/managedIdentities\/1\/type/],
    [(t) => { t.managedIdentities[0].resourceId = 'vm' }, /\/managedIdentities\/0\/resourceId/],
    [(t) => { t.applications[0].api.requestedAccessTokenVersion = 3 }, /\/applications\/0\/api\/requestedAccessTokenVersion/],
    [(t) => { t.applications[0].appRoles[0].allowedMemberTypes = [] }, /\/applications\/0\/appRoles\/0\/allowedMemberTypes/],
    [(t) => { t.applications[0].identifierUri = ['api://typo'] }, /\/applications\/0/],
    [(t) => { delete t.tenantId }, /tenantId|\//]
  ]
  for (const [spoil, path] of cases) {
    const document = valid()
    spoil(document)
    assert.throws(() => parseTenant(document, 'tenant.json'), (error: Error) => error instanceof TenantFileError && path.test(error.message) && error.message.startsWith('tenant.json: '))
  }
})

test('references must resolve: assignments to real identities, apps and roles; one system-assigned identity', () => {
  const cases: Array<[(t: Record<string, any>) => void, RegExp]> = [
    [(t) => { t.appRoleAssignments[0].principalId = '00000000-0000-4000-8000-000000000000' }, /\/appRoleAssignments\/0\/principalId matches no managed identity/],
    [(t) => { t.appRoleAssignments[0].resourceId = '00000000-0000-4000-8000-000000000000' }, /\/appRoleAssignments\/0\/resourceId/],
    [(t) => { t.appRoleAssignments[0].appRoleId = '00000000-0000-4000-8000-000000000000' }, /\/appRoleAssignments\/0\/appRoleId/],
    [(t) => { t.managedIdentities[1].type = 'SystemAssigned' }, /more than one SystemAssigned/]
  ]
  for (const [spoil, message] of cases) {
    const document = valid()
    spoil(document)
    assert.throws(() => parseTenant(document), message)
  }
})

test('tenant file: YAML or JSON; a bad one stops the start with the option, the file and the field', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mock-imds-tenant-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const yamlFile = join(dir, 'tenant.yaml')
  writeFileSync(yamlFile, stringify(valid()))
  assert.equal(resolveOptions({ tenant: yamlFile }).tenant.tenantId, defaultTenant().tenantId)

  const bad = valid()
  bad.managedIdentities[0].clientId = 'nope'
  const badFile = join(dir, 'bad.json')
  writeFileSync(badFile, JSON.stringify(bad))
  assert.throws(() => resolveOptions({ tenant: badFile }), (error: Error) =>
    error instanceof MockImdsConfigError && error.message.startsWith('tenant: ') && error.message.includes(badFile) &&
    error.message.includes('/managedIdentities/0/clientId'))

  writeFileSync(join(dir, 'broken.yaml'), 'tenantId: [unclosed')
  assert.throws(() => resolveOptions({ tenant: join(dir, 'broken.yaml') }), MockImdsConfigError)
  assert.throws(() => resolveOptions({ tenant: join(dir, 'missing.json') }), /^MockImdsConfigError: tenant: .*missing\.json/)
  // The names the CLI passes in come out in the message.
  assert.throws(() => resolveOptions({ tenant: badFile }, { tenant: 'MOCK_IMDS_TENANT_FILE' }), /^MockImdsConfigError: MOCK_IMDS_TENANT_FILE: /)
})
