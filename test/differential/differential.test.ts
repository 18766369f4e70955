import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { Writable } from 'node:stream'
import { after, before, test } from 'node:test'
import fc from 'fast-check'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../services/api/src/app.ts'
import { readConfig } from '../../services/api/src/config.ts'
import { API_APP_ID_URI, API_CLIENT_ID, OTHER_TENANT, TENANT, TestAuthority, createTestKey, type TestKey } from '../../packages/fastify-entra-auth/test/helpers/authority.ts'
import { ALLOWED_DIFFERENCES, type AllowedDifference } from './allowed-differences.ts'
import { apiDecision, mutationClass, oracleDecision, type ApiAnswer, type Observation } from './compare.ts'
import { KNOWN_FINDINGS } from './known-findings.ts'
import { Oracle, buildOracle } from './oracle.ts'
import { build, createKeyWorld, publishedKeys, specArbitrary, type KeyWorld } from './tokens.ts'

/*
 * The api and Microsoft's own validator (oracle/, set up as Microsoft.Identity.Web sets up a web api)
 * judge the same generated tokens; every decision must agree except the differences of
 * allowed-differences.ts (on purpose) and known-findings.ts (found, written up in FINDINGS.md, to fix).
 *
 * MSI_PAIR_DIFFERENTIAL_RUNS  tokens to generate (default 300; CI's full run: 10000)
 * MSI_PAIR_DIFFERENTIAL_SEED  fast-check seed (default 20261130)
 * MSI_PAIR_DIFFERENTIAL_REPORT  a path to write every disagreement to, as JSON
 */

const RUNS = Number(process.env.MSI_PAIR_DIFFERENTIAL_RUNS ?? 300)
const SEED = Number(process.env.MSI_PAIR_DIFFERENTIAL_SEED ?? 20261130)
const REPORT = process.env.MSI_PAIR_DIFFERENTIAL_REPORT
const FULL_RUN = RUNS >= 10_000
/** Tokens minted and judged together: all are built from the clock of their batch's start. */
const BATCH = 200

let authority: TestAuthority
let app: FastifyInstance
let oracle: Oracle
let world: KeyWorld
let attacker: TestKey
const apiErrors: Array<Record<string, unknown>> = []

before(async () => {
  const dll = await buildOracle()
  world = createKeyWorld()
  attacker = createTestKey({ kid: world.current.kid })
  authority = await TestAuthority.start({ [OTHER_TENANT]: [world.current] })
  authority.tenants.set(TENANT, publishedKeys(world))
  const config = readConfig({
    AUTH_TENANT_ID: TENANT,
    AUTH_AUDIENCE: `${API_CLIENT_ID},${API_APP_ID_URI}`,
    AUTH_AUTHORITY_HOST: authority.url,
    LOG_LEVEL: 'warn'
  })
  const stream = new Writable({
    write (chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line) apiErrors.push(JSON.parse(line) as Record<string, unknown>)
      done()
    }
  })
  app = await buildApp(config, { logger: { level: 'warn', stream } })
  await app.ready()
  oracle = await Oracle.start(dll, { authorityHost: authority.url, tenantId: TENANT, clientId: API_CLIENT_ID, appIdUri: API_APP_ID_URI, requiredRoles: config.AUTH_REQUIRED_ROLES })
})

after(async () => {
  await oracle?.stop()
  await app?.close()
  await authority?.stop()
})

async function askApi (token: string): Promise<ApiAnswer> {
  const response = await app.inject({ method: 'GET', url: '/claims', headers: { authorization: `Bearer ${token}` } })
  const body = response.statusCode === 200 ? undefined : (response.json() as { error_description?: string }).error_description
  return { status: response.statusCode, ...(body === undefined ? {} : { description: body }) }
}

const key = (o: Observation) =>
  `${o.testCase.spec.mutations.map(mutationClass).sort().join(' + ') || 'valid'} (v${o.testCase.spec.version}) | api ${o.api.status} ${o.api.description ?? ''} | oracle ${o.oracle.status} ${o.oracle.reason ?? ''} ${o.oracle.type ?? ''}`

test(`the api decides as Microsoft.IdentityModel does on ${RUNS} generated tokens (seed ${SEED})`, async (t) => {
  const specs = fc.sample(specArbitrary(), { seed: SEED, numRuns: RUNS })
  const started = performance.now()
  let agreements = 0
  const used = new Map<AllowedDifference, number>()
  const found = new Map<AllowedDifference, number>()
  const unexplained = new Map<string, Observation[]>()
  /** The api's and Microsoft's answers per table entry, by class, with one example each (for the report). */
  const examples = new Map<string, Map<string, { count: number, example: Observation }>>()
  const remember = (id: string, o: Observation) => {
    const classes = examples.get(id) ?? new Map<string, { count: number, example: Observation }>()
    const k = `api ${o.api.status} ${o.api.description ?? ''} | oracle ${o.oracle.status} ${o.oracle.reason ?? ''}`
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
      Promise.all(cases.map((c) => askApi(c.token)))
    ])
    cases.forEach((testCase, j) => {
      const o: Observation = { testCase, api: apiAnswers[j] as ApiAnswer, oracle: oracleAnswers[j] as NonNullable<typeof oracleAnswers[number]> }
      const api = apiDecision(o.api)
      const ms = oracleDecision(o.oracle)
      tally[ms === 'accept' ? 'accept' : ms === 'forbid' ? 'forbid' : 'reject']++
      if (api === ms) { agreements++; return }
      const allowed = ALLOWED_DIFFERENCES.find((d) => d.applies(o, api, ms))
      if (allowed) { used.set(allowed, (used.get(allowed) ?? 0) + 1); remember(allowed.id, o); return }
      const finding = KNOWN_FINDINGS.find((d) => d.applies(o, api, ms))
      if (finding) { found.set(finding, (found.get(finding) ?? 0) + 1); remember(finding.id, o); return }
      const k = key(o)
      unexplained.set(k, [...(unexplained.get(k) ?? []), o])
    })
  }
  const seconds = (performance.now() - started) / 1000

  const unexplainedCount = [...unexplained.values()].reduce((n, list) => n + list.length, 0)
  t.diagnostic(`${RUNS} tokens in ${seconds.toFixed(1)} s; Microsoft: ${tally.accept} accepted, ${tally.reject} rejected (401), ${tally.forbid} forbidden (403)`)
  t.diagnostic(`agreements ${agreements}; allowed differences ${[...used.values()].reduce((a, b) => a + b, 0)}; known findings ${[...found.values()].reduce((a, b) => a + b, 0)}; unexplained ${unexplainedCount}`)
  for (const d of ALLOWED_DIFFERENCES) t.diagnostic(`allowed ${d.id}: ${used.get(d) ?? 0}`)
  for (const d of KNOWN_FINDINGS) t.diagnostic(`finding ${d.id}: ${found.get(d) ?? 0}`)
  const sorted = [...unexplained.entries()].sort((a, b) => b[1].length - a[1].length)
  for (const [k, list] of sorted.slice(0, 60)) t.diagnostic(`UNEXPLAINED x${list.length}: ${k}`)
  if (REPORT) {
    writeFileSync(REPORT, JSON.stringify({
      runs: RUNS,
      seed: SEED,
      seconds,
      agreements,
      tally,
      allowed: Object.fromEntries(ALLOWED_DIFFERENCES.map((d) => [d.id, used.get(d) ?? 0])),
      findings: Object.fromEntries(KNOWN_FINDINGS.map((d) => [d.id, found.get(d) ?? 0])),
      entries: Object.fromEntries([...examples].map(([id, classes]) => [id, [...classes].map(([k, { count, example }]) => ({ class: k, count, description: example.testCase.description, oracle: example.oracle }))])),
      unexplained: sorted.map(([k, list]) => ({ class: k, count: list.length, example: { description: list[0]?.testCase.description, token: list[0]?.testCase.token, api: list[0]?.api, oracle: list[0]?.oracle } }))
    }, null, 2))
  }

  // Found and written up, not fixed yet: shown as todo (counted apart, never failing the run).
  for (const d of KNOWN_FINDINGS) {
    const count = found.get(d) ?? 0
    if (count > 0) await t.test(`finding ${d.id} (FINDINGS.md)`, { todo: `${count} tokens` }, () => { assert.fail(d.reason) })
  }

  const threw = apiErrors.filter((line) => line.msg === 'token validation threw')
  assert.equal(threw.length, 0, `the api's validator threw on ${threw.length} tokens: ${JSON.stringify(threw[0])}`)
  assert.equal(unexplainedCount, 0, `unexplained disagreements:\n${sorted.slice(0, 20).map(([k, list]) => `x${list.length} ${k}\n    e.g. ${list[0]?.testCase.description}`).join('\n')}`)
  if (FULL_RUN) {
    const unused = [...ALLOWED_DIFFERENCES, ...KNOWN_FINDINGS].filter((d) => !used.has(d) && !found.has(d)).map((d) => d.id)
    assert.deepEqual(unused, [], 'table entries that no token of a full run needed')
  }
})
