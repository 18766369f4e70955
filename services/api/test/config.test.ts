import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ConfigError } from '../../shared/config.ts'
import { readConfig } from '../src/config.ts'

const base = { AUTH_TENANT_ID: '72F988BF-86F1-41AF-91AB-2D7CD011DB47', AUTH_AUDIENCE: 'api://x' }

test('defaults: both token versions, Microsoft\'s timings, DoAll, the public authority', () => {
  const config = readConfig(base)
  assert.deepEqual(config.AUTH_TENANT_ID, ['72f988bf-86f1-41af-91ab-2d7cd011db47'])
  assert.deepEqual(config.AUTH_ACCEPTED_TOKEN_VERSIONS, ['1.0', '2.0'])
  assert.deepEqual(config.AUTH_REQUIRED_ROLES, ['DoAll'])
  assert.equal(config.AUTH_AUTHORITY_HOST, 'https://login.microsoftonline.com')
  assert.equal(config.AUTH_JWKS_REFRESH_INTERVAL_MS, 3_600_000)
  assert.equal(config.AUTH_JWKS_COOLDOWN_MS, 300_000)
  assert.equal(config.AUTH_JWKS_TIMEOUT_MS, 5000)
  assert.equal(config.AUTH_MAX_TOKEN_BYTES, 8192)
})

test('v2 only', () => {
  assert.deepEqual(readConfig({ ...base, AUTH_ACCEPTED_TOKEN_VERSIONS: ' 2.0 ' }).AUTH_ACCEPTED_TOKEN_VERSIONS, ['2.0'])
})

test('bad values fail at start, naming the variable', () => {
  for (const [name, value] of [['AUTH_ACCEPTED_TOKEN_VERSIONS', '3.0'], ['AUTH_JWKS_TIMEOUT_MS', '0'], ['AUTH_TENANT_ID', 'common'], ['AUTH_MAX_TOKEN_BYTES', '100000']]) {
    assert.throws(() => readConfig({ ...base, [name as string]: value }), (error: Error) => error instanceof ConfigError && error.message.includes(name as string))
  }
})

test('roles go into WWW-Authenticate, so quotes, backslashes and spaces are refused', () => {
  assert.deepEqual(readConfig({ ...base, AUTH_REQUIRED_ROLES: 'Data.Read, Task-Write_2' }).AUTH_REQUIRED_ROLES, ['Data.Read', 'Task-Write_2'])
  for (const roles of ['Do"All', 'Do\\All', 'Rôle']) {
    assert.throws(() => readConfig({ ...base, AUTH_REQUIRED_ROLES: roles }), /AUTH_REQUIRED_ROLES/)
  }
})

test('a multi-tenant api: AUTH_TENANT_ID=* with its bound, and an app-specific signing key', () => {
  const config = readConfig({ ...base, AUTH_TENANT_ID: '*', AUTH_MAX_TENANTS: '50', AUTH_SIGNING_KEYS_APP_ID: '6E74172B-BE56-4843-9FF4-E66A39BB12E3' })
  assert.equal(config.AUTH_TENANT_ID, '*')
  assert.equal(config.AUTH_MAX_TENANTS, 50)
  assert.equal(config.AUTH_SIGNING_KEYS_APP_ID, '6E74172B-BE56-4843-9FF4-E66A39BB12E3')
  assert.equal(readConfig(base).AUTH_MAX_TENANTS, 1000)
  assert.equal(readConfig(base).AUTH_SIGNING_KEYS_APP_ID, undefined)
  for (const [name, value] of [['AUTH_TENANT_ID', '*,72f988bf-86f1-41af-91ab-2d7cd011db47'], ['AUTH_MAX_TENANTS', '0'], ['AUTH_SIGNING_KEYS_APP_ID', 'api://x']]) {
    assert.throws(() => readConfig({ ...base, [name as string]: value }), (error: Error) => error instanceof ConfigError && error.message.includes(name as string))
  }
})
