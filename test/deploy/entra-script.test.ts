// deploy/entra/register-api.sh against a stand-in `az` (helpers/fake-az.ts) that records calls and
// answers like Microsoft Graph. Proves: the objects are created as the api expects them, a second
// run sends no write at all, "already exists" counts as success, --dry-run writes nothing but shows
// every request, and an existing app is completed without losing what it already had.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { at, deployDir, repoRoot, requireTool, runSync, tempDir } from './helpers/tools.ts'
import type { RunResult } from './helpers/tools.ts'
import type { FakeGraphState, RecordedCall } from './helpers/fake-az.ts'

const script = path.join(deployDir, 'entra/register-api.sh')
const fakeAz = path.join(repoRoot, 'test/deploy/helpers/fake-az.ts')
const callerPrincipalId = '11111111-2222-4333-8444-555555555555'
const graph = 'https://graph.microsoft.com/v1.0'

interface Sandbox { dir: string, log: string, state: string, env: NodeJS.ProcessEnv }

function sandbox (initial?: FakeGraphState): Sandbox {
  const dir = tempDir('entra')
  const bin = path.join(dir, 'bin')
  runSync('mkdir', ['-p', bin])
  // `az` on PATH is a two-line shell wrapper around the stand-in, run by this same Node.
  writeFileSync(path.join(bin, 'az'), `#!/bin/sh\nexec "${process.execPath}" "${fakeAz}" "$@"\n`)
  chmodSync(path.join(bin, 'az'), 0o755)
  const log = path.join(dir, 'calls.jsonl')
  const state = path.join(dir, 'state.json')
  writeFileSync(log, '')
  if (initial !== undefined) writeFileSync(state, JSON.stringify(initial))
  const env = {
    ...process.env,
    PATH: `${bin}:${process.env.PATH ?? ''}`,
    FAKE_AZ_LOG: log,
    FAKE_AZ_STATE: state,
    MSI_PAIR_GRAPH_RETRY_SECONDS: '0'
  }
  return { dir, log, state, env }
}

function registerApi (sb: Sandbox, ...args: string[]): RunResult {
  return runSync('bash', [script, ...args], { env: sb.env })
}

function calls (sb: Sandbox): RecordedCall[] {
  return readFileSync(sb.log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as RecordedCall)
}

function state (sb: Sandbox): FakeGraphState {
  return JSON.parse(readFileSync(sb.state, 'utf8')) as FakeGraphState
}

function outputs (r: RunResult): Record<string, string> {
  return Object.fromEntries(r.stdout.split('\n').filter((l) => /^[A-Z_]+=/.test(l)).map((l) => l.split('=', 2) as [string, string]))
}

const writes = (cs: RecordedCall[]): RecordedCall[] => cs.filter((c) => c.method !== 'GET')

function needBashAndJq (t: Parameters<typeof requireTool>[0]): boolean {
  return requireTool(t, 'bash') !== undefined && requireTool(t, 'jq') !== undefined
}

test('register-api.sh: first run creates the app, its service principal and the assignment', (t) => {
  if (!needBashAndJq(t)) return
  const sb = sandbox()
  const r = registerApi(sb, '--caller-principal-id', callerPrincipalId)
  assert.equal(r.code, 0, r.stderr)

  // The app is read by its alternate key (Learn: Microsoft Graph "Get application",
  // https://learn.microsoft.com/graph/api/application-get: GET
  // /applications(uniqueName='{uniqueName}')), never with $filter=uniqueName, which Graph does not document.
  const reads = calls(sb).filter((c) => c.method === 'GET').map((c) => c.url)
  assert.ok(reads.some((u) => u.startsWith(`${graph}/applications(uniqueName='msi-pair-api')`)), JSON.stringify(reads))
  assert.ok(!reads.some((u) => /\$filter=uniqueName/.test(decodeURIComponent(u))), 'no uniqueName filter')

  const w = writes(calls(sb))
  assert.deepEqual(w.map((c) => `${c.method} ${c.url.replace(/[0-9a-f-]{36}/g, '{id}')}`), [
    `PATCH ${graph}/applications(uniqueName='msi-pair-api')`,
    `POST ${graph}/servicePrincipals`,
    `POST ${graph}/servicePrincipals/{id}/appRoleAssignedTo`
  ])
  assert.ok(at(w).headers.includes('Prefer=create-if-missing'), 'upsert by uniqueName')

  const s = state(sb)
  assert.equal(s.applications.length, 1)
  const app = at(s.applications)
  assert.deepEqual(app.identifierUris, ['api://msi-pair-api'])
  assert.equal(app.api.requestedAccessTokenVersion, 2)
  assert.equal(app.appRoles.length, 1)
  assert.equal(at(app.appRoles).value, 'DoAll')
  assert.deepEqual(at(app.appRoles).allowedMemberTypes, ['Application'])
  assert.equal(at(app.appRoles).isEnabled, true)
  assert.deepEqual(s.servicePrincipals.map((sp) => [sp.appId, sp.appRoleAssignmentRequired]), [[app.appId, true]])
  assert.deepEqual(s.assignments.map((a) => [a.principalId, a.resourceId, a.appRoleId]),
    [[callerPrincipalId, at(s.servicePrincipals).id, at(app.appRoles).id]])

  assert.deepEqual(outputs(r), {
    API_CLIENT_ID: app.appId,
    API_IDENTIFIER_URI: 'api://msi-pair-api',
    API_SP_ID: at(s.servicePrincipals).id,
    APP_ROLE_ID: at(app.appRoles).id
  })
})

test('register-api.sh: a second run changes nothing and sends no write', (t) => {
  if (!needBashAndJq(t)) return
  const sb = sandbox()
  const first = registerApi(sb, '--caller-principal-id', callerPrincipalId)
  assert.equal(first.code, 0, first.stderr)
  const before = readFileSync(sb.state, 'utf8')
  const firstCount = calls(sb).length

  const second = registerApi(sb, '--caller-principal-id', callerPrincipalId)
  assert.equal(second.code, 0, second.stderr)
  const again = calls(sb).slice(firstCount)
  assert.ok(again.length >= 3, 'the second run still reads app, service principal and assignments')
  assert.deepEqual(writes(again), [], 'no creating or updating request on the second run')
  assert.equal(readFileSync(sb.state, 'utf8'), before)
  assert.deepEqual(outputs(second), outputs(first))
})

test('register-api.sh: "already exists" from the assignment call is success', (t) => {
  if (!needBashAndJq(t)) return
  const sb = sandbox()
  assert.equal(registerApi(sb, '--caller-principal-id', callerPrincipalId).code, 0)
  // Replication lag: Graph's list does not show the assignment yet, so the script posts it again.
  writeFileSync(sb.state, JSON.stringify({ ...state(sb), hideAssignmentsFromList: true }))
  const n = calls(sb).length
  const r = registerApi(sb, '--caller-principal-id', callerPrincipalId)
  assert.equal(r.code, 0, r.stderr)
  const w = writes(calls(sb).slice(n))
  assert.equal(w.length, 1)
  assert.match(at(w).url, /\/appRoleAssignedTo$/)
  assert.match(r.stderr, /already holds DoAll \(Graph: already exists\)/)
  assert.equal(state(sb).assignments.length, 1)
})

test('register-api.sh: a not-yet-replicated identity is retried, other errors fail the run', (t) => {
  if (!needBashAndJq(t)) return
  const sb = sandbox()
  assert.equal(registerApi(sb).code, 0)
  writeFileSync(sb.state, JSON.stringify({ ...state(sb), principalNotReplicatedFor: 2 }))
  const r = registerApi(sb, '--caller-principal-id', callerPrincipalId)
  assert.equal(r.code, 0, r.stderr)
  assert.equal(calls(sb).filter((c) => c.method === 'POST' && c.url.endsWith('/appRoleAssignedTo')).length, 3)
  assert.equal(state(sb).assignments.length, 1)

  // A real error (the signed-in user may not assign app roles) is reported, not swallowed or retried.
  writeFileSync(sb.state, JSON.stringify({ ...state(sb), assignments: [], denyAssignments: true }))
  const before = calls(sb).length
  const bad = registerApi(sb, '--caller-principal-id', callerPrincipalId)
  assert.equal(bad.code, 1)
  assert.match(bad.stderr, /Insufficient privileges/)
  assert.equal(writes(calls(sb).slice(before)).length, 1, 'not retried')
})

test('register-api.sh: --dry-run prints every request and sends no write', (t) => {
  if (!needBashAndJq(t)) return
  const sb = sandbox()
  const r = registerApi(sb, '--dry-run', '--caller-principal-id', callerPrincipalId)
  assert.equal(r.code, 0, r.stderr)
  assert.deepEqual(writes(calls(sb)), [], 'dry run sends reads only')
  assert.equal(existsSync(sb.state), false, 'nothing was stored')
  for (const c of calls(sb)) assert.ok(r.stdout.includes(`GET ${c.url}`), `read ${c.url} is printed`)
  assert.match(r.stdout, /^PATCH https:\/\/graph\.microsoft\.com\/v1\.0\/applications\(uniqueName='msi-pair-api'\)\nPrefer: create-if-missing$/m)
  assert.match(r.stdout, /^POST https:\/\/graph\.microsoft\.com\/v1\.0\/servicePrincipals$/m)
  assert.match(r.stdout, /^POST https:\/\/graph\.microsoft\.com\/v1\.0\/servicePrincipals\/.+\/appRoleAssignedTo$/m)
  assert.match(r.stdout, /"requestedAccessTokenVersion": 2/)
  assert.match(r.stdout, /"allowedMemberTypes": \[\s*"Application"\s*\]/)
  assert.match(r.stdout, new RegExp(`"principalId": "${callerPrincipalId}"`))

  // Against existing objects, a dry run of an up-to-date setup prints only reads.
  assert.equal(registerApi(sb, '--caller-principal-id', callerPrincipalId).code, 0)
  const n = calls(sb).length
  const dry = registerApi(sb, '--dry-run', '--caller-principal-id', callerPrincipalId)
  assert.equal(dry.code, 0, dry.stderr)
  assert.deepEqual(writes(calls(sb).slice(n)), [])
  assert.doesNotMatch(dry.stdout, /^(PATCH|POST) /m)
})

test('register-api.sh: completes an existing app without dropping its other roles and URIs', (t) => {
  if (!needBashAndJq(t)) return
  const otherRole = { id: 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee', value: 'Read', allowedMemberTypes: ['User'], isEnabled: true, origin: 'Application', displayName: 'Read', description: 'r' }
  const sb = sandbox({
    applications: [{
      id: '99999999-0000-4000-8000-000000000001',
      appId: '99999999-0000-4000-8000-000000000002',
      uniqueName: 'msi-pair-api',
      identifierUris: ['api://legacy'],
      appRoles: [otherRole],
      api: { requestedAccessTokenVersion: null, oauth2PermissionScopes: [] }
    }],
    servicePrincipals: [{ id: '99999999-0000-4000-8000-000000000003', appId: '99999999-0000-4000-8000-000000000002', appRoleAssignmentRequired: false }],
    assignments: []
  })
  const r = registerApi(sb, '--caller-principal-id', callerPrincipalId)
  assert.equal(r.code, 0, r.stderr)
  assert.deepEqual(writes(calls(sb)).map((c) => `${c.method} ${c.url.slice(graph.length)}`), [
    'PATCH /applications/99999999-0000-4000-8000-000000000001',
    'PATCH /servicePrincipals/99999999-0000-4000-8000-000000000003',
    'POST /servicePrincipals/99999999-0000-4000-8000-000000000003/appRoleAssignedTo'
  ])
  const app = at(state(sb).applications)
  assert.deepEqual(app.identifierUris, ['api://legacy', 'api://msi-pair-api'])
  assert.deepEqual(app.appRoles.map((x) => x.value), ['Read', 'DoAll'])
  assert.equal(app.api.requestedAccessTokenVersion, 2)
  assert.equal(at(state(sb).servicePrincipals).appRoleAssignmentRequired, true)
  assert.equal(outputs(r).API_CLIENT_ID, '99999999-0000-4000-8000-000000000002')

  const n = calls(sb).length
  assert.equal(registerApi(sb, '--caller-principal-id', callerPrincipalId).code, 0)
  assert.deepEqual(writes(calls(sb).slice(n)), [])
})

test('register-api.sh: rejects a malformed principal id before calling Graph', (t) => {
  if (!needBashAndJq(t)) return
  const sb = sandbox()
  const r = registerApi(sb, '--caller-principal-id', 'not-a-guid')
  assert.equal(r.code, 2)
  assert.deepEqual(calls(sb), [])
})
