import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { after, before, describe, test } from 'node:test'
import { runExplainCli } from '../src/explain/cli.ts'
import { explainToken, type ExplainReport } from '../src/explain/explain.ts'
import { API_APP_ID_URI, API_CLIENT_ID, CALLER_OBJECT_ID, OTHER_TENANT, TENANT, appClaims, createTestKey, mint } from './helpers/authority.ts'
import { API_SP_ID, APP_ROLE_ID, CASES, startAppKeysAuthority, type Keys } from './fixtures/explain/cases.ts'

/*
 * explain on its fixtures (one per failure kind of issue 14): the verdict (exit status, the api's status
 * and reason in --json) and the fix it prints; its CLI contract (flags, environment, stdin, exit 2); and
 * that it never prints the token or any of its segments.
 */

let keys: Keys
let authority: { url: string, close: () => Promise<void> }

before(async () => {
  keys = { entra: createTestKey(), foreign: createTestKey(), appSpecific: createTestKey() }
  authority = await startAppKeysAuthority(keys)
})
after(async () => { await authority?.close() })

const ENV = { AUTH_TENANT_ID: TENANT, AUTH_AUDIENCE: `${API_CLIENT_ID},${API_APP_ID_URI}`, AUTH_REQUIRED_ROLES: 'DoAll' }

async function run (argv: string[], env: Record<string, string> = ENV, stdin = '') {
  let stdout = ''
  let stderr = ''
  const code = await runExplainCli(argv, env, { stdin: async () => stdin, stdout: (text) => { stdout += text }, stderr: (text) => { stderr += text } })
  return { code, stdout, stderr }
}

/** No segment of the token, nor the whole, appears in the output. */
function assertNoTokenText (output: string, token: string) {
  for (const segment of token.split('.')) if (segment.length >= 8) assert.ok(!output.includes(segment), 'a token segment was printed')
}

describe('explain fixtures: one per failure kind, verdict and fix', () => {
  for (const fixture of CASES) {
    test(`${fixture.kind}: ${fixture.name} -> ${fixture.expected.status} ${fixture.expected.reason}`, async () => {
      const token = fixture.token(keys)
      const args = [...(fixture.keys ? ['--keys', '--authority-host', authority.url] : []), ...(fixture.args ?? []), token]
      const text = await run(args)
      assert.equal(text.stderr, '')
      assert.equal(text.code, fixture.expected.exit, text.stdout)
      for (const expected of fixture.prints) {
        if (typeof expected === 'string') assert.ok(text.stdout.includes(expected), `prints ${JSON.stringify(expected)}\n${text.stdout}`)
        else assert.match(text.stdout, expected)
      }
      for (const unexpected of fixture.printsNot ?? []) {
        if (typeof unexpected === 'string') assert.ok(!text.stdout.includes(unexpected), `does not print ${JSON.stringify(unexpected)}\n${text.stdout}`)
        else assert.doesNotMatch(text.stdout, unexpected)
      }
      assertNoTokenText(text.stdout, token)

      const json = await run(['--json', ...args])
      assert.equal(json.code, fixture.expected.exit)
      const report = JSON.parse(json.stdout) as ExplainReport
      assert.deepEqual([report.verdict.status, report.verdict.reason], [fixture.expected.status, fixture.expected.reason])
      assert.equal(report.verdict.signature, fixture.keys ? 'checked' : 'not checked')
      // The first failing check names the verdict's reason; an accepted token fails none.
      const failed = report.checks.find((check) => check.status === 'fail')
      assert.equal(failed?.reason ?? 'none', fixture.expected.reason)
      if (!report.verdict.accepted) assert.equal(report.fixes[0]?.reason, fixture.expected.reason, 'the first fix answers the verdict')
      assertNoTokenText(json.stdout, token)
    })
  }

  test('the fixtures cover every failure kind of issue 14', () => {
    const kinds = new Set(CASES.map((fixture) => fixture.kind))
    for (const kind of ['wrong aud', 'v1 vs v2', 'no role assignment', 'role assigned but cached token', 'other tenant', 'unexpected azp/appid',
      'expired', 'not yet valid', 'unknown key (another cloud)', 'unknown key (app-specific keys)', 'delegated token']) {
      assert.ok(kinds.has(kind), kind)
    }
  })
})

describe('explain CLI', () => {
  test('"-" reads the token from stdin, with a Bearer prefix and a trailing newline', async () => {
    const result = await run(['-'], ENV, `Bearer ${mint(keys.entra)}\n`)
    assert.equal(result.code, 0, result.stdout)
  })
  test('flags win over the environment', async () => {
    const token = mint(keys.entra)
    assert.equal((await run([token], { ...ENV, AUTH_AUDIENCE: 'api://other' })).code, 1)
    assert.equal((await run(['--audience', API_CLIENT_ID, token], { ...ENV, AUTH_AUDIENCE: 'api://other' })).code, 0)
    assert.equal((await run(['--roles', 'Admin', token])).code, 1)
  })
  test('--tenant \'*\' (a multi-tenant api): another tenant\'s token passes the tenant check', async () => {
    const token = mint(keys.entra, appClaims({}, '2.0', OTHER_TENANT))
    assert.equal((await run([token])).code, 1)
    const result = await run(['--tenant', '*', token])
    assert.equal(result.code, 0, result.stdout)
    assert.match(result.stdout, /pass {8}tid/)
  })
  test('the clock skew is the api\'s: a token expired 4 min ago passes, 6 min ago fails (both modes)', async () => {
    const now = Math.floor(Date.now() / 1000)
    const expiredAgo = (seconds: number) => mint(keys.entra, appClaims({ iat: now - 3600, nbf: now - 3600, exp: now - seconds }))
    for (const mode of [[], ['--keys', '--authority-host', authority.url]]) {
      assert.equal((await run([...mode, expiredAgo(240)])).code, 0)
      assert.equal((await run([...mode, expiredAgo(360)])).code, 1)
    }
    const report = await explainToken(expiredAgo(360), { tenants: [TENANT], audiences: [API_CLIENT_ID], clockSkewMs: 600_000 })
    assert.equal(report.verdict.reason, 'none')
  })
  test('without required roles, roles are not checked and said so', async () => {
    const result = await run([mint(keys.entra, appClaims({ roles: undefined }))], { AUTH_TENANT_ID: TENANT, AUTH_AUDIENCE: API_CLIENT_ID })
    assert.equal(result.code, 0)
    assert.match(result.stdout, /no required roles given: AUTH_REQUIRED_ROLES/)
  })
  test('bad input: exit 2 with a message naming the flag or variable', async () => {
    const token = mint(keys.entra)
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [[], ENV, /no token given/],
      [[token, token], ENV, /exactly one token/],
      [['--bogus', token], ENV, /Unknown option '--bogus'/],
      [[token], { AUTH_AUDIENCE: API_CLIENT_ID }, new RegExp(`--tenant <tenant id> or AUTH_TENANT_ID \\(this token names tid ${TENANT}; the api's own setting is what counts\\)`)],
      [[token], { AUTH_TENANT_ID: TENANT }, new RegExp(`--audience .* or AUTH_AUDIENCE \\(this token names aud ${API_CLIENT_ID};`)],
      [['--tenant', 'contoso', token], ENV, /tenants must be tenant ids/],
      [['--token-versions', '3.0', token], ENV, /AUTH_ACCEPTED_TOKEN_VERSIONS must list 1\.0 and\/or 2\.0/],
      [['--max-token-bytes', 'lots', token], ENV, /AUTH_MAX_TOKEN_BYTES must be a whole number/],
      [['--authority-host', 'ftp://x', token], ENV, /authorityHost must be an http\(s\) URL/],
      [['--role-assigned-at', 'yesterday', token], ENV, /--role-assigned-at must be a time/],
      [['--api-sp-id', 'sp', token], ENV, /apiServicePrincipalId must be a GUID/],
      [['-'], ENV, /the token is empty/]
    ]
    for (const [argv, env, message] of cases) {
      const result = await run(argv, env)
      assert.equal(result.code, 2, `${argv.join(' ')}: ${result.stdout}`)
      assert.match(result.stderr, message)
      assert.equal(result.stdout, '')
      assertNoTokenText(result.stderr, token)
    }
  })
  test('a missing role against a local mock authority: the same assignment for the mock\'s tenant model too', async () => {
    const result = await run(['--keys', '--authority-host', authority.url, '--api-sp-id', API_SP_ID, '--app-role-id', APP_ROLE_ID, mint(keys.entra, appClaims({ roles: undefined }))])
    assert.equal(result.code, 1)
    assert.ok(result.stdout.includes(`${authority.url} is not an Entra login host`), result.stdout)
    assert.ok(result.stdout.includes(`{"principalId":"${CALLER_OBJECT_ID}","resourceId":"${API_SP_ID}","appRoleId":"${APP_ROLE_ID}"} in appRoleAssignments`), result.stdout)
    assert.match(result.stdout, /^=> REFUSED: 403 missing_role: the fix is at the end$/m)
  })
  test('--help: usage on stdout, exit 0', async () => {
    const result = await run(['--help'])
    assert.equal(result.code, 0)
    assert.match(result.stdout, /^usage: entra-explain/)
  })
  test('--keys with the authority down: the api\'s 503 keys_unavailable, and the fetch error', async () => {
    const result = await run(['--keys', '--authority-host', 'http://127.0.0.1:9', '--timeout-ms', '500', mint(keys.entra)])
    assert.equal(result.code, 1)
    assert.match(result.stdout, /answers 503 invalid_token \(reason keys_unavailable\)/)
    assert.match(result.stdout, /Fetch failed: /)
  })
  test('the bin: a real process, token on stdin, exit status', async () => {
    const bin = fileURLToPath(new URL('../src/explain-cli.ts', import.meta.url))
    const child = spawn(process.execPath, [bin, '--roles', 'DoAll', '-'], { env: { ...process.env, ...ENV, AUTH_REQUIRED_ROLES: '' }, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    child.stdout.on('data', (chunk) => { stdout += chunk })
    const token = mint(keys.entra, appClaims({ roles: undefined }))
    child.stdin.end(token)
    const code = await new Promise((resolve) => child.on('close', resolve))
    assert.equal(code, 1)
    assert.match(stdout, /fix \(missing_role\)/)
    assertNoTokenText(stdout, token)
  })
})
