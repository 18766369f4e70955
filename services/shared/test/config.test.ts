import assert from 'node:assert/strict'
import { test } from 'node:test'
import { readConfig as readApiConfig } from '../../api/src/config.ts'
import { readConfig as readCallerConfig } from '../../caller/src/config.ts'
import { ConfigError } from '../config.ts'

const tenant = '3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f'

test('a missing variable is named in the error', () => {
  assert.throws(() => readCallerConfig({ API_SCOPE: 'api://x/.default' }),
    (error: Error) => error instanceof ConfigError && /API_BASE_URL/.test(error.message))
})

test('an invalid value is named in the error', () => {
  assert.throws(() => readApiConfig({ AUTH_TENANT_ID: 'not-a-guid', AUTH_AUDIENCE: 'api://x' }),
    (error: Error) => error instanceof ConfigError && /AUTH_TENANT_ID/.test(error.message))
  assert.throws(() => readApiConfig({ AUTH_TENANT_ID: tenant, AUTH_AUDIENCE: 'api://x', PORT: '70000' }),
    (error: Error) => error instanceof ConfigError && /PORT/.test(error.message))
})

test('comma lists are split and defaults applied', () => {
  const other = '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9'
  const config = readApiConfig({ AUTH_TENANT_ID: `${tenant}, ${other.toUpperCase()}`, AUTH_AUDIENCE: 'api://x,8c0d3a51-2b7e-4f6a-9d1c-5e4f3a2b1c0d' })
  assert.deepEqual(config.AUTH_TENANT_ID, [tenant, other])
  assert.deepEqual(config.AUTH_AUDIENCE, ['api://x', '8c0d3a51-2b7e-4f6a-9d1c-5e4f3a2b1c0d'])
  assert.deepEqual(config.AUTH_REQUIRED_ROLES, ['DoAll'])
  assert.equal(config.AUTH_AUTHORITY_HOST, 'https://login.microsoftonline.com')
  assert.equal(config.PORT, 3001)
  assert.equal(config.HOST, '0.0.0.0')
})

test('a server with a bad config exits at start naming the variable', async () => {
  const { spawnSync } = await import('node:child_process')
  const result = spawnSync(process.execPath, ['services/caller/src/server.ts'], {
    env: { PATH: process.env.PATH, API_BASE_URL: 'not a url', API_SCOPE: 'api://x/.default' },
    encoding: 'utf8'
  })
  assert.equal(result.status, 78)
  assert.match(result.stderr, /^caller: invalid configuration: .*API_BASE_URL/)
})
