// npm run soak [-- --minutes N] [-- --out DIR]
// A bounded run against the api and the caller at a fixed rate near 70% of a maximum measured at
// the start, with a mix of valid and bad tokens, while mock-imds rotates keys and injects faults on
// a schedule. Records per sample and per minute, fails on any wrong answer or memory growth, and
// draws what it recorded. Read bench/README.md.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { lineChart, type ChartEvent } from './lib/chart.ts'
import { startIssuerServer, TokenMint, writeTokens } from './lib/issuer.ts'
import { LoadGenerator, type RateSample } from './lib/load.ts'
import { readMetrics, sampleProcess, sumMetric } from './lib/processes.ts'
import { machine } from './lib/rows.ts'
import { admin, startApi, startCaller, startMockImds, type Service } from './lib/services.ts'
import { perMinute, percentile, verdict, type Sample, type ServiceSample, type SoakEvent } from './lib/soak-verdict.ts'

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    'sample-seconds': { type: 'string', default: '10' },
    'token-lifetime': { type: 'string', default: '60' },
    load: { type: 'string', default: '0.7' },
    out: { type: 'string' }
  }
})
const durationS = Math.round(Number(args.minutes) * 60)
const sampleS = Number(args['sample-seconds'])
const loadFraction = Number(args.load)
const tokenLifetimeS = Number(args['token-lifetime'])
if (!(durationS >= 10 && durationS <= 24 * 3600) || !(sampleS >= 1) || !(loadFraction > 0 && loadFraction <= 1) || !(tokenLifetimeS >= 60)) {
  process.stderr.write('usage: npm run soak -- [--minutes 0.2..1440] [--sample-seconds >=1] [--load 0..1] [--token-lifetime >=60] [--out DIR]\n')
  process.exit(2)
}
const outDir = args.out ?? fileURLToPath(new URL('./results/', import.meta.url))
const t0 = Date.now()
const log = (message: string) => { process.stderr.write(`[soak +${((Date.now() - t0) / 1000).toFixed(0)} s] ${message}\n`) }

const stops: Array<() => Promise<void>> = []
async function stopAll () { await Promise.allSettled(stops.splice(0).reverse().map((stop) => stop())) }
process.once('SIGINT', () => { stopAll().finally(() => process.exit(130)) })
const work = mkdtempSync(join(tmpdir(), 'msi-pair-soak-'))

/** n tokens in the order bench/lib/load-worker.ts's rate stream sends them for this mix. */
function mixSequence (mix: Array<{ weight: number, tokensFile?: string }>, n: number): string[] {
  const pattern = mix.flatMap((part) => Array.from({ length: part.weight }, () => part))
  const pools = new Map(mix.map((part) => [part, part.tokensFile ? JSON.parse(readFileSync(part.tokensFile, 'utf8')) as string[] : []]))
  const cursors = new Map<object, number>()
  const out: string[] = []
  for (let i = 0; i < n; i++) {
    const part = pattern[i % pattern.length] as typeof mix[number]
    const pool = pools.get(part) ?? []
    const cursor = cursors.get(part) ?? 0
    cursors.set(part, cursor + 1)
    if (pool.length > 0) out.push(pool[cursor % pool.length] as string)
  }
  return out
}

const apiMix = (files: Record<string, string>) => [
  { kind: 'valid, reused', weight: 4, tokensFile: files.reused },
  { kind: 'valid, unique', weight: 3, tokensFile: files.unique },
  { kind: 'expired', weight: 1, tokensFile: files.expired },
  { kind: 'wrong audience', weight: 1, tokensFile: files.wrongAudience },
  { kind: 'garbage', weight: 1, tokensFile: files.garbage }
]

/**
 * The services' own counters worth a line per minute (cumulative; absent ones are left out): what
 * the faults did on the inside, from the metric names every service promises.
 */
const counters: Record<string, Array<[string, string, Record<string, string>]>> = {
  api: [
    ['jwks refreshes ok', 'jwks_refresh_total', { result: 'success' }],
    ['jwks refreshes failed', 'jwks_refresh_total', { result: 'failure' }],
    ['auth rejected', 'auth_requests_total', { result: 'rejected' }],
    ['auth unavailable', 'auth_requests_total', { result: 'unavailable' }]
  ],
  caller: [
    ['token requests to the endpoint', 'token_requests_total', { source: 'endpoint' }],
    ['token requests failed', 'token_requests_total', { source: 'endpoint', result: 'failure' }],
    ['token refresh failures', 'token_refresh_failures_total', {}]
  ],
  'mock-imds': [
    ['token requests', 'mock_imds_token_requests_total', {}],
    ['token requests answered 429', 'mock_imds_token_requests_total', { status: '429' }],
    ['token requests answered 500', 'mock_imds_token_requests_total', { status: '500' }],
    ['jwks requests', 'mock_imds_jwks_requests_total', { document: 'jwks' }],
    ['jwks requests answered 503', 'mock_imds_jwks_requests_total', { document: 'jwks', status: '503' }]
  ]
}

async function serviceSample (name: string, service: Service): Promise<ServiceSample> {
  const metrics = await readMetrics(service.url)
  const heap = sumMetric(metrics, 'nodejs_heap_size_used_bytes')
  const values: Record<string, number> = {}
  for (const [label, metric, labels] of counters[name] ?? []) {
    const value = sumMetric(metrics, metric, labels)
    if (value !== null) values[label] = value
  }
  return { rssMb: sampleProcess(service.pid).rssBytes / 2 ** 20, heapMb: heap === null ? null : heap / 2 ** 20, counters: values }
}

let exitCode = 1
try {
  const mint = new TokenMint()
  const files = {
    reused: writeTokens(join(work, 'reused.json'), [mint.token('valid')]),
    unique: writeTokens(join(work, 'unique.json'), mint.tokens('valid', durationS < 120 ? 600 : 2000)),
    expired: writeTokens(join(work, 'expired.json'), mint.tokens('expired', 200)),
    wrongAudience: writeTokens(join(work, 'wrong-audience.json'), mint.tokens('wrongAudience', 200)),
    garbage: writeTokens(join(work, 'garbage.json'), mint.tokens('garbage', 200))
  }

  log('starting mock-imds, the issuer proxy, the api and the caller')
  const mock = await startMockImds({ MOCK_IMDS_TOKEN_LIFETIME_SECONDS: String(tokenLifetimeS) })
  stops.push(() => mock.stop())
  // The api trusts the bench's key (for expired and wrong-audience tokens signed by a trusted key)
  // and mock-imds's keys, whose rotations and JWKS outages come through this proxy.
  const issuer = await startIssuerServer({ keys: [mint.key.jwk], upstream: mock.url })
  stops.push(() => issuer.close())
  // Time compressed: the api re-reads the JWKS every 15 s instead of hourly, so that a key rotated
  // at mock-imds is known before tokens signed with it arrive, as Entra's keys are published ahead.
  const api = await startApi(issuer.url, { AUTH_JWKS_REFRESH_INTERVAL_MS: '15000' })
  stops.push(() => api.stop())
  const caller = await startCaller(mock.url, api.url)
  stops.push(() => caller.stop())
  const callerFirst = await fetch(`${caller.url}/call`)
  await callerFirst.arrayBuffer()
  if (callerFirst.status !== 200) throw new Error(`the caller's first /call answered ${callerFirst.status}`)
  const services: Record<string, Service> = { api, caller, 'mock-imds': mock }

  const load = new LoadGenerator()
  stops.push(() => load.stop())
  log('measuring the maximum rate of each stream')
  const maxSeconds = durationS < 120 ? 1.5 : 5
  // The maximum of the soak's own mix: the very sequence its api stream sends (kinds by weight, each
  // kind cycling through its own token file), so that 70 % of it is 70 % of what the soak asks for.
  // (Ten fresh tokens cycled would all be cache hits after the first round and overstate the maximum.)
  const mixed = writeTokens(join(work, 'mixed.json'), mixSequence(apiMix(files), 20_000))
  // Both streams at once, as the soak runs them (the caller's calls load the api too): measured one at a
  // time, each had the whole machine, and 70 % of each was beyond what both could do together (a 3-minute
  // soak fell 10 s behind at 4,448 + 1,897 req/s from maxima of 12,709 and 5,421 measured alone).
  const callerLoad = new LoadGenerator()
  const [apiMax, callerMax] = await Promise.all([
    load.run({ url: api.url, path: '/claims', connections: 50, durationSeconds: maxSeconds, tokensFile: mixed }),
    callerLoad.run({ url: caller.url, path: '/call', connections: 50, durationSeconds: maxSeconds })
  ]).finally(() => callerLoad.stop())
  // The caller stops using a token shortly before it expires (TOKEN_EXPIRY_MARGIN_SECONDS, 120 s, or
  // a tenth of a short token's life); a token that close to its exp does not count as in hand.
  const expiryMarginS = Math.min(120, tokenLifetimeS / 10)
  const apiRate = Math.max(5, Math.round(apiMax.rps * loadFraction))
  const callerRate = Math.max(5, Math.round(callerMax.rps * loadFraction))
  log(`max together ${Math.round(apiMax.rps)} req/s (api mix) + ${Math.round(callerMax.rps)} req/s (caller): soaking at ${apiRate} + ${callerRate} req/s for ${durationS} s`)

  // The fault schedule, as fractions of the run so that it scales; each fault lasts a fixed window.
  const faultS = Math.min(20, durationS * 0.1)
  const events: SoakEvent[] = []
  const at = (fraction: number, what: string, action: () => Promise<unknown>, delayS = 0) => {
    const timer = setTimeout(() => {
      const t = (Date.now() - started) / 1000
      action().then(
        (result) => { events.push({ t, what, ok: true, ...(result ? { detail: JSON.stringify(result) } : {}) }); log(what) },
        (error: Error) => { events.push({ t, what, ok: false, detail: error.message }); log(`${what} FAILED: ${error.message}`) })
    }, (durationS * fraction + delayS) * 1000)
    timers.push(timer)
  }
  const timers: NodeJS.Timeout[] = []
  const fault = (body: unknown) => () => admin(mock, 'POST', '/admin/faults', body)
  const clear = () => admin(mock, 'DELETE', '/admin/faults')
  const rotate = () => admin(mock, 'POST', '/admin/keys/rotate', { keepPrevious: true })
  // New tokens carry the new kid once mock-imds forgets the tokens it cached (after the api's next JWKS refresh).
  const forgetTokens = () => admin(mock, 'POST', '/admin/tokens/cache/clear')
  const settleS = Math.min(20, durationS * 0.1)

  const started = Date.now()
  // Tokens live 60 s by default, so the caller asks for one every minute or so and the token faults
  // meet real token requests (mock_imds_token_requests_total by status shows it); each rotation is followed, once the api has
  // re-read the JWKS, by mock-imds forgetting its cached tokens, so that new ones carry the new kid.
  at(0.20, 'keys rotated', rotate)
  at(0.20, 'mock-imds token cache cleared', forgetTokens, settleS)
  at(0.35, 'token endpoints: 429 (Retry-After 1)', fault({ target: 'token', mode: 'status', status: 429, retryAfterSeconds: 1 }))
  at(0.35, 'token faults cleared', clear, faultS)
  at(0.55, 'token endpoints: 500', fault({ target: 'token', mode: 'status', status: 500 }))
  at(0.55, 'token faults cleared', clear, faultS)
  at(0.70, 'JWKS and discovery outage (503)', async () => [
    await fault({ target: 'jwks', mode: 'status', status: 503 })(),
    await fault({ target: 'discovery', mode: 'status', status: 503 })()
  ])
  at(0.70, 'JWKS outage over', clear, faultS * 1.5)
  at(0.88, 'keys rotated', rotate)
  at(0.88, 'mock-imds token cache cleared', forgetTokens, Math.min(settleS, durationS * 0.1))

  await load.startRate([
    { name: 'api', url: api.url, path: '/claims', rate: apiRate, connections: 50, mix: apiMix(files) },
    { name: 'caller', url: caller.url, path: '/call', rate: callerRate, connections: 50, mix: [{ kind: 'call', weight: 1 }], readsExp: true, expiryMarginMs: expiryMarginS * 1000 }
  ])
  const samples: Sample[] = []
  const latencies: Array<{ t: number, stream: string, values: number[] }> = []
  const record = async (streams: RateSample[], seconds: number) => {
    const t = (Date.now() - started) / 1000
    const serviceSamples: Record<string, ServiceSample> = {}
    for (const [name, service] of Object.entries(services)) serviceSamples[name] = await serviceSample(name, service)
    samples.push({
      t,
      streams: streams.map(({ latencies: values, latenciesByStatus: _byStatus, ...rest }) => {
        latencies.push({ t, stream: rest.name, values })
        return { ...rest, rps: rest.answered / seconds, p99Ms: percentile(values, 99) }
      }),
      services: serviceSamples
    })
  }
  let last = Date.now()
  while (Date.now() - started < durationS * 1000) {
    const wait = Math.min(sampleS * 1000, started + durationS * 1000 - Date.now())
    await new Promise((resolve) => setTimeout(resolve, wait))
    const now = Date.now()
    await record(await load.sampleRate(), (now - last) / 1000)
    last = now
  }
  timers.forEach(clearTimeout)
  const tail = await load.stopRate()
  log(`done; ${tail.map((stream) => stream.answered).join(' + ')} answers arrived after the last sample`)
  await clear().catch(() => {})

  // Answers that arrived after the last sample are judged too, but not drawn (a partial sample).
  const lastSample = samples[samples.length - 1]
  const judged = lastSample
    ? [...samples, { t: lastSample.t, services: lastSample.services, streams: tail.map(({ latencies: _values, latenciesByStatus: _byStatus, ...rest }) => ({ ...rest, rps: 0, p99Ms: 0 })) }]
    : samples
  const minutes = perMinute(judged, latencies, events, durationS)
  const { passed, failures, rssGrowth, totals } = verdict(judged, events, durationS)

  const results = {
    meta: {
      date: new Date().toISOString(),
      ...machine(),
      durationSeconds: durationS,
      sampleSeconds: sampleS,
      tokenLifetimeSeconds: tokenLifetimeS,
      expiryMarginSeconds: expiryMarginS,
      measuredMaxRps: { api: Math.round(apiMax.rps), caller: Math.round(callerMax.rps) },
      rates: { api: apiRate, caller: callerRate, loadFraction },
      apiMix: apiMix(files).map(({ kind, weight }) => ({ kind, weight }))
    },
    passed,
    failures,
    rssGrowth,
    totals,
    events,
    minutes,
    samples
  }
  mkdirSync(outDir, { recursive: true })
  writeFileSync(join(outDir, 'soak.json'), JSON.stringify(results, null, 2) + '\n')

  const toMin = (t: number) => t / 60
  const series = (stream: string, pick: (s: Sample['streams'][number]) => number) => ({
    name: stream,
    points: samples.map((sample) => [toMin(sample.t), pick(sample.streams.find((s) => s.name === stream) as Sample['streams'][number])] as [number, number])
  })
  const memory = (name: string, pick: 'rssMb' | 'heapMb', label: string) => ({
    name: `${name} ${label}`,
    points: samples.flatMap((sample) => { const v = sample.services[name]?.[pick]; return v === null || v === undefined ? [] : [[toMin(sample.t), v] as [number, number]] })
  })
  const clock = (t: number) => `${Math.floor(t / 60)}:${String(Math.round(t % 60)).padStart(2, '0')}`
  const chartEvents: ChartEvent[] = events.map((event) => ({ x: toMin(event.t), label: `${clock(event.t)} ${event.what}${event.ok ? '' : ' (FAILED)'}` }))
  writeFileSync(join(outDir, 'soak.svg'), lineChart({
    title: `msi-pair soak: ${durationS / 60} min at ${apiRate} + ${callerRate} req/s, ${passed ? 'passed' : 'FAILED'} (${new Date().toISOString().slice(0, 16)}Z)`,
    xLabel: 'minutes since the start',
    panels: [
      { title: 'Throughput', unit: 'answers/s', series: [series('api', (s) => s.rps), series('caller', (s) => s.rps)] },
      { title: 'p99 latency', unit: 'ms', series: [series('api', (s) => s.p99Ms), series('caller', (s) => s.p99Ms)] },
      {
        title: 'Memory',
        unit: 'MB',
        series: [memory('api', 'rssMb', 'RSS'), memory('caller', 'rssMb', 'RSS'), memory('mock-imds', 'rssMb', 'RSS'), memory('api', 'heapMb', 'heap'), memory('caller', 'heapMb', 'heap')]
      }
    ],
    events: chartEvents
  }))

  for (const minute of minutes) {
    const s = minute.streams
    const memoryLine = Object.entries(minute.services).map(([name, m]) => `${name} ${m.rssMb.toFixed(0)} MB`).join(', ')
    const counterLine = Object.entries(minute.counterDeltas)
      .map(([name, deltas]) => Object.entries(deltas).filter(([, n]) => n > 0).map(([counter, n]) => `${name} ${counter} ${n}`).join(', '))
      .filter(Boolean).join('; ')
    process.stdout.write(`minute ${minute.minute}: api ${s.api?.rps.toFixed(0)} req/s p99 ${s.api?.p99Ms.toFixed(1)} ms, caller ${s.caller?.rps.toFixed(0)} req/s p99 ${s.caller?.p99Ms.toFixed(1)} ms; RSS ${memoryLine}\n`)
    if (minute.events.length > 0) process.stdout.write(`  events: ${minute.events.join(', ')}\n`)
    if (counterLine) process.stdout.write(`  counters: ${counterLine}\n`)
  }
  process.stdout.write(passed ? 'soak passed\n' : `soak FAILED:\n${failures.map((f) => `  - ${f}`).join('\n')}\n`)
  log(`wrote ${join(outDir, 'soak.json')} and soak.svg`)
  exitCode = passed ? 0 : 1
} catch (error) {
  log(`failed: ${(error as Error).stack ?? String(error)}`)
} finally {
  await stopAll()
  rmSync(work, { recursive: true, force: true })
  process.exitCode = exitCode
}
