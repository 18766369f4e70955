import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { test } from 'node:test'
import { defaultTenant } from '../../scripts/lib/local-stack.ts'

/*
 * npm start reads the claims to the user (issue 14, item 3): each claim with one line on what it proves,
 * the values the local stack's identities should give, and how to explain a token against this api.
 * Random ports need LOG_LEVEL=info: the services' "listening" lines say which.
 */

test('npm start prints each claim with what it proves, and the explain command for this api', async (t) => {
  const child = spawn(process.execPath, ['scripts/start.ts'], {
    env: { ...process.env, CALLER_PORT: '0', API_PORT: '0', MOCK_IMDS_PORT: '0', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.after(() => { if (child.exitCode === null) child.kill('SIGTERM') })
  let stdout = ''
  let stderr = ''
  child.stderr.on('data', (chunk) => { stderr += chunk })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no output in 60 s; stderr: ${stderr}`)), 60_000)
    child.stdout.on('data', (chunk) => {
      stdout += chunk
      if (stdout.includes('Press Ctrl-C to stop.')) { clearTimeout(timer); resolve() }
    })
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`npm start exited ${code}: ${stdout}${stderr}`)) })
  })
  const closed = new Promise((resolve) => child.on('exit', resolve))
  child.kill('SIGTERM')
  await closed

  const { tenantId, apiClientId, apiAppIdUri } = defaultTenant()
  const proves: Record<string, RegExp> = {
    aud: /the api's app registration/,
    iss: /Entra issued it, for the tenant/,
    tid: /the tenant: the one the api accepts/,
    azp: /the caller's client id: the managed identity's/,
    oid: /the managed identity's object \(principal\) id/,
    roles: /the app role assigned to that identity on the api/
  }
  const lines = stdout.split('\n')
  for (const [claim, meaning] of Object.entries(proves)) {
    const at = lines.findIndex((line) => line.startsWith(`  ${claim.padEnd(6)} `))
    assert.ok(at >= 0, `${claim} is printed:\n${stdout}`)
    assert.match(lines[at + 1] as string, meaning, claim)
    assert.doesNotMatch(lines[at] as string, /DIFFERS/, claim)
  }
  assert.match(stdout, new RegExp(`aud {4}"${apiClientId}"`))
  assert.match(stdout, new RegExp(`tid {4}"${tenantId}"`))
  assert.ok(stdout.includes(`AUTH_TENANT_ID=${tenantId} AUTH_AUDIENCE=${apiClientId},${apiAppIdUri} AUTH_AUTHORITY_HOST=http://127.0.0.1:`), stdout)
  assert.match(stdout, /npm run -s explain -- --keys <token>/)
  // The token itself never appears.
  assert.doesNotMatch(stdout, /eyJ[A-Za-z0-9_-]{10,}\./)
})
