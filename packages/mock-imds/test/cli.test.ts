/*
 * The CLI's contract, against the built bin (dist/cli.js, what `npx mock-imds` runs): --help,
 * --version, exit codes and messages for bad input, flags over variables, and a real start that
 * serves a token. `npm test` builds the packages first; alone, run `npm run build:packages`.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { stopChild } from '../../../scripts/lib/processes.ts'
import { settings } from '../src/options.ts'

const bin = fileURLToPath(new URL('../dist/cli.js', import.meta.url))
const tenantFile = fileURLToPath(new URL('../../../test/conformance/tenant.yaml', import.meta.url))
const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }

interface Run { code: number | null, stdout: string, stderr: string }

/** Runs the bin to its exit, with exactly `env` (plus PATH), so no variable of this shell plays a part. */
function runBin (args: string[], env: Record<string, string> = {}): Promise<Run> {
  assert.ok(existsSync(bin), `${bin} is missing: run npm run build:packages`)
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`mock-imds ${args.join(' ')} did not exit:\n${stdout}${stderr}`)) }, 15_000)
    child.once('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}

test('--help lists every flag with its variable and default, on stdout, and exits 0', async () => {
  const { code, stdout, stderr } = await runBin(['--help'])
  assert.equal(code, 0)
  assert.equal(stderr, '')
  assert.match(stdout, /^Usage: mock-imds \[options\]/)
  for (const setting of settings) {
    const line = stdout.split('\n').find((l) => l.trimStart().startsWith(`--${setting.flag} `))
    assert.ok(line, `--${setting.flag} is listed`)
    assert.ok(line.includes(setting.env), `--${setting.flag} names ${setting.env}`)
    assert.ok(line.includes(`default: ${setting.defaultText}`), `--${setting.flag} gives its default`)
  }
})

test('--version prints the package version', async () => {
  const { code, stdout } = await runBin(['--version'])
  assert.equal(code, 0)
  assert.equal(stdout, `${version}\n`)
})

test('bad input exits non-zero on stderr, naming the flag or the variable', async (t) => {
  const cases: Array<{ name: string, args: string[], env?: Record<string, string>, code: number, names: RegExp }> = [
    { name: 'unknown flag', args: ['--tenat', 'x.yaml'], code: 64, names: /Unknown option '--tenat'/ },
    { name: 'flag without its value', args: ['--port'], code: 64, names: /--port/ },
    { name: 'stray argument', args: ['tenant.yaml'], code: 64, names: /tenant\.yaml/ },
    { name: 'port not a number', args: ['--port', 'abc'], code: 64, names: /^mock-imds: --port must be an integer from 0 to 65535, got "abc"/ },
    { name: 'port out of range', args: ['--admin-port', '70000'], code: 64, names: /--admin-port must be an integer/ },
    { name: 'lifetime under a minute', args: ['--token-lifetime-seconds', '59'], code: 64, names: /--token-lifetime-seconds must be an integer from 60/ },
    { name: 'unknown log level', args: ['--log-level', 'loud'], code: 64, names: /--log-level must be one of/ },
    { name: 'unknown platform', args: ['--platform', 'aks'], code: 64, names: /--platform must be one of vm, app-service, container-apps, got "aks"/ },
    { name: 'unknown platform variable', args: [], env: { MOCK_IMDS_PLATFORM: 'functions' }, code: 78, names: /MOCK_IMDS_PLATFORM must be one of/ },
    { name: 'admin port equal to port', args: ['--port', '4000', '--admin-port', '4000'], code: 64, names: /--admin-port must differ from --port/ },
    { name: 'missing tenant file', args: ['--tenant', '/nonexistent/tenant.yaml'], code: 78, names: /--tenant: \/nonexistent\/tenant\.yaml/ },
    { name: 'bad variable', args: [], env: { MOCK_IMDS_TOKEN_LIFETIME_SECONDS: '1h' }, code: 78, names: /MOCK_IMDS_TOKEN_LIFETIME_SECONDS must be an integer/ },
    { name: 'admin port variable equal to port flag', args: ['--port', '4000'], env: { MOCK_IMDS_ADMIN_PORT: '4000' }, code: 78, names: /MOCK_IMDS_ADMIN_PORT must differ from --port/ }
  ]
  await Promise.all(cases.map((c) => t.test(c.name, async () => {
    const { code, stdout, stderr } = await runBin(c.args, c.env)
    assert.equal(code, c.code, stderr)
    assert.equal(stdout, '', 'nothing on stdout')
    assert.match(stderr, c.names)
  })))
})

test('started with flags (which win over variables), it serves a token and its admin API', async (t) => {
  const child = spawn(process.execPath, [bin, '--platform', 'container-apps', '--tenant', tenantFile, '--port', '0', '--admin-port', '0', '--identity-header', 'from-the-flag'], {
    // Every variable is wrong: a flag that did not win would fail the start or the request.
    env: { PATH: process.env.PATH ?? '', PORT: 'not-a-port', MOCK_IMDS_IDENTITY_HEADER: 'from-the-variable', MOCK_IMDS_TENANT_FILE: '/nonexistent.yaml', MOCK_IMDS_PLATFORM: 'vm' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.after(() => stopChild(child))
  const urls = await new Promise<{ url: string, adminUrl: string }>((resolve, reject) => {
    let log = ''
    const timer = setTimeout(() => reject(new Error(`no listening lines:\n${log}`)), 15_000)
    const seen = () => {
      const url = /"msg":"Server listening at (http:\/\/[^"]+)"/.exec(log)?.[1]
      const adminUrl = /"msg":"Admin API listening at (http:\/\/[^"]+)"/.exec(log)?.[1]
      if (url && adminUrl) { clearTimeout(timer); resolve({ url, adminUrl }) }
    }
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { log += chunk; seen() })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { log += chunk })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`exited ${code}:\n${log}`)) })
  })
  assert.match(urls.url, /^http:\/\/127\.0\.0\.1:\d+$/, 'the default host is loopback')

  const identity = await fetch(`${urls.url}/msi/token?api-version=2019-08-01&resource=api://conformance-v2`, { headers: { 'X-IDENTITY-HEADER': 'from-the-flag' } })
  assert.equal(identity.status, 200)
  const body = await identity.json() as { access_token: string, resource: string }
  assert.equal(body.resource, 'api://conformance-v2')
  const claims = JSON.parse(Buffer.from(body.access_token.split('.')[1]!, 'base64url').toString()) as { tid: string }
  assert.equal(claims.tid, '7a1e9c52-0b3d-4f6e-8a9c-1d2e3f405162', 'the tenant of --tenant, not the built-in one')
  // Container Apps, as --platform says (the variable said vm): no IMDS, and a 403 without the header.
  const imds = await fetch(`${urls.url}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=api://conformance-v2`, { headers: { Metadata: 'true' } })
  assert.equal(imds.status, 404)
  assert.equal((await fetch(`${urls.url}/msi/token?api-version=2019-08-01&resource=api://conformance-v2`)).status, 403)

  const state = await (await fetch(`${urls.adminUrl}/admin/state`)).json() as { tokenRequests: number }
  assert.equal(state.tokenRequests, 2, 'the two requests to /msi/token (the IMDS path is no token endpoint here)')

  // SIGTERM closes it gracefully: exit code 0.
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  child.kill('SIGTERM')
  assert.equal(await exited, 0)
})
