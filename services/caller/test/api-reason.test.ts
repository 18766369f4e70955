import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { test } from 'node:test'
import { API_REASONS_BY_DESCRIPTION, apiRefusalReason } from '../src/api-reason.ts'
import { flavours, getJson, startBackend, startCaller } from './helpers.ts'

/*
 * The caller's 502 names the api's reason code and points to explain (issue 14). The reason is read
 * from the api's fixed error_description: every description in the auth package's source must map to
 * the reason it is given with there, and the table holds nothing the package no longer says.
 */

const source = new URL('../../../packages/fastify-entra-auth/src/', import.meta.url)
function descriptionsInPackage (): Map<string, string> {
  const found = new Map<string, string>()
  for (const file of readdirSync(source).filter((name) => name.endsWith('.ts'))) {
    const text = readFileSync(new URL(file, source), 'utf8')
    for (const match of text.matchAll(/(?:invalid|reject)\((?:\d{3}, )?'([a-z_]+)', '([^']+)'/g)) found.set(match[2] as string, match[1] as string)
    for (const match of text.matchAll(/reason: '([a-z_]+)', description: '([^']+)'/g)) found.set(match[2] as string, match[1] as string)
  }
  return found
}

test('every error_description of fastify-entra-auth maps to its reason', () => {
  const inPackage = descriptionsInPackage()
  assert.ok(inPackage.size >= 25, `found ${inPackage.size} descriptions`)
  for (const [description, reason] of inPackage) assert.equal(API_REASONS_BY_DESCRIPTION[description], reason, description)
  // Each reason has one description at least, so a table entry is never the only way to a reason.
  const reasons = new Set(inPackage.values())
  for (const reason of Object.values(API_REASONS_BY_DESCRIPTION)) assert.ok(reasons.has(reason), `no description gives ${reason}`)
})

test('apiRefusalReason reads the challenge, then the body', () => {
  assert.equal(apiRefusalReason('Bearer error="insufficient_scope", error_description="the token lacks a required app role", scope="DoAll"', undefined), 'missing_role')
  assert.equal(apiRefusalReason(undefined, { error: 'invalid_token', error_description: 'the token expired' }), 'expired')
  assert.equal(apiRefusalReason('Bearer error="invalid_token", error_description="something new"', {}), undefined)
  assert.equal(apiRefusalReason(undefined, 'text'), undefined)
})

const [imds] = flavours as [typeof flavours[number]]

test('a 403 for a missing role: the 502 carries reason missing_role and the pointer to explain', async (t) => {
  const backend = await startBackend(t)
  // The default tenant's user-assigned identity has no app role on the api.
  const caller = await startCaller(t, imds, backend, { AZURE_CLIENT_ID: '2c3d4e5f-6a7b-4c8d-8e9f-1a2b3c4d5e6f' })
  const { status, body } = await getJson(`${caller.url}/call`)
  assert.equal(status, 502)
  assert.equal(body.error, 'api_rejected')
  assert.equal(body.reason, 'missing_role')
  assert.match(String(body.explain), /npm run explain -- --keys <token>/)
  assert.match(String(body.explain), /resource=api:\/\/msi-pair-api"/)
})
