// npm run bench [-- --quick] [-- --out DIR]
// Every row in one invocation, each target in its own process, autocannon in another, the same
// connections, warm-up and duration for every row. Read bench/README.md for what each row means.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { startIssuerServer, TokenMint, targetEnv, writeTokens, type IssuerServer } from './lib/issuer.ts'
import { LoadGenerator } from './lib/load.ts'
import { readMetrics, startTarget, sumMetric } from './lib/processes.ts'
import { markdown, type BenchResults, type Burst, type Overload, type Target } from './lib/report.ts'
import { combine, machine, measure, ratio, settingsFor, type MeasureOptions, type Row } from './lib/rows.ts'
import { admin, apiCooldown, startApi, startCaller, startMockImds, tokenRequests } from './lib/services.ts'
import { nodeFlags } from '../scripts/lib/processes.ts'

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
const overload: Overload[] = []

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
  // One issuer server per target (same key, same documents), so that each one's JWKS fetches are
  // counted apart: a flooded peer's late fetches must not be charged to the next row.
  const issuer = await startIssuerServer({ keys: [mint.key.jwk] })
  stops.push(() => issuer.close())
  const cooldown = await apiCooldown()
  const load = track(new LoadGenerator())
  const common = { settings }
  const peers = [
    ['peer-express-jwt.ts', 'express + express-jwt + jwks-rsa'],
    ['peer-fastify-jwt.ts', 'Fastify + @fastify/jwt + get-jwks'],
    ['peer-jose.ts', 'Fastify + jose']
  ] as const
  const peerIssuers = await Promise.all(peers.map(() => startIssuerServer({ keys: [mint.key.jwk] })))
  for (const peerIssuer of peerIssuers) stops.push(() => peerIssuer.close())
  const apiInfoIssuer = await startIssuerServer({ keys: [mint.key.jwk] })
  stops.push(() => apiInfoIssuer.close())
  const apiShedIssuer = await startIssuerServer({ keys: [mint.key.jwk] })
  stops.push(() => apiShedIssuer.close())
  const apiUnshedIssuer = await startIssuerServer({ keys: [mint.key.jwk] })
  stops.push(() => apiUnshedIssuer.close())
  const apiInlineIssuer = await startIssuerServer({ keys: [mint.key.jwk] })
  stops.push(() => apiInlineIssuer.close())

  log('starting every target')
  // Every target starts before the first row and stays up: rows run interleaved, round after round.
  // The rows measure what a request costs, so their api does not shed load (a busy machine's
  // scheduling hiccups would otherwise turn into 503s); apiShed runs the defaults, for the overload row.
  const noShedding = { OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0', OVERLOAD_MAX_EVENT_LOOP_UTILIZATION: '0', OVERLOAD_MAX_SIGNATURE_CHECK_DELAY_MS: '0' }
  // apiUnshed is the overload row's comparison without shedding. Its queue holds every request it has
  // read (RSS 1,358 MB at twice row 3 for 8 s, one throwaway run), past the shipped 256 MB heap limit
  // (nodeFlags in scripts/lib/processes.ts), which killed it: that limit is lifted there, and only there.
  const [bare, bareWithMetrics, api, apiInfo, apiShed, apiUnshed, apiInline, mock, ...peerTargets] = await Promise.all([
    startTarget('bare-api.ts', {}).then(track),
    startTarget('bare-api.ts', { BARE_METRICS: '1', BARE_BODY: JSON.stringify(mint.claims()) }).then(track),
    startApi(issuer.url, noShedding).then(track),
    startApi(apiInfoIssuer.url, { LOG_LEVEL: 'info', ...noShedding }, { dropLogs: true }).then(track),
    startApi(apiShedIssuer.url).then(track),
    startApi(apiUnshedIssuer.url, noShedding, { nodeFlags: nodeFlags.api.filter((flag) => !flag.startsWith('--max-old-space-size=')) }).then(track),
    startApi(apiInlineIssuer.url, { AUTH_SIGNATURE_CHECKS: 'event-loop', ...noShedding }).then(track),
    startMockImds().then(track),
    ...peers.map(([file], index) => startTarget(file, targetEnv((peerIssuers[index] ?? issuer).url)).then(track))
  ])
  const [apiForCaller, bareApi] = await Promise.all([startApi(mock.url, noShedding).then(track), startTarget('bare-api.ts', {}).then(track)])
  const [caller, bareCaller] = await Promise.all([
    startCaller(mock.url, apiForCaller.url).then(track),
    startTarget('bare-caller.ts', { BARE_API_URL: bareApi.url }).then(track)
  ])
  for (const target of [api, apiInfo, apiShed, apiUnshed, apiInline]) {
    if (await get(`${target.url}/claims`, oneToken) !== 200) throw new Error('the api rejected a valid bench token: check its configuration')
  }
  for (const [index, peer] of peerTargets.entries()) {
    if (await get(`${peer.url}/claims`, oneToken) !== 200) throw new Error(`${peers[index]?.[1] ?? ''} rejected a valid bench token:\n${peer.logs.join('\n')}`)
  }
  if (await get(`${caller.url}/call`) !== 200) throw new Error(`the caller's /call failed before the rows:\n${caller.logs.join('\n')}`)

  // The api's own count of verified-token cache hits, summed over the runs of row 3.
  let cacheHits: number | null = null
  const countCacheHits = async () => {
    const before = sumMetric(await readMetrics(api.url), 'auth_verified_token_cache_total', { result: 'hit' })
    return async () => {
      const after = sumMetric(await readMetrics(api.url), 'auth_verified_token_cache_total', { result: 'hit' })
      if (before !== null && after !== null) cacheHits = (cacheHits ?? 0) + after - before
    }
  }
  const apiTarget = { url: api.url, path: '/claims', processes: [{ name: 'api', pid: api.pid }] }
  const specs: Array<MeasureOptions & { around?: () => Promise<() => Promise<void>> }> = [
    // The same Authorization header as rows 2-3, which the bare app ignores: only the auth work differs.
    { ...common, id: '1', kind: 'one', name: 'limit: bare Fastify, one JSON route', url: bare.url, path: '/claims', expectStatus: 200, processes: [bare], tokensFile: files.one },
    {
      ...common,
      id: '1b',
      kind: 'one',
      name: 'diagnostic: row 1 + the services\' metrics plugin, answering a claims-sized JSON',
      url: bareWithMetrics.url,
      path: '/claims',
      expectStatus: 200,
      processes: [bareWithMetrics],
      tokensFile: files.one
    },
    { ...common, ...apiTarget, id: '2', kind: 'one', name: 'api /claims, one token reused', expectStatus: 200, tokensFile: files.one },
    {
      ...common,
      id: '2i',
      kind: 'other',
      name: 'row 2 at LOG_LEVEL=info: the cost of the two request log lines (read by a pipe, as a container runtime does)',
      url: apiInfo.url,
      path: '/claims',
      processes: [{ name: 'api (info)', pid: apiInfo.pid }],
      expectStatus: 200,
      tokensFile: files.one
    },
    { ...common, ...apiTarget, id: '3', kind: 'unique', name: `api /claims, a different token every request (${settings.uniqueTokens} cycled)`, expectStatus: 200, tokensFile: files.unique, around: countCacheHits },
    {
      ...common,
      id: '3e',
      kind: 'unique',
      name: 'row 3 with AUTH_SIGNATURE_CHECKS=event-loop (signatures inline, no worker thread)',
      url: apiInline.url,
      path: '/claims',
      processes: [{ name: 'api (event loop)', pid: apiInline.pid }],
      expectStatus: 200,
      tokensFile: files.unique
    },
    { ...common, ...apiTarget, id: '4a', kind: 'badSignature', name: `api, bad signature (${settings.invalidTokens} cycled)`, expectStatus: 401, tokensFile: files.badSignature },
    {
      ...common,
      id: '4ae',
      kind: 'badSignature',
      name: 'row 4a with AUTH_SIGNATURE_CHECKS=event-loop',
      url: apiInline.url,
      path: '/claims',
      processes: [{ name: 'api (event loop)', pid: apiInline.pid }],
      expectStatus: 401,
      tokensFile: files.badSignature
    },
    { ...common, ...apiTarget, id: '4b', kind: 'expired', name: 'api, expired', expectStatus: 401, tokensFile: files.expired },
    ...peerTargets.flatMap((peer, index) => {
      const id = `5${'abc'[index] ?? ''}`
      const name = peers[index]?.[1] ?? ''
      const target = { ...common, url: peer.url, path: '/claims', processes: [peer] }
      return [
        { ...target, id: `${id}1`, kind: 'one' as const, name: `${name}, one token reused`, expectStatus: 200, tokensFile: files.one },
        { ...target, id: `${id}2`, kind: 'unique' as const, name: `${name}, a different token every request`, expectStatus: 200, tokensFile: files.unique },
        { ...target, id: `${id}3`, kind: 'badSignature' as const, name: `${name}, bad signature`, expectStatus: 401, tokensFile: files.badSignature }
      ]
    }),
    {
      ...common,
      id: '6a',
      kind: 'caller',
      name: 'caller /call end to end (token cached, api validating)',
      url: caller.url,
      path: '/call',
      expectStatus: 200,
      processes: [{ name: 'caller', pid: caller.pid }, { name: 'api', pid: apiForCaller.pid }],
      notes: ['CPU: caller + api']
    },
    { ...common, id: '6b', kind: 'other', name: 'bare caller to bare api, no auth', url: bareCaller.url, path: '/call', expectStatus: 200, processes: [bareCaller, bareApi], notes: ['CPU: both processes'] }
  ]
  const runs = new Map<string, Row[]>()
  for (let round = 1; round <= settings.rounds; round++) {
    log(`round ${round} of ${settings.rounds}: ${specs.length} rows`)
    for (const spec of specs) {
      const done = spec.around ? await spec.around() : undefined
      const run = await measure(load, spec)
      await done?.()
      runs.set(spec.id, [...(runs.get(spec.id) ?? []), run])
    }
  }
  for (const spec of specs) rows.push(combine(runs.get(spec.id) ?? []))
  if (cacheHits !== null) row('3')?.notes.push(`verified-token cache hits during the row: ${cacheHits}`)

  // Floods last and once: they change what they measure (a cooldown, once started, stays started).
  const flood = async (id: string, name: string, target: { url: string, processes: Array<{ name: string, pid: number }> }, counter: IssuerServer) => {
    log(`flood: ${name}`)
    const fetchesBefore = counter.counts.jwks
    const started = Date.now()
    const result = await measure(load, { ...common, id, kind: 'flood', name, url: target.url, path: '/claims', expectStatus: 401, processes: target.processes, tokensFile: files.randomKid })
    result.jwksFetches = counter.counts.jwks - fetchesBefore
    return { result, seconds: (Date.now() - started) / 1000 }
  }
  const apiFlood = await flood('4c', 'api, random-kid flood', apiTarget, issuer)
  apiFlood.result.allowedJwksFetches = Math.floor(apiFlood.seconds * 1000 / Math.max(cooldown.ms, 1)) + 1
  apiFlood.result.notes.push(`cooldown: ${cooldown.note}`)
  rows.splice(rows.findIndex((r) => r.id === '4b') + 1, 0, apiFlood.result)
  if (!settings.quick) {
    for (const [index, peer] of peerTargets.entries()) {
      const id = `5${'abc'[index] ?? ''}`
      const { result } = await flood(`${id}4`, `${peers[index]?.[1] ?? ''}, random-kid flood`, { url: peer.url, processes: [peer] }, peerIssuers[index] ?? issuer)
      rows.splice(rows.findIndex((r) => r.id === `${id}3`) + 1, 0, result)
    }
  }

  // Every row against Fastify + jose's row of the same kind, and against the bare limit.
  const joseRow: Partial<Record<Row['kind'], string>> = { one: '5c1', unique: '5c2', badSignature: '5c3', flood: '5c4' }
  for (const r of rows) {
    const jose = joseRow[r.kind]
    if (jose !== undefined && jose !== r.id) {
      const vs = ratio(r, row(jose))
      if (vs) r.vsJose = vs
    }
    const bareId = r.id === '6a' ? '6b' : r.id === '6b' || r.id === '1' ? undefined : '1'
    const vs = bareId === undefined ? undefined : ratio(r, row(bareId))
    if (vs) r.vsBare = vs
  }

  // Overload: twice what row 3 measured, open loop, to the api with its default shedding and to an api
  // without (apiUnshed): the first must refuse fast, the second shows the queue.
  const capacity = row('3')?.rps ?? 0
  // Row 1 is not a ceiling for refusals: under this generator a bare node:http server answering the same
  // 503 used 38 µs of CPU per request at 25,000 req/s and 28-29 µs at 28,000 and 32,000 (busier sockets
  // batch more per read), none late (a throwaway run, 2026-11-30 18:55 UTC). When twice row 3 is more
  // than 0.8x row 1, the row also runs at 0.8x row 1, a second point where shedding has to hold.
  const limitRps = row('1')?.rps ?? 0
  const rates = [2 * capacity, ...(2 * capacity > 0.8 * limitRps && limitRps > capacity ? [0.8 * limitRps] : [])]
  if (capacity > 0) {
    for (const rate of rates) {
      const overloadSeconds = settings.quick ? 2 : 8
      const giveUpMs = 2000
      // Requests are pipelined on busy connections (bench/lib/open-loop.ts), so the queue builds in the
      // api's socket buffers, where it can see it and refuse. Through undici's pool (the earlier run) the
      // client held the queue: the api held at most one request per connection, about 70 ms of work, its
      // event-loop delay never crossed the limit, and it never shed.
      const connections = 256
      for (const [target, label] of [[apiShed, 'default shedding (OVERLOAD_* defaults)'], [apiUnshed, 'shedding off (OVERLOAD_*=0; heap limit lifted)']] as const) {
        const name = rate === 2 * capacity ? label : `${label}, at 0.8x row 1`
        log(`overload: ${name}`)
        // The same warm-up as every row: apiShed has served nothing yet, and a cold process compiling its
        // hot paths under twice its capacity measures the JIT, not the shedding.
        await load.run({ url: target.url, path: '/claims', connections: 50, durationSeconds: settings.warmupSeconds, tokensFile: files.unique })
        const result = await load.openLoop({ url: target.url, path: '/claims', rate, connections, seconds: overloadSeconds, drainMs: 15_000, deadlineMs: giveUpMs, tokensFile: files.unique })
        const { statusCounts, generatorLagMaxMs } = result
        const byStatus = result.latenciesByStatus
        const spread = (values: number[] = []) => {
          const sorted = Float64Array.from(values).sort()
          const at = (p: number) => sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? 0
          return { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] ?? 0 }
        }
        const sent = result.sent
        // Answers that came after the client's deadline (work done for a caller that had given up) or
        // never, counted by the generator against deadlineMs = giveUpMs.
        const late = result.lateByDueSecond.reduce((sum, count) => sum + count, 0)
        overload.push({
          target: name,
          capacityRps: capacity,
          offeredRps: rate,
          seconds: overloadSeconds,
          connections,
          giveUpMs,
          sent,
          statusCounts,
          late,
          lateByDueSecond: result.lateByDueSecond,
          generatorLagMaxMs,
          acceptedMs: spread(byStatus['200']),
          refusedMs: spread(byStatus['503']),
          shareRefused: sent > 0 ? (statusCounts['503'] ?? 0) / sent : 0
        })
        // Let the api drain what it still holds before the next run.
        await new Promise((resolve) => setTimeout(resolve, 2000))
      }
    }
  }

  log(`cold burst of ${settings.burst}`)
  {
    const before = await tokenRequests(mock)
    // The first token request takes 4 s, so that the whole burst arrives while the caller's first
    // acquisition (started at its start) is still in flight: without single flight, every call that
    // finds no token would ask for its own. The deadlines are wide enough for a loaded machine.
    const faultMs = 4000
    await admin(mock, 'POST', '/admin/faults', { target: 'token', mode: 'latency', latencyMs: faultMs, count: 1 })
    const startedAt = performance.now()
    const cold = track(await startCaller(mock.url, apiForCaller.url, { TOKEN_ATTEMPT_TIMEOUT_MS: '10000', TOKEN_WAIT_TIMEOUT_MS: '20000' }))
    // Proof that the burst meets the first acquisition in flight: the caller is not ready (no token yet).
    const readyBefore = await fetch(`${cold.url}/readyz`).then(async (response) => { await response.arrayBuffer(); return response.status })
    const sentAfterMs = performance.now() - startedAt
    const result = await load.burst(`${cold.url}/call`, settings.burst)
    // Let a straggling token request land before counting.
    await new Promise((resolve) => setTimeout(resolve, 200))
    const after = await tokenRequests(mock)
    await admin(mock, 'DELETE', '/admin/faults')
    burst = { concurrency: settings.burst, ...result, tokenRequests: after.count - before.count, countedBy: after.source, faultMs, sentAfterMs, readyBefore }
    await cold.stop()
  }

  const targets: Target[] = []
  const limit = row('1')
  const reused = row('2')
  const unique = row('3')
  const badSignature = row('4a')
  const inline = (r: Row | undefined) => r?.vsJose ? ` (event loop, row ${r.id}: req/s ${r.vsJose.rps.toFixed(2)}x, CPU ${r.vsJose.cpu.toFixed(2)}x)` : ''
  if (unique?.vsJose) {
    targets.push({
      goal: 'a different token each request (row 3): req/s at least 1.2x jose\'s, CPU per request at most 0.8x jose\'s',
      measured: `req/s ${unique.vsJose.rps.toFixed(2)}x, CPU ${unique.vsJose.cpu.toFixed(2)}x jose${inline(row('3e'))}`,
      met: unique.vsJose.rps >= 1.2 && unique.vsJose.cpu <= 0.8
    })
  }
  if (badSignature?.vsJose) {
    targets.push({
      goal: 'bad signatures (row 4a): req/s at least 1.2x jose\'s, CPU per request at most jose\'s',
      measured: `req/s ${badSignature.vsJose.rps.toFixed(2)}x, CPU ${badSignature.vsJose.cpu.toFixed(2)}x jose${inline(row('4ae'))}`,
      met: badSignature.vsJose.rps >= 1.2 && badSignature.vsJose.cpu <= 1
    })
  }
  if (reused?.vsBare) {
    targets.push({
      goal: 'one token reused (row 2): CPU per request at most 1.25x bare Fastify\'s',
      measured: `${reused.vsBare.cpu.toFixed(2)}x`,
      met: reused.vsBare.cpu <= 1.25
    })
  }
  if (unique && limit) {
    const peak = unique.peakRssMb / Math.max(limit.peakRssMb, 1)
    targets.push({
      goal: 'peak RSS during the distinct-token row (row 3) at most 1.5x bare Fastify\'s (row 1)',
      measured: `${unique.peakRssMb.toFixed(0)} MB vs ${limit.peakRssMb.toFixed(0)} MB, ${peak.toFixed(2)}x`,
      met: peak <= 1.5
    })
  }
  if (reused?.vsBare) {
    targets.push({
      goal: '(issue 8) row 2 at 90% of row 1 or better, p99 no worse than 1.2x',
      measured: `${(reused.vsBare.rps * 100).toFixed(0)}% of row 1, p99 ${reused.vsBare.p99.toFixed(2)}x`,
      met: reused.vsBare.rps >= 0.9 && reused.vsBare.p99 <= 1.2
    })
  }
  const floodRow = row('4c')
  if (floodRow) {
    targets.push({
      goal: 'the random-kid flood causes at most one JWKS fetch per cooldown',
      measured: `${floodRow.jwksFetches ?? '?'} fetches, ${floodRow.allowedJwksFetches ?? '?'} allowed (${cooldown.note})`,
      met: (floodRow.jwksFetches ?? Infinity) <= (floodRow.allowedJwksFetches ?? 0)
    })
  }
  const describe = (shedding: Overload | undefined, off: Overload | undefined) => shedding === undefined
    ? ''
    : `${(shedding.shareRefused * 100).toFixed(0)}% refused, ${shedding.late} of ${shedding.sent} answered after the deadline, accepted p99 ${shedding.acceptedMs.p99.toFixed(0)} ms${off ? ` (without shedding: ${off.late} late, accepted p99 ${off.acceptedMs.p99.toFixed(0)} ms)` : ''}`
  const [shed, unshed, shedAtLimit, unshedAtLimit] = overload
  if (shed) {
    targets.push({
      goal: `past capacity (2x row 3, open loop) the api refuses fast: nothing answered after its client's ${shed.giveUpMs} ms deadline, 503 with Retry-After for what it cannot serve`,
      measured: describe(shed, unshed),
      met: shed.late === 0
    })
  }
  if (shedAtLimit) {
    targets.push({
      goal: `past capacity, at 0.8x row 1 (${(shedAtLimit.offeredRps / capacity).toFixed(2)}x row 3), nothing answered after the deadline`,
      measured: describe(shedAtLimit, unshedAtLimit),
      met: shedAtLimit.late === 0
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
        ? `The machine was not idle (1-min load average ${loadBefore[0]} on ${machine().cpus} cores at the start; it was shared with other work): compare ratios within this run, not absolute figures across runs.`
        : 'Ratios within this run are the result; absolute figures move from run to run and machine to machine.',
      settings,
      cooldown: cooldown.note
    },
    rows,
    overload,
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
