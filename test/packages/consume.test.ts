/*
 * Proof that the packages work outside this repository (issue 11): every package is packed with
 * `npm pack`, the tarballs are installed into a new temporary project with their declared
 * dependencies only (no workspace links), a TypeScript consumer is compiled there against the
 * installed types and run, against mock-imds started from its own tarball's bin. A package missing
 * a file, a dependency or a type fails here.
 */
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { repoRoot, run } from '../helpers/run.ts'
import { packageDirs } from './packages.ts'

const rootManifest = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { devDependencies: Record<string, string>, dependencies: Record<string, string> }
const pinned = (name: string) => rootManifest.dependencies[name] ?? rootManifest.devDependencies[name] ?? assert.fail(`${name} is not pinned in the root package.json`)
const node = join(repoRoot, 'node_modules', '.bin', 'node')
const project = mkdtempSync(join(tmpdir(), 'msi-pair-consumer-'))
const tarballs: Record<string, string> = {}

function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => { typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port')) })
    })
  })
}

async function waitForHealth (url: string, deadlineMs: number) {
  const end = Date.now() + deadlineMs
  while (Date.now() < end) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) return
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  assert.fail(`mock-imds did not answer ${url}/healthz within ${deadlineMs} ms`)
}

before(async () => {
  for (const dir of packageDirs) {
    const packed = await run('npm', ['pack', '--json', '--pack-destination', project, '-w', dir], { timeoutMs: 120_000 })
    assert.equal(packed.code, 0, `npm pack -w ${dir} failed:\n${packed.stderr}`)
    const [info] = JSON.parse(packed.stdout) as Array<{ name: string, filename: string }>
    assert.ok(info, `npm pack -w ${dir} reported nothing`)
    tarballs[info.name] = join(project, info.filename)
  }
  // The consumer's own dependencies are the peers a user installs next to the packages; the
  // packages' own dependencies come from their tarballs' manifests only.
  writeFileSync(join(project, 'package.json'), JSON.stringify({
    name: 'consumer',
    private: true,
    type: 'module',
    dependencies: {
      ...Object.fromEntries(Object.entries(tarballs).map(([name, file]) => [name, `file:${file}`])),
      fastify: pinned('fastify'),
      'prom-client': pinned('prom-client'),
      '@azure/identity': pinned('@azure/identity')
    },
    devDependencies: { typescript: pinned('typescript'), '@types/node': pinned('@types/node') }
  }, null, 2))
  writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { target: 'es2024', module: 'nodenext', moduleResolution: 'nodenext', strict: true, outDir: 'out', types: ['node'], skipLibCheck: false },
    files: ['consumer.ts']
  }, null, 2))
  copyFileSync(join(repoRoot, 'test/packages/consumer/consumer.ts'), join(project, 'consumer.ts'))
  const installed = await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--install-links'], { cwd: project, timeoutMs: 300_000 })
  assert.equal(installed.code, 0, `npm install in the consumer project failed:\n${installed.stderr}`)
})

after(() => { rmSync(project, { recursive: true, force: true }) })

test('each tarball holds its build, README and manifest, and no sources or tests', () => {
  for (const [name, file] of Object.entries(tarballs)) {
    const installedDir = join(project, 'node_modules', name)
    const manifest = JSON.parse(readFileSync(join(installedDir, 'package.json'), 'utf8')) as { files?: string[] }
    assert.ok(manifest.files?.includes('dist'), `${name}: files allow-list lacks dist`)
    assert.ok(readFileSync(join(installedDir, 'README.md'), 'utf8').length > 500, `${name}: README missing or empty (${file})`)
    for (const unwanted of ['src', 'test', 'tsconfig.build.json', 'dist/.tsbuildinfo']) {
      assert.equal(existsSync(join(installedDir, unwanted)), false, `${name}: the tarball ships ${unwanted}`)
    }
  }
})

test('a TypeScript consumer compiles against the installed types (strict, library types checked)', async () => {
  const compiled = await run(node, [join(project, 'node_modules/typescript/bin/tsc'), '-p', project], { cwd: project, timeoutMs: 120_000 })
  assert.equal(compiled.code, 0, `tsc failed:\n${compiled.stdout}${compiled.stderr}`)
})

test('mock-imds from its bin issues a token; the token provider gets it; the Entra auth plugin accepts it, refuses no token (401) and a missing role (403 with scope); entra-explain agrees', async (t) => {
  const port = await freePort()
  const mock = spawn(node, [join(project, 'node_modules/.bin/mock-imds'), '--port', String(port), '--log-level', 'warn'], { cwd: project, stdio: ['ignore', 'pipe', 'pipe'] })
  let mockOutput = ''
  mock.stdout.setEncoding('utf8').on('data', (chunk: string) => { mockOutput += chunk })
  mock.stderr.setEncoding('utf8').on('data', (chunk: string) => { mockOutput += chunk })
  t.after(() => { mock.kill('SIGTERM') })
  const url = `http://127.0.0.1:${port}`
  await waitForHealth(url, 20_000).catch((error: Error) => assert.fail(`${error.message}\n${mockOutput}`))

  const result = await run(node, [join(project, 'out/consumer.js')], {
    cwd: project,
    timeoutMs: 60_000,
    env: { AZURE_POD_IDENTITY_AUTHORITY_HOST: url, MOCK_IMDS_URL: url, IDENTITY_ENDPOINT: undefined, MSI_ENDPOINT: undefined }
  })
  assert.equal(result.code, 0, `the consumer failed:\n${result.stdout}${result.stderr}\nmock-imds:\n${mockOutput}`)
  const report = JSON.parse(result.stdout) as {
    expiresInSeconds: number
    accepted: { status: number, body: { appId?: string, roles?: string[] } }
    refused: { status: number, challenge?: string }
    forbidden: { status: number, challenge?: string }
    ready: boolean
    metricsRegistered: boolean
  }
  assert.ok(report.expiresInSeconds > 3600, `token lifetime ${report.expiresInSeconds} s`)
  assert.equal(report.accepted.status, 200)
  assert.deepEqual(report.accepted.body.roles, ['DoAll'])
  assert.match(report.accepted.body.appId ?? '', /^[0-9a-f-]{36}$/)
  assert.equal(report.refused.status, 401)
  assert.match(report.refused.challenge ?? '', /^Bearer /)
  assert.equal(report.forbidden.status, 403)
  assert.match(report.forbidden.challenge ?? '', /error="insufficient_scope".*scope="Admin\.Write"/)
  assert.equal(report.ready, true)
  assert.equal(report.metricsRegistered, true)

  // The auth package's second bin, as a user runs it on the same token: the api's verdict, keys read.
  const tenant = JSON.parse(readFileSync(join(project, 'node_modules/mock-imds/dist/default-tenant.json'), 'utf8')) as { tenantId: string, applications: Array<{ appId: string, identifierUris: string[] }> }
  const api = tenant.applications[0] ?? assert.fail('no application in the built-in tenant')
  const explained = spawnSync(node, [join(project, 'node_modules/.bin/entra-explain'), '--keys', '--json',
    '--tenant', tenant.tenantId, '--audience', `${api.appId},${api.identifierUris.join(',')}`, '--roles', 'DoAll', '--authority-host', url, '-'], {
    cwd: project, input: readFileSync(join(project, 'token.txt'), 'utf8'), encoding: 'utf8', timeout: 60_000
  })
  assert.equal(explained.status, 0, `entra-explain refused the token:\n${explained.stdout}${explained.stderr}`)
  assert.equal((JSON.parse(explained.stdout) as { verdict: { accepted: boolean } }).verdict.accepted, true)
  assert.ok(!explained.stdout.includes(readFileSync(join(project, 'token.txt'), 'utf8').split('.')[2] ?? '-'), 'entra-explain printed the signature')
})
