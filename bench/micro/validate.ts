// npx node bench/micro/validate.ts [--ms 400] [--rounds 5]
// The api's validate() without HTTP, next to jose's jwtVerify, on the same Entra-shaped tokens from the
// bench's mint: distinct valid tokens (no cache can answer) and distinct forged ones. Interleaved rounds;
// CPU per call from process.cpuUsage (the worker's and jose's thread-pool work included).
import { parseArgs } from 'node:util'
import { createLocalJWKSet, jwtVerify } from 'jose'
import { KeyStore } from '../../packages/fastify-entra-auth/src/key-store.ts'
import { SignatureWorker } from '../../packages/fastify-entra-auth/src/signature-worker.ts'
import { createTokenValidator, expandAudiences } from '../../packages/fastify-entra-auth/src/token-validation.ts'
import { audiences, issuerV2, startIssuerServer, tenant, TokenMint } from '../lib/issuer.ts'

const { values: args } = parseArgs({ options: { ms: { type: 'string', default: '400' }, rounds: { type: 'string', default: '5' } } })
const mint = new TokenMint()
const valid = mint.tokens('valid', 3000)
const forged = mint.tokens('badSignature', 3000)
const issuer = await startIssuerServer({ keys: [mint.key.jwk] })
const quiet = { info () {}, warn () {}, error () {} }
const store = new KeyStore({
  authorityHost: issuer.url,
  tenants: [tenant.tenantId],
  versions: ['2.0'],
  log: quiet,
  verifier: { audiences: expandAudiences(audiences), clockToleranceMs: 300_000 },
  refreshIntervalMs: 3_600_000,
  cooldownMs: 300_000,
  timeoutMs: 5000,
  retryMaxMs: 60_000
})
await store.start()
const base = { tenants: [tenant.tenantId], versions: ['2.0' as const], audiences, maxTokenBytes: 8192, keys: store }
const validate = createTokenValidator(base)
const signatureWorker = new SignatureWorker({ onError: (error) => { throw error } })
const validateOnWorker = createTokenValidator({ ...base, signatureChecks: 'worker', signatureWorker })
const jwks = createLocalJWKSet({ keys: [{ ...mint.key.jwk, alg: 'RS256' }] })
const joseOptions = { algorithms: ['RS256'], audience: audiences, issuer: issuerV2, clockTolerance: 300 }
const jose = async (token: string) => { try { return await jwtVerify(token, jwks, joseOptions) } catch (error) { return error } }

const ways: Record<string, (i: number) => Promise<unknown>> = {
  'api validate(), distinct valid tokens': (i) => validate(valid[i % valid.length] as string),
  'api validate(), distinct forged tokens': (i) => validate(forged[i % forged.length] as string),
  'api validate() on the worker, distinct valid tokens': (i) => validateOnWorker(valid[i % valid.length] as string),
  'api validate() on the worker, distinct forged tokens': (i) => validateOnWorker(forged[i % forged.length] as string),
  'jose jwtVerify (local JWKS), distinct valid tokens': (i) => jose(valid[i % valid.length] as string),
  'jose jwtVerify (local JWKS), distinct forged tokens': (i) => jose(forged[i % forged.length] as string)
}
for (const [name, fn] of Object.entries(ways)) {
  const first = await fn(0) as { ok?: boolean, payload?: unknown, reason?: string }
  const forgedWay = name.includes('forged')
  if (forgedWay ? (first.ok === true || first.payload !== undefined) : (first.ok === false || first instanceof Error)) throw new Error(`${name}: ${JSON.stringify(first)}`)
}
const results = new Map<string, number[]>()
const concurrency = 32
for (let round = 0; round < Number(args.rounds); round++) {
  for (const [name, fn] of Object.entries(ways)) {
    let i = 0
    const until = performance.now() + Number(args.ms)
    const cpu = process.cpuUsage()
    await Promise.all(Array.from({ length: concurrency }, async () => { while (performance.now() < until) await fn(i++) }))
    const used = process.cpuUsage(cpu)
    if (round > 0) results.set(name, [...(results.get(name) ?? []), (used.user + used.system) / i])
  }
}
store.stop()
await signatureWorker.close()
await issuer.close()
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0
process.stdout.write(`| way | CPU µs per call (median of ${Number(args.rounds) - 1} rounds, ${concurrency} in flight) |\n|---|--:|\n`)
for (const [name, values] of results) process.stdout.write(`| ${name} | ${median(values).toFixed(1)} |\n`)
