// npx node bench/profile.ts --row unique|bad-signature|one [--seconds 8] [--out DIR] [--top 15] [--event-loop] [--env NAME=VALUE ...]
// One row of `npm run bench` against the api started with `node --cpu-prof`, then the profile's top
// entries by self time. The .cpuprofile is kept (open it in Chrome DevTools or speedscope for the
// flame graph); the table is what the closing note quotes.
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { startIssuerServer, TokenMint, writeTokens, type TokenKind } from './lib/issuer.ts'
import { LoadGenerator } from './lib/load.ts'
import { summarize, formatSummary } from './lib/profile-summary.ts'
import { sampleProcess } from './lib/processes.ts'
import { startApi } from './lib/services.ts'

const rows: Record<string, { kind: TokenKind, count: number, expect: number }> = {
  one: { kind: 'valid', count: 1, expect: 200 },
  unique: { kind: 'valid', count: 5000, expect: 200 },
  // More forged tokens than any cache holds: a flood measures verifications, not a cache of rejections.
  'bad-signature': { kind: 'badSignature', count: 5000, expect: 401 }
}

const { values: args } = parseArgs({
  options: { env: { type: 'string', multiple: true, default: [] }, 'event-loop': { type: 'boolean', default: false }, row: { type: 'string', default: 'unique' }, seconds: { type: 'string', default: '8' }, out: { type: 'string' }, top: { type: 'string', default: '15' } }
})
const spec = rows[args.row ?? '']
if (!spec) throw new Error(`--row must be one of ${Object.keys(rows).join(', ')}`)
const outDir = args.out ?? mkdtempSync(join(tmpdir(), 'msi-pair-profile-'))
mkdirSync(outDir, { recursive: true })
const work = mkdtempSync(join(tmpdir(), 'msi-pair-profile-tokens-'))

const mint = new TokenMint()
const tokensFile = writeTokens(join(work, 'tokens.json'), mint.tokens(spec.kind, spec.count))
const issuer = await startIssuerServer({ keys: [mint.key.jwk] })
// Shedding off: this measures what a request costs, not what the api refuses on a busy machine.
const api = await startApi(issuer.url, {
  NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${outDir}`,
  OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0',
  OVERLOAD_MAX_EVENT_LOOP_UTILIZATION: '0',
  OVERLOAD_MAX_SIGNATURE_CHECK_DELAY_MS: '0',
  ...(args['event-loop'] ? { AUTH_SIGNATURE_CHECKS: 'event-loop' } : {}),
  // Any other api setting to compare, e.g. --env AUTH_TOKEN_CACHE_SIZE=0.
  ...Object.fromEntries((args.env ?? []).map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]))
})
const load = new LoadGenerator()
try {
  // A short warm-up so that the profile shows the optimized steady state, not the JIT's first pass.
  await load.run({ url: api.url, path: '/claims', connections: 50, durationSeconds: 1, tokensFile })
  const before = sampleProcess(api.pid)
  const result = await load.run({ url: api.url, path: '/claims', connections: 50, durationSeconds: Number(args.seconds), tokensFile, tokenOffset: 7 })
  const cpuMs = sampleProcess(api.pid).cpuMs - before.cpuMs
  const unexpected = result.requests - (result.statusCounts[String(spec.expect)] ?? 0)
  process.stdout.write(`row ${args.row}: ${Math.round(result.rps)} req/s, ${(cpuMs * 1000 / result.requests).toFixed(0)} µs CPU/req, ${result.requests} requests, ${unexpected} unexpected (${JSON.stringify(result.statusCounts)})\n`)
} finally {
  await load.stop()
  await api.stop()
  await issuer.close()
  rmSync(work, { recursive: true, force: true })
}
// One profile per thread (node --cpu-prof): the main thread's, and the signature worker's when there is one.
const files = readdirSync(outDir).filter((name) => name.endsWith('.cpuprofile')).sort()
if (files.length === 0) throw new Error(`no .cpuprofile in ${outDir}: did the api exit cleanly?`)
for (const file of files) {
  process.stdout.write(`${join(outDir, file)}\n`)
  process.stdout.write(formatSummary(summarize(join(outDir, file)), Number(args.top)))
}
