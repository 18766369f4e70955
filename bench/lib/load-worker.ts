// The load generator: autocannon in a process of its own, driven over IPC by bench/lib/load.ts,
// so that it never shares an event loop with a target or with the harness.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { Agent, request } from 'undici'
import type { BurstResult, LoadMessage, LoadResult } from './load.ts'

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

process.on('message', (message: LoadMessage) => {
  const work = message.kind === 'load' ? runLoad(message) : runBurst(message)
  work.then(
    (result) => process.send?.({ ok: true, result }),
    (error: Error) => process.send?.({ ok: false, error: error.stack ?? error.message })
  )
})
process.send?.({ ready: true })
