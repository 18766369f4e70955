import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { stringify } from 'yaml'
import { MockImdsConfigError, startMockImds, type MockImdsOptions } from '../src/index.ts'
import { resolveOptions } from '../src/options.ts'
import { defaultTenant } from '../src/tenant.ts'
import { build } from './helpers.ts'

const valid = () => structuredClone(defaultTenant()) as unknown as Record<string, any>

function refuses (options: Record<string, unknown>, message: RegExp) {
  assert.throws(() => resolveOptions(options as MockImdsOptions), (error: unknown) => {
    assert.ok(error instanceof MockImdsConfigError, String(error))
    assert.match(error.message, message)
    return true
  })
}

test('an unknown option is refused, naming it, before anything listens', async () => {
  await assert.rejects(() => startMockImds({ prot: 1 } as MockImdsOptions), /unknown option prot; known: platform, tenant, port/)
  refuses({ port: 0, prot: 1, adminport: 2 }, /unknown options prot, adminport/)
})

test('a tenant document\'s error names it once and says what is wrong', () => {
  const cases: Array<[(t: Record<string, any>) => void, RegExp]> = [
    [(t) => { t.applications[0].servicePrincipal.appRoleAssignmentRequierd = true },
      /^tenant: \/applications\/0\/servicePrincipal: unknown property appRoleAssignmentRequierd \(did you mean appRoleAssignmentRequired\?\); known properties: id, appRoleAssignmentRequired$/],
    [(t) => { t.managedIdentities[0].type = 'userAssigned' }, /^tenant: \/managedIdentities\/0\/type must be one of "SystemAssigned", "UserAssigned", got "userAssigned"$/],
    [(t) => { t.managedIdentities[1].clientID = t.managedIdentities[1].clientId; delete t.managedIdentities[1].clientId },
      /^tenant: \/managedIdentities\/1: missing required property clientId; unknown property clientID \(did you mean clientId\?\)/],
    [(t) => { t.applications.push({ ...structuredClone(t.applications[0]), appId: '11111111-2222-4333-8444-555555555555', servicePrincipal: { id: '66666666-7777-4888-9999-000000000000' } }) },
      /^tenant: \/applications\/1\/identifierUris\/0 duplicates \/applications\/0\/identifierUris\/0 \(identifierUri "api:\/\/msi-pair-api"\)/],
    [(t) => { t.managedIdentities[1].clientId = t.managedIdentities[0].clientId }, /\/managedIdentities\/1\/clientId duplicates \/managedIdentities\/0\/clientId/],
    [(t) => { t.tenantID = t.tenantId }, /^tenant: \/: unknown property tenantID \(did you mean tenantId\?\)/]
  ]
  for (const [breakIt, message] of cases) {
    const document = valid()
    breakIt(document)
    refuses({ tenant: document }, message)
  }
  // The brief's case: a document with only a tenantId; "tenant:" once.
  refuses({ tenant: { tenantId: 'x' } }, /^tenant: \/: missing required property applications; missing required property managedIdentities$/)
  assert.throws(() => resolveOptions({ tenant: { tenantId: 'x' } } as unknown as MockImdsOptions), (error: Error) => !error.message.includes('tenant: tenant:'))
})

test('a tenant file\'s error names the option, then the file, then the field', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mock-imds-tenant-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const document = valid()
  document.managedIdentities[0].type = 'userAssigned'
  const path = join(dir, 'tenant.yaml')
  writeFileSync(path, stringify(document))
  refuses({ tenant: path }, new RegExp(`^tenant: ${path.replaceAll('/', '\\/').replaceAll('.', '\\.')}: /managedIdentities/0/type must be one of "SystemAssigned", "UserAssigned"`))
})

test('the admin API names an unknown field and lists a field\'s allowed values', async (t) => {
  const app = await build({ adminPort: 0 })
  t.after(() => app.close())
  const admin = app.admin as FastifyInstance
  const post = (payload: object) => admin.inject({ method: 'POST', url: '/admin/faults', payload })
  const typo = await post({ target: 'token', mode: 'status', status: 500, cnt: 2 })
  assert.equal(typo.statusCode, 400)
  assert.match(typo.json().message, /^unknown field cnt; known: target, mode, status, retryAfterSeconds, latencyMs, count$/)
  const target = await post({ target: 'tokens', mode: 'hang' })
  assert.equal(target.statusCode, 400)
  assert.equal(target.json().message, 'target must be one of "token", "imds", "identity", "jwks", "discovery", got "tokens"')
  const mode = await post({ target: 'token', mode: 'Hang' })
  assert.match(mode.json().message, /^mode must be one of "status", "hang", "latency", "garbage", got "Hang"$/)
  const missing = await post({ mode: 'hang' })
  assert.equal(missing.json().message, 'missing field target')
  const rotate = (payload: object) => admin.inject({ method: 'POST', url: '/admin/keys/rotate', payload })
  const rotateTypo = await rotate({ keepPrevous: false })
  assert.equal(rotateTypo.statusCode, 400)
  assert.equal(rotateTypo.json().message, 'unknown field keepPrevous; known: keepPrevious')
  assert.equal((await rotate({ keepPrevious: 'no' })).json().message, 'keepPrevious must be boolean, got "no"')
})
