import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { Writable } from 'node:stream'
import { after, before, test, type TestContext } from 'node:test'
import fc from 'fast-check'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyEntraAuth from 'fastify-entra-auth'
import { Registry } from 'prom-client'
import { buildApp } from '../../services/api/src/app.ts'
import { readConfig } from '../../services/api/src/config.ts'
import { API_APP_ID_URI, API_CLIENT_ID, OTHER_TENANT, TENANT, TestAuthority, createTestKey, type TestKey } from '../../packages/fastify-entra-auth/test/helpers/authority.ts'
import { ALLOWED_DIFFERENCES, type AllowedDifference } from './allowed-differences.ts'
import { apiDecision, mutationClass, oracleDecision, type ApiAnswer, type Observation } from './compare.ts'
import { KNOWN_FINDINGS } from './known-findings.ts'
import { Oracle, buildOracle, type OracleConfig } from './oracle.ts'
import { THIRD_TENANT, build, createKeyWorld, publishedKeys, specArbitrary, type Focus, type KeyWorld } from './tokens.ts'

/*
 * The api and Microsoft's own validator (oracle/, set up as Microsoft.Identity.Web sets up a web api)
 * judge the same generated tokens; every decision must agree except the differences of
 * allowed-differences.ts (on purpose, each in the auth README's table) and known-findings.ts (found,
 * written up in FINDINGS.md, to fix). Four set-ups, each an api and an oracle configured alike:
 *   one tenant       the api as deployed (services/api buildApp), one AUTH_TENANT_ID
 *   two tenants      the api with two AUTH_TENANT_IDs: another tenant's iss or tid can only be refused
 *                    by the iss<->tid binding, not by the tenant check
 *   any tenant       fastify-entra-auth with tenants '*' (keys per tenant on first use); the oracle on
 *                    the /common authority, as Microsoft.Identity.Web sets up a multi-tenant api
 *   app keys         fastify-entra-auth with signingKeysAppId; the oracle's MetadataAddress with ?appid=
 *
 * MSI_PAIR_DIFFERENTIAL_RUNS    tokens for the one-tenant set-up (default 300; the full run: 10000);
 *                               each other set-up gets a quarter of it (at least 100)
 * MSI_PAIR_DIFFERENTIAL_SEED    fast-check seed (default 20261130)
 * MSI_PAIR_DIFFERENTIAL_REPORT  a path to write the counts and every disagreement to, as JSON
 *
 * Needs the .NET SDK (dotnet): without it the test is skipped with a message, or fails when CI=true.
 */

const RUNS = Number(process.env.MSI_PAIR_DIFFERENTIAL_RUNS ?? 300)
const SEED = Number(process.env.MSI_PAIR_DIFFERENTIAL_SEED ?? 20261130)
const REPORT = process.env.MSI_PAIR_DIFFERENTIAL_REPORT
const FULL_RUN = RUNS >= 10_000
const OTHER_RUNS = Math.max(100, Math.round(RUNS / 4))
/** Tokens minted and judged together: all are built from the clock of their batch's start. */
const BATCH = 200
const REQUEST_ID = 'x-differential-id'

const dotnet = spawnSync('dotnet', ['--version'], { encoding: 'utf8' })
const DOTNET_MISSING = dotnet.error !== undefined || dotnet.status !== 0
  ? `the .NET SDK (dotnet) is not on PATH (${dotnet.error?.message ?? dotnet.stderr}); the differential test needs it to run Microsoft.IdentityModel`
  : undefined
if (DOTNET_MISSING !== undefined && process.env.CI === 'true') {
  throw new Error(`${DOTNET_MISSING}. Under CI=true this is a failure, not a skip: install the .NET 10 SDK.`)
}

let authority: TestAuthority
let dll: string
let world: KeyWorld
let attacker: TestKey
const report: Record<string, unknown> = { runs: RUNS, seed: SEED, setups: {} }
const used = new Map<AllowedDifference, number>()
const found = new Map<AllowedDifference, number>()

before(async () => {
  if (DOTNET_MISSING !== undefined) return
  dll = await buildOracle()
  world = createKeyWorld()
  attacker = createTestKey({ kid: world.current.kid })
  authority = await TestAuthority.start()
  // Entra publishes the same keys for every tenant and in the tenant-independent (/common) documents.
  for (const tenant of [TENANT, OTHER_TENANT, 'common']) authority.tenants.set(tenant, publishedKeys(world))
  authority.anyTenantKeys = publishedKeys(world).v2
  authority.appKeys.set(API_CLIENT_ID, [world.appKey])
})

after(async () => {
  await authority?.stop()
  if (REPORT && DOTNET_MISSING === undefined) {
    report.allowed = Object.fromEntries(ALLOWED_DIFFERENCES.map((d) => [d.id, used.get(d) ?? 0]))
    report.findings = Object.fromEntries(KNOWN_FINDINGS.map((d) => [d.id, found.get(d) ?? 0]))
    writeFileSync(REPORT, JSON.stringify(report, null, 2))
  }
})

/** An api under test, its log read for each request's reason code and for validator exceptions. */
interface ApiUnderTest {
  app: FastifyInstance
  reasons: Map<string, string>
  threw: Array<Record<string, unknown>>
}

function logCapture () {
  const reasons = new Map<string, string>()
  const threw: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) {
        if (!line) continue
        const entry = JSON.parse(line) as { reqId?: string, msg?: string, auth?: { reason?: string } }
        if (entry.msg === 'request not authorized' && entry.reqId !== undefined && entry.auth?.reason !== undefined) reasons.set(entry.reqId, entry.auth.reason)
        if (entry.msg === 'token validation threw') threw.push(entry as Record<string, unknown>)
      }
      done()
    }
  })
  // info: the plugin logs each refusal's reason code there. The request id is ours, so a log line is
  // tied to its request.
  return { reasons, threw, server: { logger: { level: 'info', stream }, requestIdHeader: REQUEST_ID } }
}

/** The api service as deployed, with its own config. */
async function serviceApi (env: Record<string, string>): Promise<ApiUnderTest> {
  const { reasons, threw, server } = logCapture()
  const config = readConfig({
    AUTH_AUDIENCE: `${API_CLIENT_ID},${API_APP_ID_URI}`,
    AUTH_AUTHORITY_HOST: authority.url,
    // Load shedding answers 503 while the event loop is busy, and this process also mints the tokens and
    // reads the oracle: that is the test's load, not the api's decision about a token. Off here (0), as
    // its own tests cover it; any 503 left fails the run.
    OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0',
    OVERLOAD_MAX_EVENT_LOOP_UTILIZATION: '0',
    OVERLOAD_MAX_SIGNATURE_CHECK_DELAY_MS: '0',
    ...env
  })
  const app = await buildApp(config, server)
  await app.ready()
  return { app, reasons, threw }
}

/** fastify-entra-auth in a bare app, for settings the api service does not expose. */
async function pluginApi (options: Partial<Parameters<typeof fastifyEntraAuth>[1]>): Promise<ApiUnderTest> {
  const { reasons, threw, server } = logCapture()
  const app = Fastify(server)
  await app.register(fastifyEntraAuth, { tenants: [TENANT], audiences: [API_CLIENT_ID, API_APP_ID_URI], authorityHost: authority.url, registry: new Registry(), ...options })
  app.get('/claims', { config: { auth: { roles: ['DoAll'] } } }, async () => ({ ok: true }))
  await app.ready()
  return { app: app as unknown as FastifyInstance, reasons, threw }
}

let requests = 0
async function askApi (api: ApiUnderTest, token: string): Promise<ApiAnswer> {
  const id = `d${++requests}`
  const response = await api.app.inject({ method: 'GET', url: '/claims', headers: { authorization: `Bearer ${token}`, [REQUEST_ID]: id } })
  if (response.statusCode === 200) return { status: 200 }
  const body = response.json() as { error?: string, error_description?: string }
  const reason = api.reasons.get(id)
  api.reasons.delete(id)
  return {
    status: response.statusCode,
    ...(reason === undefined ? {} : { reason }),
    ...(body.error_description === undefined ? {} : { description: body.error_description }),
    ...(body.error === undefined ? {} : { error: body.error })
  }
}

const key = (o: Observation) =>
  `${o.testCase.spec.mutations.map(mutationClass).sort().join(' + ') || 'valid'} (v${o.testCase.spec.version}) | api ${o.api.status} ${o.api.reason ?? ''} ${o.api.description ?? ''} | oracle ${o.oracle.status} ${o.oracle.reason ?? ''} ${o.oracle.type ?? ''}`

interface Setup {
  name: string
  runs: number
  seed: number
  /** Mutations this set-up is about, weighted up (specArbitrary). */
  focus?: Focus
  api: () => Promise<ApiUnderTest>
  oracle: Omit<OracleConfig, 'authorityHost' | 'clientId' | 'appIdUri'>
  /** What this set-up exists to show, asserted over its observations. */
  check?: (observations: Observation[], t: TestContext) => void
}

async function differential (t: TestContext, setup: Setup) {
  const api = await setup.api()
  const oracle = await Oracle.start(dll, { authorityHost: authority.url, clientId: API_CLIENT_ID, appIdUri: API_APP_ID_URI, requiredRoles: ['DoAll'], ...setup.oracle })
  try {
    const specs = fc.sample(specArbitrary(setup.focus), { seed: setup.seed, numRuns: setup.runs })
    const started = performance.now()
    let agreements = 0
    const observations: Observation[] = []
    const unexplained = new Map<string, Observation[]>()
    const unavailable: Observation[] = []
    const usedHere = new Map<string, number>()
    const examples = new Map<string, Map<string, { count: number, example: Observation }>>()
    const remember = (id: string, o: Observation) => {
      usedHere.set(id, (usedHere.get(id) ?? 0) + 1)
      const classes = examples.get(id) ?? new Map<string, { count: number, example: Observation }>()
      const k = `api ${o.api.status} ${o.api.reason ?? ''} | oracle ${o.oracle.status} ${o.oracle.reason ?? ''}`
      const entry = classes.get(k) ?? { count: 0, example: o }
      entry.count++
      classes.set(k, entry)
      examples.set(id, classes)
    }
    const tally = { accept: 0, reject: 0, forbid: 0 }

    for (let i = 0; i < specs.length; i += BATCH) {
      const now = Math.floor(Date.now() / 1000)
      const cases = specs.slice(i, i + BATCH).map((spec) => build(spec, world, attacker, now))
      const [oracleAnswers, apiAnswers] = await Promise.all([
        oracle.ask(cases.map((c) => c.token)),
        Promise.all(cases.map((c) => askApi(api, c.token)))
      ])
      cases.forEach((testCase, j) => {
        const o: Observation = { testCase, api: apiAnswers[j] as ApiAnswer, oracle: oracleAnswers[j] as NonNullable<typeof oracleAnswers[number]> }
        observations.push(o)
        const decision = apiDecision(o.api)
        const ms = oracleDecision(o.oracle)
        tally[ms as keyof typeof tally]++
        // A 503 is not a decision about the token (keys unavailable, or load shedding): the set-up is wrong.
        if (decision === 'unavailable') { unavailable.push(o); return }
        if (decision === ms) { agreements++; return }
        const allowed = ALLOWED_DIFFERENCES.find((d) => d.applies(o, decision, ms))
        if (allowed) { used.set(allowed, (used.get(allowed) ?? 0) + 1); remember(allowed.id, o); return }
        const finding = KNOWN_FINDINGS.find((d) => d.applies(o, decision, ms))
        if (finding) { found.set(finding, (found.get(finding) ?? 0) + 1); remember(finding.id, o); return }
        const k = key(o)
        unexplained.set(k, [...(unexplained.get(k) ?? []), o])
      })
    }
    const seconds = (performance.now() - started) / 1000

    const unexplainedCount = [...unexplained.values()].reduce((n, list) => n + list.length, 0)
    const allowedCount = [...usedHere].filter(([id]) => ALLOWED_DIFFERENCES.some((d) => d.id === id)).reduce((n, [, c]) => n + c, 0)
    const findingCount = [...usedHere].filter(([id]) => KNOWN_FINDINGS.some((d) => d.id === id)).reduce((n, [, c]) => n + c, 0)
    t.diagnostic(`${setup.name}: ${setup.runs} tokens (seed ${setup.seed}) in ${seconds.toFixed(1)} s; Microsoft: ${tally.accept} accepted, ${tally.reject} rejected (401), ${tally.forbid} forbidden (403)`)
    t.diagnostic(`${setup.name}: agreements ${agreements}; allowed differences ${allowedCount}; known findings ${findingCount}; unexplained ${unexplainedCount}; api 503 ${unavailable.length}`)
    for (const [id, count] of [...usedHere].sort((a, b) => b[1] - a[1])) t.diagnostic(`${setup.name}: ${id} ${count}`)
    const sorted = [...unexplained.entries()].sort((a, b) => b[1].length - a[1].length)
    for (const [k, list] of sorted.slice(0, 60)) t.diagnostic(`${setup.name}: UNEXPLAINED x${list.length}: ${k}`)
    ;(report.setups as Record<string, unknown>)[setup.name] = {
      runs: setup.runs,
      seed: setup.seed,
      seconds,
      agreements,
      tally,
      unavailable: unavailable.length,
      entries: Object.fromEntries([...examples].map(([id, classes]) => [id, [...classes].map(([k, { count, example }]) => ({ class: k, count, description: example.testCase.description, oracle: example.oracle }))])),
      unexplained: sorted.map(([k, list]) => ({ class: k, count: list.length, example: { description: list[0]?.testCase.description, token: list[0]?.testCase.token, api: list[0]?.api, oracle: list[0]?.oracle } }))
    }

    // Found and written up, fix under way: shown as todo here; the full run fails on them (last test).
    for (const d of KNOWN_FINDINGS) {
      const count = usedHere.get(d.id) ?? 0
      if (count > 0) await t.test(`${setup.name}: finding ${d.id} (FINDINGS.md)`, { todo: `${count} tokens` }, () => { assert.fail(d.reason) })
    }
    assert.equal(unavailable.length, 0, `the api answered 503 to ${unavailable.length} tokens (not a decision about the token): ${JSON.stringify(unavailable[0]?.api)}`)
    assert.equal(api.threw.length, 0, `the api's validator threw on ${api.threw.length} tokens: ${JSON.stringify(api.threw[0])}`)
    assert.equal(unexplainedCount, 0, `${setup.name}: unexplained disagreements:\n${sorted.slice(0, 20).map(([k, list]) => `x${list.length} ${k}\n    e.g. ${list[0]?.testCase.description}`).join('\n')}`)
    setup.check?.(observations, t)
  } finally {
    await oracle.stop()
    await api.app.close()
  }
}

const skip = DOTNET_MISSING === undefined ? false : `${DOTNET_MISSING}. Skipped (CI=true makes this a failure).`

test(`one tenant: the api service decides as Microsoft.IdentityModel does on ${RUNS} generated tokens`, { skip }, async (t) => {
  await differential(t, {
    name: 'one tenant',
    runs: RUNS,
    seed: SEED,
    api: () => serviceApi({ AUTH_TENANT_ID: TENANT }),
    oracle: { tenantId: TENANT }
  })
})

/** The token's one change is a tenant switch of this kind. */
const onlySwitch = (o: Observation, tenant: 'other' | 'third', parts: string[]) => o.testCase.spec.mutations.length === 1 &&
  o.testCase.spec.mutations.some((m) => m.kind === 'tenant' && m.tenant === tenant && parts.includes(m.part))

test(`two tenants: another configured tenant's iss or tid is refused by the iss<->tid binding (${OTHER_RUNS} tokens)`, { skip }, async (t) => {
  await differential(t, {
    name: 'two tenants',
    runs: OTHER_RUNS,
    seed: SEED + 1,
    focus: { tenant: 8 },
    api: () => serviceApi({ AUTH_TENANT_ID: `${TENANT},${OTHER_TENANT}` }),
    // Microsoft.Identity.Web for more than one tenant: the tenant-independent authority, every tenant's
    // issuer through the {tenantid} template.
    oracle: { tenantId: 'common' },
    check: (observations, t) => {
      const cases = observations.filter((o) => onlySwitch(o, 'other', ['iss', 'tid']))
      t.diagnostic(`two tenants: ${cases.length} tokens with only iss or only tid of the other configured tenant, all refused by the binding`)
      assert.ok(cases.length > 0, 'no token had only its iss or only its tid switched to the other configured tenant')
      for (const o of cases) {
        assert.equal(o.api.reason, 'wrong_issuer', `${o.testCase.description}: refused by ${o.api.reason}, not the iss<->tid binding`)
        assert.equal(o.oracle.status, 401, `${o.testCase.description}: Microsoft ${o.oracle.status}`)
      }
      const switched = observations.filter((o) => onlySwitch(o, 'other', ['both']))
      assert.ok(switched.length > 0 && switched.every((o) => o.api.status === 200), 'a valid token of the other configured tenant is accepted')
    }
  })
})

test(`any tenant: fastify-entra-auth with tenants '*' decides as Microsoft.IdentityModel on /common does (${OTHER_RUNS} tokens)`, { skip }, async (t) => {
  await differential(t, {
    name: 'any tenant',
    runs: OTHER_RUNS,
    seed: SEED + 2,
    focus: { tenant: 4 },
    api: () => pluginApi({ tenants: '*' }),
    oracle: { tenantId: 'common' },
    check: (observations, t) => {
      const third = observations.filter((o) => onlySwitch(o, 'third', ['both']))
      t.diagnostic(`any tenant: ${third.length} valid tokens of a never-configured tenant, all accepted`)
      assert.ok(third.length > 0 && third.every((o) => o.api.status === 200), `a valid token of a tenant never configured (${THIRD_TENANT}) is accepted`)
    }
  })
})

test(`app-specific keys: fastify-entra-auth with signingKeysAppId decides as Microsoft.IdentityModel with ?appid= does (${OTHER_RUNS} tokens)`, { skip }, async (t) => {
  await differential(t, {
    name: 'app keys',
    runs: OTHER_RUNS,
    seed: SEED + 3,
    focus: { signer: 8 },
    api: () => pluginApi({ signingKeysAppId: API_CLIENT_ID }),
    oracle: { tenantId: TENANT, signingKeysAppId: API_CLIENT_ID },
    check: (observations, t) => {
      const appKey = observations.filter((o) => o.testCase.spec.mutations.length === 1 && o.testCase.spec.mutations[0]?.kind === 'signer' && o.testCase.spec.mutations[0].key === 'appKey')
      t.diagnostic(`app keys: ${appKey.length} valid tokens signed with the app's own key, all accepted by both`)
      assert.ok(appKey.length > 0 && appKey.every((o) => o.api.status === 200 && o.oracle.status === 200), 'a token signed with the app\'s own key is accepted by both')
    }
  })
})

test('every table entry was needed by some token of a full run', { skip: skip || (FULL_RUN ? false : 'only on a full run (MSI_PAIR_DIFFERENTIAL_RUNS >= 10000)') }, () => {
  const unused = [...ALLOWED_DIFFERENCES, ...KNOWN_FINDINGS].filter((d) => !used.has(d) && !found.has(d)).map((d) => d.id)
  assert.deepEqual(unused, [], 'table entries that no token of a full run needed')
  for (const d of KNOWN_FINDINGS) assert.fail(`known finding ${d.id} is still open (${found.get(d) ?? 0} tokens): ${d.reason}`)
})
