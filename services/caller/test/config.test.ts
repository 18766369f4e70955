import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ConfigError } from '../../shared/config.ts'
import { identityOptions, readConfig } from '../src/config.ts'

const required = { API_BASE_URL: 'http://api:3001/', API_SCOPE: 'api://msi-pair-api/.default' }
const clientId = '2c3d4e5f-6a7b-4c8d-8e9f-1a2b3c4d5e6f'
const resourceId = '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/msi-pair/providers/Microsoft.ManagedIdentity/userAssignedIdentities/caller'

test('defaults: system-assigned identity, production deadlines and refresh window', () => {
  const config = readConfig(required)
  assert.deepEqual(identityOptions(config), {})
  assert.equal(config.API_BASE_URL, 'http://api:3001')
  assert.equal(config.TOKEN_ATTEMPT_TIMEOUT_MS, 5000)
  assert.equal(config.TOKEN_WAIT_TIMEOUT_MS, 10_000)
  assert.equal(config.TOKEN_ACQUISITION_DEADLINE_MS, 60_000)
  assert.equal(config.TOKEN_REFRESH_FRACTION, 0.5)
  assert.equal(config.TOKEN_REFRESH_JITTER, 0.25)
  assert.equal(config.TOKEN_EXPIRY_MARGIN_SECONDS, 120)
  assert.equal(config.API_TIMEOUT_MS, 5000)
})

test('each selector picks a user-assigned identity its own way', () => {
  assert.deepEqual(identityOptions(readConfig({ ...required, AZURE_CLIENT_ID: clientId })), { clientId })
  assert.deepEqual(identityOptions(readConfig({ ...required, MANAGED_IDENTITY_RESOURCE_ID: resourceId })), { resourceId })
  assert.deepEqual(identityOptions(readConfig({ ...required, MANAGED_IDENTITY_OBJECT_ID: clientId })), { objectId: clientId })
})

test('two selectors at once are refused, naming both variables', () => {
  assert.throws(() => readConfig({ ...required, AZURE_CLIENT_ID: clientId, MANAGED_IDENTITY_OBJECT_ID: clientId }),
    (error: Error) => error instanceof ConfigError && /AZURE_CLIENT_ID and MANAGED_IDENTITY_OBJECT_ID/.test(error.message))
})

test('malformed values are refused, naming the variable', () => {
  for (const [name, value] of [['AZURE_CLIENT_ID', 'not-a-guid'], ['MANAGED_IDENTITY_RESOURCE_ID', 'caller'], ['TOKEN_WAIT_TIMEOUT_MS', '0'], ['TOKEN_REFRESH_FRACTION', '2']]) {
    assert.throws(() => readConfig({ ...required, [name as string]: value }),
      (error: Error) => error instanceof ConfigError && error.message.includes(name as string), name)
  }
})

test('a refresh window reaching past expiry is refused', () => {
  assert.throws(() => readConfig({ ...required, TOKEN_REFRESH_FRACTION: '0.8', TOKEN_REFRESH_JITTER: '0.3' }),
    (error: Error) => error instanceof ConfigError && /TOKEN_REFRESH_FRACTION \+ TOKEN_REFRESH_JITTER/.test(error.message))
})
