import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { test } from 'node:test'
import { CALLER_CLIENT_ID, CALLER_OBJECT_ID, OTHER_TENANT, TENANT, TestAuthority, appClaims, createTestKey, mint } from '../../../packages/fastify-entra-auth/test/helpers/authority.ts'
import { startApi } from './helpers/api.ts'

const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' })
const hasPromtool = promtool.status === 0

/** prom-client's own gauges named *_total, which promtool flags; known and not ours to rename. */
const KNOWN_PROMTOOL_FINDINGS = /^nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/

test('GET /metrics: the contract series, bounded labels, nothing of the token or caller', async (t) => {
  const key = createTestKey()
  // OTHER_TENANT is configured but the authority does not know it: its keys never load.
  const authority = await TestAuthority.start({ [TENANT]: [key] })
  t.after(() => authority.stop())
  const api = await startApi(authority.url, { AUTH_TENANT_ID: `${TENANT},${OTHER_TENANT}`, AUTH_JWKS_RETRY_MAX_MS: '60000' })
  t.after(() => api.app.close())

  const token = mint(key)
  // Stored in the verified-token cache at its second acceptance: the third is a hit.
  for (let i = 0; i < 3; i++) assert.equal((await api.get(`Bearer ${token}`)).statusCode, 200)
  assert.equal((await api.get(`Bearer ${mint(key, appClaims({ roles: ['Reader'] }))}`)).statusCode, 403)
  assert.equal((await api.get(`Bearer ${mint(key, appClaims({ exp: 1 }))}`)).statusCode, 401)
  assert.equal((await api.get(`Bearer ${mint(key, appClaims({}, '2.0', OTHER_TENANT))}`)).statusCode, 503)
  const ready = await api.get(undefined, '/readyz')
  assert.equal(ready.statusCode, 503)
  assert.match(ready.body, new RegExp(`${OTHER_TENANT} v2.0`))

  const response = await api.get(undefined, '/metrics')
  assert.equal(response.statusCode, 200)
  const body = response.body
  for (const line of [
    'auth_requests_total{result="accepted",reason="none",service="api"} 3',
    'auth_requests_total{result="forbidden",reason="missing_role",service="api"} 1',
    'auth_requests_total{result="rejected",reason="expired",service="api"} 1',
    'auth_requests_total{result="unavailable",reason="keys_unavailable",service="api"} 1',
    'auth_verified_token_cache_total{result="hit",service="api"} 1',
    `jwks_keys{tenant="${TENANT}",service="api"} 1`,
    `jwks_keys{tenant="${OTHER_TENANT}",service="api"} 0`,
    `jwks_refresh_total{tenant="${TENANT}",result="success",service="api"} 2`
  ]) assert.ok(body.includes(line), `missing: ${line}`)
  assert.match(body, new RegExp(`jwks_last_success_timestamp_seconds\\{tenant="${TENANT}",service="api"\\} \\d+`))
  assert.doesNotMatch(body, new RegExp(`jwks_last_success_timestamp_seconds\\{tenant="${OTHER_TENANT}"`))
  assert.match(body, /jwks_refresh_total\{tenant="f8cdef31-a31e-4b4a-93e4-5f571e91255a",result="failure",service="api"\} [1-9]/)
  assert.match(body, /auth_validation_duration_seconds_count\{service="api"\} 6/)
  assert.match(body, /http_request_duration_seconds_count\{service="api",method="GET",route="\/claims",status_code="200"\} 3/)
  for (const secret of [CALLER_OBJECT_ID, CALLER_CLIENT_ID, ...token.split('.')]) assert.ok(!body.includes(secret), 'a label carries caller data')

  if (!hasPromtool) {
    if (process.env.CI === 'true') assert.fail('promtool is required in CI: run scripts/ci/install-api-tools.sh')
    t.skip('promtool not installed (scripts/ci/install-api-tools.sh installs it)')
    return
  }
  const check = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' })
  const findings = `${check.stdout}${check.stderr}`.split('\n').map((line) => line.trim()).filter(Boolean)
  const unexpected = findings.filter((line) => !KNOWN_PROMTOOL_FINDINGS.test(line))
  assert.deepEqual(unexpected, [], `promtool check metrics:\n${findings.join('\n')}`)
  assert.ok(check.status === 0 || findings.length > 0, 'promtool failed without saying why')
})
