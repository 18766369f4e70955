// The load generator: autocannon in a process of its own, driven over IPC by bench/lib/load.ts,
// so that it never shares an event loop with a target or with the harness.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { Agent, Pool, request } from 'undici'
import { runOpenLoop } from './open-loop.ts'
import type { BurstResult, LoadMessage, LoadResult, RateSample, RateStream } from './load.ts'

interface AutocannonInstance {
  on (event: 'response', listener: (client: unknown, statusCode: number, bytes: number, responseTime: number) => void): void
  on (event: 'done', listener: (result: { errors: number, timeouts: number, duration: number }) => void): void
  on (event: 'error', listener: (error: Error) => void): void
}
type Autocannon = (options: Record<string, unknown>) => AutocannonInstance

// autocannon ships no types; its documented API is small enough to describe here.
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon

function percentile (sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0
}

async function runLoad (message: Extract<LoadMessage, { kind: 'load' }>): Promise<LoadResult> {
  const tokens = message.tokensFile ? JSON.parse(readFileSync(message.tokensFile, 'utf8')) as string[] : []
  let next = message.tokenOffset ?? 0
  // autocannon's own latency histogram keeps whole milliseconds of 2xx answers only; rejections
  // are the point of some rows, so every answer's time is kept here, to the microsecond.
  const latencies: number[] = []
  const statusCounts: Record<string, number> = {}
  const requestSpec: Record<string, unknown> = { method: 'GET', path: message.path }
  if (tokens.length > 0) {
    requestSpec.setupRequest = (req: { headers?: Record<string, string> }) => {
      const token = tokens[next++ % tokens.length] as string
      req.headers = { ...req.headers, authorization: `Bearer ${token}` }
      return req
    }
  }
  const started = performance.now()
  const instance = autocannon({
    url: message.url,
    connections: message.connections,
    duration: message.durationSeconds,
    ...(message.amount ? { amount: message.amount } : {}),
    ...(message.overallRate ? { overallRate: message.overallRate } : {}),
    timeout: 10,
    headers: message.headers ?? {},
    requests: [requestSpec]
  })
  instance.on('response', (_client, statusCode, _bytes, responseTime) => {
    latencies.push(responseTime)
    statusCounts[statusCode] = (statusCounts[statusCode] ?? 0) + 1
  })
  const done = await new Promise<{ errors: number, timeouts: number }>((resolve, reject) => {
    instance.on('done', resolve)
    instance.on('error', reject)
  })
  const elapsedSeconds = (performance.now() - started) / 1000
  const sorted = Float64Array.from(latencies).sort()
  return {
    requests: latencies.length,
    elapsedSeconds,
    rps: latencies.length / elapsedSeconds,
    latencyMs: { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] ?? 0 },
    statusCounts,
    errors: done.errors,
    timeouts: done.timeouts,
    tokensUsed: next - (message.tokenOffset ?? 0)
  }
}

/** n requests at once, each on its own connection: a cold start's worst case. */
async function runBurst (message: Extract<LoadMessage, { kind: 'burst' }>): Promise<BurstResult> {
  const dispatcher = new Agent({ connections: message.concurrency, pipelining: 0 })
  const statusCounts: Record<string, number> = {}
  let errors = 0
  const started = performance.now()
  await Promise.all(Array.from({ length: message.concurrency }, async () => {
    try {
      const response = await request(message.url, { dispatcher, headersTimeout: 30_000, bodyTimeout: 30_000 })
      await response.body.dump()
      statusCounts[response.statusCode] = (statusCounts[response.statusCode] ?? 0) + 1
    } catch {
      errors++
    }
  }))
  const elapsedMs = performance.now() - started
  await dispatcher.close()
  return { statusCounts, errors, elapsedMs }
}

/**
 * The soak's open-loop generator: each stream sends at its fixed rate whatever the answers do
 * (no coordinated omission), and stats are handed over sample by sample without pausing.
 */
interface StreamState {
  spec: RateStream
  pool: Pool
  pattern: string[]
  tokens: Map<string, string[]>
  cursors: Map<string, number>
  sent: number
  inFlight: number
  validUntilMs: number
  stats: RateSample
}

const streams: StreamState[] = []
let generatorLagMaxMs = 0
let ticker: NodeJS.Timeout | undefined
let startedAt = 0
const tokenFiles = new Map<string, string[]>()

const emptySample = (name: string): RateSample => ({ name, answered: 0, dropped: 0, byKind: {}, latencies: [], latenciesByStatus: {}, nonOkWithToken: 0, validUntilMs: 0 })

function fire (state: StreamState): void {
  const kind = state.pattern[state.sent % state.pattern.length] as string
  state.sent++
  // A bound on memory when the target falls far behind: counted, never silently lost.
  if (state.inFlight > Math.max(1000, state.spec.rate * 10)) { state.stats.dropped++; return }
  const pool = state.tokens.get(kind) ?? []
  const cursor = state.cursors.get(kind) ?? 0
  state.cursors.set(kind, cursor + 1)
  const token = pool.length > 0 ? pool[cursor % pool.length] : undefined
  const began = performance.now()
  state.inFlight++
  const record = (status: string) => {
    const stats = state.stats
    stats.answered++
    const latency = performance.now() - began
    stats.latencies.push(latency)
    const byStatusLatency = stats.latenciesByStatus[status] ?? (stats.latenciesByStatus[status] = [])
    byStatusLatency.push(latency)
    const byStatus = stats.byKind[kind] ?? (stats.byKind[kind] = {})
    byStatus[status] = (byStatus[status] ?? 0) + 1
    if (status !== '200' && Date.now() < state.validUntilMs) stats.nonOkWithToken++
  }
  state.pool.request({
    method: 'GET',
    path: state.spec.path,
    headers: token ? { authorization: `Bearer ${token}` } : {},
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  })
    .then(async (response) => {
      const text = await response.body.text()
      if (state.spec.readsExp && response.statusCode === 200) {
        // The caller answers with the claims the api saw: their exp says how long it holds a valid token.
        try {
          const exp = (JSON.parse(text) as { exp?: number }).exp
          if (typeof exp === 'number') state.validUntilMs = Math.max(state.validUntilMs, exp * 1000 - (state.spec.expiryMarginMs ?? 0))
        } catch { /* not JSON: no exp */ }
      }
      record(String(response.statusCode))
    }, () => { record('no answer') })
    .finally(() => { state.inFlight-- })
}

function startRate (message: Extract<LoadMessage, { kind: 'rate-start' }>): { started: true } {
  for (const spec of message.streams) {
    const tokens = new Map<string, string[]>()
    const pattern: string[] = []
    for (const part of spec.mix) {
      if (part.tokensFile) {
        const list = tokenFiles.get(part.tokensFile) ?? JSON.parse(readFileSync(part.tokensFile, 'utf8')) as string[]
        tokenFiles.set(part.tokensFile, list)
        tokens.set(part.kind, list)
      }
      for (let i = 0; i < part.weight; i++) pattern.push(part.kind)
    }
    streams.push({ spec, pool: new Pool(spec.url, { connections: spec.connections }), pattern, tokens, cursors: new Map(), sent: 0, inFlight: 0, validUntilMs: 0, stats: emptySample(spec.name) })
  }
  startedAt = performance.now()
  let lastTick = startedAt
  ticker = setInterval(() => {
    const now = performance.now()
    generatorLagMaxMs = Math.max(generatorLagMaxMs, now - lastTick - 5)
    lastTick = now
    const elapsed = now - startedAt
    for (const state of streams) {
      const due = Math.floor(elapsed * state.spec.rate / 1000)
      while (state.sent < due) fire(state)
    }
  }, 5)
  return { started: true }
}

function sampleRate (): RateSample[] {
  return streams.map((state) => {
    const sample = { ...state.stats, validUntilMs: state.validUntilMs, generatorLagMaxMs }
    state.stats = emptySample(state.spec.name)
    return sample
  })
}

async function stopRate (): Promise<RateSample[]> {
  clearInterval(ticker)
  const deadline = Date.now() + 12_000
  while (streams.some((state) => state.inFlight > 0) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  const last = sampleRate()
  await Promise.all(streams.map((state) => state.pool.destroy()))
  // Ready for another run in the same worker.
  streams.length = 0
  generatorLagMaxMs = 0
  return last
}

function handle (message: LoadMessage): Promise<unknown> {
  switch (message.kind) {
    case 'load': return runLoad(message)
    case 'burst': return runBurst(message)
    case 'rate-start': return Promise.resolve(startRate(message))
    case 'rate-sample': return Promise.resolve(sampleRate())
    case 'rate-stop': return stopRate()
    case 'open-loop': {
      const { kind: _, tokensFile, ...options } = message
      return runOpenLoop({ ...options, tokens: JSON.parse(readFileSync(tokensFile, 'utf8')) as string[] })
    }
  }
}

process.on('message', (message: LoadMessage) => {
  const work = handle(message)
  work.then(
    (result) => process.send?.({ ok: true, result }),
    (error: Error) => process.send?.({ ok: false, error: error.stack ?? error.message })
  )
})
process.send?.({ ready: true })
