import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startMockImds } from '../../../scripts/lib/mock-imds.ts'
import { startService } from '../../../scripts/lib/processes.ts'

test('a real process: the admin API on its own loopback port, absent from the public one', async (t) => {
  const mock = await startMockImds()
  t.after(() => mock.stop())
  const adminPort = Number(new URL(mock.admin.url).port)
  assert.notEqual(adminPort, mock.port)
  assert.equal(new URL(mock.admin.url).hostname, '127.0.0.1')
  assert.equal((await fetch(`${mock.url}/admin/state`)).status, 404)

  await mock.admin.addFault({ target: 'imds', mode: 'status', status: 410, count: 1 })
  const response = await fetch(`${mock.url}/metadata/identity/oauth2/token/?api-version=2018-02-01&resource=api://msi-pair-api`, { headers: { Metadata: 'true' } })
  assert.equal(response.status, 410)
  assert.equal((await mock.admin.state()).tokenRequests, 1)
})

test('without MOCK_IMDS_ADMIN_PORT no admin listener starts', async (t) => {
  const mock = await startService('mock-imds')
  t.after(() => mock.stop())
  assert.ok(!mock.logs.some((line) => line.includes('Admin API listening')))
  assert.equal((await fetch(`${mock.url}/admin/state`)).status, 404)
})
