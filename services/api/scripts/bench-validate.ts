/*
 * Cost of the api's token validation per request, without HTTP: validate(token) with the real KeyStore
 * (keys from a loopback authority), for the same token again (fast-jwt cache hit, the managed-identity
 * case) and with the cache off (a full RS256 verification), next to jose's jwtVerify on the same token.
 * Run: node services/api/scripts/bench-validate.ts   (DURATION_MS=2000 RUNS=3 by default)
 */
import { createLocalJWKSet, jwtVerify } from 'jose'
import { KeyStore, createTokenValidator, expandAudiences } from 'fastify-entra-auth'
import { API_CLIENT_ID, TENANT, TestAuthority, createTestKey, mint, publicJwk, v2Issuer } from '../../../packages/fastify-entra-auth/test/helpers/authority.ts'

const DURATION_MS = Number(process.env.DURATION_MS ?? 2000)
const RUNS = Number(process.env.RUNS ?? 3)
const key = createTestKey()
const authority = await TestAuthority.start({ [TENANT]: [key] })
const quiet = { info () {}, warn () {}, error () {} }

async function validatorWith (cacheSize: number) {
  const store = new KeyStore({
    authorityHost: authority.url,
    tenants: [TENANT],
    versions: ['2.0'],
    log: quiet,
    verifier: { audiences: expandAudiences([API_CLIENT_ID]), clockToleranceMs: 300_000, cacheSize, cacheTtlMs: 600_000 },
    refreshIntervalMs: 3_600_000,
    cooldownMs: 300_000,
    timeoutMs: 5000,
    retryMaxMs: 60_000
  })
  await store.start()
  return { store, validate: createTokenValidator({ tenants: [TENANT], versions: ['2.0'], audiences: [API_CLIENT_ID], maxTokenBytes: 8192, keys: store }) }
}

const token = mint(key)
const cached = await validatorWith(1000)
const uncached = await validatorWith(0)
const jwks = createLocalJWKSet({ keys: [{ ...publicJwk(key), alg: 'RS256' }] })
const joseOptions = { algorithms: ['RS256'], audience: API_CLIENT_ID, issuer: v2Issuer(TENANT), requiredClaims: ['exp', 'tid'], clockTolerance: 300 }

const variants: Record<string, () => Promise<unknown>> = {
  'api validate(), same token (verified-token cache hit)': () => cached.validate(token),
  'api validate(), cache off (RS256 verification every time)': () => uncached.validate(token),
  'jose jwtVerify + createLocalJWKSet (no Entra checks)': () => jwtVerify(token, jwks, joseOptions)
}
for (const [name, run] of Object.entries(variants)) {
  const result = await run() as { ok?: boolean }
  if (result.ok === false) throw new Error(`${name}: ${JSON.stringify(result)}`)
}

async function measure (run: () => Promise<unknown>, ms: number) {
  let n = 0
  const end = performance.now() + ms
  const cpu = process.cpuUsage()
  while (performance.now() < end) for (let i = 0; i < 100; i++) { await run(); n++ }
  const used = process.cpuUsage(cpu)
  return { opsPerSecond: n / (ms / 1000), cpuMicrosPerOp: (used.user + used.system) / n }
}

for (const [name, run] of Object.entries(variants)) {
  await measure(run, 300)
  const runs = []
  for (let r = 0; r < RUNS; r++) runs.push(await measure(run, DURATION_MS))
  runs.sort((x, y) => x.opsPerSecond - y.opsPerSecond)
  const median = runs[Math.floor(runs.length / 2)] as { opsPerSecond: number, cpuMicrosPerOp: number }
  console.log(JSON.stringify({ variant: name, runs: runs.map((r) => Math.round(r.opsPerSecond)), medianOpsPerSecond: Math.round(median.opsPerSecond), cpuMicrosPerOp: +median.cpuMicrosPerOp.toFixed(2) }))
}
console.log(JSON.stringify({ node: process.version, tokenBytes: token.length, jwksFetches: authority.jwksRequests() }))
cached.store.stop()
uncached.store.stop()
await authority.stop()
