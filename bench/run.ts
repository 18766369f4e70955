// npm run bench [-- --quick] [-- --out DIR]
// Every row in one invocation, each target in its own process, autocannon in another, the same
// connections, warm-up and duration for every row. Read bench/README.md for what each row means.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { startIssuerServer, TokenMint, targetEnv, writeTokens } from './lib/issuer.ts'
import { LoadGenerator } from './lib/load.ts'
import { readMetrics, startTarget, sumMetric } from './lib/processes.ts'
import { markdown, type BenchResults, type Burst, type Target } from './lib/report.ts'
import { compare, machine, measure, settingsFor, type Row } from './lib/rows.ts'
import { apiCooldown, startApi, startCaller, startMockImds, tokenRequests } from './lib/services.ts'

const { values: args } = parseArgs({ options: { quick: { type: 'boolean', default: false }, out: { type: 'string' } } })
const settings = settingsFor(args.quick ?? false)
const outDir = args.out ?? (settings.quick ? join(tmpdir(), 'msi-pair-bench') : fileURLToPath(new URL('./results/', import.meta.url)))
const t0 = Date.now()
const log = (message: string) => { process.stderr.write(`[bench +${((Date.now() - t0) / 1000).toFixed(1)} s] ${message}\n`) }

// Everything started is stopped on the way out, whatever happens.
const stops: Array<() => Promise<void>> = []
const track = <T extends { stop: () => Promise<void> }>(thing: T): T => { stops.push(() => thing.stop()); return thing }
async function stopAll () { await Promise.allSettled(stops.splice(0).reverse().map((stop) => stop())) }
process.once('SIGINT', () => { stopAll().finally(() => process.exit(130)) })

const loadBefore = machine().loadavg
const work = mkdtempSync(join(tmpdir(), 'msi-pair-bench-'))
const rows: Row[] = []
const row = (id: string) => rows.find((r) => r.id === id)
let burst: Burst | null = null

async function get (url: string, token?: string): Promise<number> {
  const response = await fetch(url, token ? { headers: { authorization: `Bearer ${token}` } } : {})
  await response.arrayBuffer()
  return response.status
}

try {
  log(`minting tokens (${settings.uniqueTokens} valid, ${settings.invalidTokens} of each invalid kind)`)
  const mint = new TokenMint()
  const oneToken = mint.token('valid')
  const files = {
    one: writeTokens(join(work, 'one.json'), [oneToken]),
    unique: writeTokens(join(work, 'unique.json'), mint.tokens('valid', settings.uniqueTokens)),
    badSignature: writeTokens(join(work, 'bad-signature.json'), mint.tokens('badSignature', settings.invalidTokens)),
    expired: writeTokens(join(work, 'expired.json'), mint.tokens('expired', settings.invalidTokens)),
    randomKid: writeTokens(join(work, 'random-kid.json'), mint.tokens('randomKid', settings.floodTokens))
  }
  const issuer = await startIssuerServer({ keys: [mint.key.jwk] })
  stops.push(() => issuer.close())
  const cooldown = await apiCooldown()
  const load = track(new LoadGenerator())
  const common = { settings }

  log('row 1: bare Fastify')
  {
    const bare = track(await startTarget('bare-api.ts', {}))
    // The same Authorization header as rows 2-3, which the bare app ignores: only the auth work differs.
    rows.push(await measure(load, { ...common, id: '1', name: 'limit: bare Fastify, one JSON route', url: bare.url, path: '/claims', expectStatus: 200, processes: [bare], tokensFile: files.one }))
    await bare.stop()
  }

  log('rows 2-4: the api')
  {
    const api = track(await startApi(issuer.url))
    if (await get(`${api.url}/claims`, oneToken) !== 200) throw new Error('the api rejected a valid bench token: check its configuration')
    const processes = [{ name: 'api', pid: api.pid }]
    const target = { ...common, url: api.url, path: '/claims', processes }
    rows.push(await measure(load, { ...target, id: '2', name: 'api /claims, one token reused', expectStatus: 200, tokensFile: files.one }))
    const cacheBefore = await readMetrics(api.url)
    rows.push(await measure(load, { ...target, id: '3', name: `api /claims, a different token every request (${settings.uniqueTokens} cycled)`, expectStatus: 200, tokensFile: files.unique }))
    const cacheAfter = await readMetrics(api.url)
    const hits = (sumMetric(cacheAfter, 'auth_verified_token_cache_total', { result: 'hit' }) ?? 0) - (sumMetric(cacheBefore, 'auth_verified_token_cache_total', { result: 'hit' }) ?? 0)
    if (sumMetric(cacheAfter, 'auth_verified_token_cache_total') !== null) row('3')?.notes.push(`verified-token cache hits during the row: ${hits}`)
    rows.push(await measure(load, { ...target, id: '4a', name: 'api, bad signature', expectStatus: 401, tokensFile: files.badSignature }))
    rows.push(await measure(load, { ...target, id: '4b', name: 'api, expired', expectStatus: 401, tokensFile: files.expired }))
    const fetchesBefore = issuer.counts.jwks
    const discoveryBefore = issuer.counts.discovery
    const started = Date.now()
    const flood = await measure(load, { ...target, id: '4c', name: 'api, random-kid flood', expectStatus: 401, tokensFile: files.randomKid })
    flood.jwksFetches = issuer.counts.jwks - fetchesBefore
    flood.discoveryFetches = issuer.counts.discovery - discoveryBefore
    flood.allowedJwksFetches = Math.floor((Date.now() - started) / Math.max(cooldown.ms, 1)) + 1
    flood.notes.push(`cooldown: ${cooldown.note}`)
    rows.push(flood)
    for (const id of ['2', '3', '4a', '4b', '4c']) compare(row(id) as Row, row('1'))
    await api.stop()
  }

  const peers = [
    ['peer-express-jwt.ts', 'express + express-jwt + jwks-rsa'],
    ['peer-fastify-jwt.ts', 'Fastify + @fastify/jwt + get-jwks'],
    ['peer-jose.ts', 'Fastify + jose']
  ] as const
  for (const [index, [file, name]] of peers.entries()) {
    log(`row 5: ${name}`)
    const peer = track(await startTarget(file, targetEnv(issuer.url)))
    if (await get(`${peer.url}/claims`, oneToken) !== 200) throw new Error(`${name} rejected a valid bench token: ${peer.logs.join('\n')}`)
    const target = { ...common, url: peer.url, path: '/claims', processes: [peer] }
    const id = `5${'abc'[index] as string}`
    const same = await measure(load, { ...target, id: `${id}1`, name: `${name}, one token reused`, expectStatus: 200, tokensFile: files.one })
    compare(same, row('2'))
    const unique = await measure(load, { ...target, id: `${id}2`, name: `${name}, a different token every request`, expectStatus: 200, tokensFile: files.unique })
    compare(unique, row('3'))
    rows.push(same, unique)
    if (!settings.quick) {
      const fetchesBefore = issuer.counts.jwks
      const flood = await measure(load, { ...target, id: `${id}3`, name: `${name}, random-kid flood`, expectStatus: 401, tokensFile: files.randomKid })
      flood.jwksFetches = issuer.counts.jwks - fetchesBefore
      compare(flood, row('4c'))
      rows.push(flood)
    }
    await peer.stop()
  }

  log('row 6: the caller')
  {
    const mock = track(await startMockImds())
    const api = track(await startApi(mock.url))
    const caller = track(await startCaller(mock.url, api.url))
    if (await get(`${caller.url}/call`) !== 200) throw new Error(`the caller's /call failed before the row: ${caller.logs.join('\n')}`)
    const e2e = await measure(load, {
      ...common,
      id: '6a',
      name: 'caller /call end to end (token cached, api validating)',
      url: caller.url,
      path: '/call',
      expectStatus: 200,
      processes: [{ name: 'caller', pid: caller.pid }, { name: 'api', pid: api.pid }],
      notes: ['CPU: caller + api']
    })
    await caller.stop()

    const bareApi = track(await startTarget('bare-api.ts', {}))
    const bareCaller = track(await startTarget('bare-caller.ts', { BARE_API_URL: bareApi.url }))
    const bare = await measure(load, {
      ...common,
      id: '6b',
      name: 'bare caller to bare api, no auth',
      url: bareCaller.url,
      path: '/call',
      expectStatus: 200,
      processes: [bareCaller, bareApi],
      notes: ['CPU: both processes']
    })
    await Promise.all([bareCaller.stop(), bareApi.stop()])
    compare(e2e, bare)
    rows.push(e2e, bare)

    log(`row 6: cold burst of ${settings.burst}`)
    const before = await tokenRequests(mock)
    const cold = track(await startCaller(mock.url, api.url))
    const result = await load.burst(`${cold.url}/call`, settings.burst)
    // Let a straggling token request land before counting.
    await new Promise((resolve) => setTimeout(resolve, 200))
    const after = await tokenRequests(mock)
    burst = { concurrency: settings.burst, ...result, tokenRequests: after.count - before.count, countedBy: after.source }
    await cold.stop()
  }

  const targets: Target[] = []
  const limit = row('1')
  const reused = row('2')
  if (limit && reused) {
    targets.push({
      goal: 'row 2 at 90% of row 1 or better, p99 no worse than 1.2x',
      measured: `${((reused.rpsRatio ?? 0) * 100).toFixed(0)}% of row 1, p99 ${(reused.p99Ratio ?? 0).toFixed(2)}x`,
      met: (reused.rpsRatio ?? 0) >= 0.9 && (reused.p99Ratio ?? Infinity) <= 1.2
    })
  }
  const unique = row('3')
  const bestPeer = rows.filter((r) => /^5.2$/.test(r.id)).sort((a, b) => b.rps - a.rps)[0]
  if (unique && bestPeer) {
    targets.push({
      goal: 'row 3 at least 2x the best peer on unique tokens',
      measured: `${(unique.rps / bestPeer.rps).toFixed(2)}x ${bestPeer.name.split(',')[0] ?? ''}`,
      met: unique.rps >= 2 * bestPeer.rps
    })
  }
  const flood = row('4c')
  if (flood) {
    targets.push({
      goal: 'the random-kid flood causes at most one JWKS fetch per cooldown',
      measured: `${flood.jwksFetches ?? '?'} fetches, ${flood.allowedJwksFetches ?? '?'} allowed (${cooldown.note})`,
      met: (flood.jwksFetches ?? Infinity) <= (flood.allowedJwksFetches ?? 0)
    })
  }
  if (burst) {
    targets.push({ goal: 'the cold burst causes exactly 1 token request', measured: `${burst.tokenRequests}`, met: burst.tokenRequests === 1 })
  }

  const loadAfter = machine().loadavg
  const results: BenchResults = {
    meta: {
      date: new Date().toISOString(),
      ...machine(),
      loadavgBefore: loadBefore,
      loadavgAfter: loadAfter,
      note: loadBefore[0] as number > 0.5
        ? 'The machine was busy with other work during the run (see the load average): compare ratios within this run, not absolute figures across runs.'
        : 'Ratios within this run are the result; absolute figures move from run to run and machine to machine.',
      settings,
      cooldown: cooldown.note
    },
    rows,
    burst,
    targets
  }
  mkdirSync(outDir, { recursive: true })
  writeFileSync(join(outDir, 'latest.json'), JSON.stringify(results, null, 2) + '\n')
  const table = markdown(results)
  writeFileSync(join(outDir, 'latest.md'), table)
  process.stdout.write(table)
  log(`wrote ${join(outDir, 'latest.json')} and latest.md`)
} catch (error) {
  process.exitCode = 1
  log(`failed: ${(error as Error).stack ?? String(error)}`)
} finally {
  await stopAll()
  rmSync(work, { recursive: true, force: true })
}
