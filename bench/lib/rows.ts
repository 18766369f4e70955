import { writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import type { LoadGenerator, LoadResult } from './load.ts'
import { sampleProcess } from './processes.ts'

export interface ProcessStats { name: string, cpuMs: number, peakRssMb: number }

/** What a row sends, which decides the rows it is compared with (jose's row of the same kind). */
export type RowKind = 'one' | 'unique' | 'badSignature' | 'expired' | 'flood' | 'caller' | 'other'

/** A ratio to another row: this row's req/s and CPU per request divided by that row's. */
export interface Ratio { row: string, rps: number, cpu: number, p99: number }

export interface Row {
  id: string
  name: string
  kind: RowKind
  /** The status every request of this row should get. */
  expectStatus: number
  rps: number
  requests: number
  latencyMs: { p50: number, p99: number, max: number }
  statusCounts: Record<string, number>
  /** Answers with another status, plus requests with no answer at all. */
  unexpected: number
  /** CPU time of the row's server processes per request, in microseconds. */
  cpuUsPerRequest: number
  /** CPU time of the row's server processes over the measured wall time: 1.0 is one core busy all along. */
  coresUsed: number
  /** Wall time of the measured runs, in seconds. */
  elapsedSeconds: number
  /** Peak RSS of the row's main process during the row. */
  peakRssMb: number
  /** Per process; for a row of several rounds, CPU summed over them (cpuUsPerRequest is the rounds' median). */
  processes: ProcessStats[]
  /** req/s of each round, when the row ran in several rounds (its rps is their median). */
  rounds?: number[]
  /** CPU µs per request of each round (its cpuUsPerRequest is their median). */
  cpuRounds?: number[]
  /** Ratios to Fastify + jose's row of the same kind, and to the bare row (row 1; 6b for the caller). */
  vsJose?: Ratio
  vsBare?: Ratio
  jwksFetches?: number
  discoveryFetches?: number
  allowedJwksFetches?: number
  tokenRequests?: number
  notes: string[]
}

export interface BenchSettings {
  quick: boolean
  /** Every row runs once per round, rows interleaved, so that a machine busy with other work slows all rows alike. */
  rounds: number
  connections: number
  durationSeconds: number
  warmupSeconds: number
  uniqueTokens: number
  /**
   * Distinct tokens of each invalid kind: more than any verified-token cache holds (the api's default
   * 1,000), so that a row of forged signatures measures verifications, not a cache of rejections.
   */
  invalidTokens: number
  floodTokens: number
  burst: number
}

export const settingsFor = (quick: boolean): BenchSettings => quick
  ? { quick, rounds: 1, connections: 50, durationSeconds: 1, warmupSeconds: 0.5, uniqueTokens: 1500, invalidTokens: 1500, floodTokens: 5000, burst: 1000 }
  : { quick, rounds: 3, connections: 50, durationSeconds: 5, warmupSeconds: 2, uniqueTokens: 20_000, invalidTokens: 5000, floodTokens: 20_000, burst: 1000 }

export interface Measured { name: string, pid: number }

/** Resets a process's peak RSS (VmHWM), so that a process serving several rows reports each row's peak. */
function resetPeak (pid: number): void {
  // Writing 5 to clear_refs resets the high-water mark (Linux 4.0+); without it the peak is the process's.
  try { writeFileSync(`/proc/${pid}/clear_refs`, '5') } catch { /* an older kernel: the process's own peak */ }
}

export interface MeasureOptions {
  id: string
  name: string
  kind: RowKind
  url: string
  path: string
  expectStatus: number
  /** The processes serving the row; the first is the row's main process. */
  processes: Measured[]
  tokensFile?: string
  settings: BenchSettings
  notes?: string[]
}

// Where each token file's next request starts, so that later runs keep cycling instead of replaying.
const tokenOffsets = new Map<string, number>()

/** One run of a row: the same warm-up, then the same measured run, as every other row. */
export async function measure (load: LoadGenerator, options: MeasureOptions): Promise<Row> {
  const { settings, tokensFile } = options
  const base = { url: options.url, path: options.path, connections: settings.connections, ...(tokensFile ? { tokensFile } : {}) }
  const offset = tokensFile ? tokenOffsets.get(tokensFile) ?? 0 : 0
  const warm = await load.run({ ...base, durationSeconds: settings.warmupSeconds, tokenOffset: offset })
  for (const { pid } of options.processes) resetPeak(pid)
  const before = options.processes.map(({ pid }) => sampleProcess(pid))
  const result: LoadResult = await load.run({ ...base, durationSeconds: settings.durationSeconds, tokenOffset: offset + warm.tokensUsed })
  if (tokensFile) tokenOffsets.set(tokensFile, offset + warm.tokensUsed + result.tokensUsed)
  const after = options.processes.map(({ pid }) => sampleProcess(pid))
  const processes = options.processes.map(({ name }, index) => ({
    name,
    cpuMs: (after[index]?.cpuMs ?? 0) - (before[index]?.cpuMs ?? 0),
    peakRssMb: (after[index]?.peakRssBytes ?? 0) / 2 ** 20
  }))
  const cpuMs = processes.reduce((sum, p) => sum + p.cpuMs, 0)
  const expected = result.statusCounts[String(options.expectStatus)] ?? 0
  return {
    id: options.id,
    name: options.name,
    kind: options.kind,
    expectStatus: options.expectStatus,
    rps: result.rps,
    requests: result.requests,
    latencyMs: result.latencyMs,
    statusCounts: result.statusCounts,
    unexpected: result.requests - expected + result.errors,
    cpuUsPerRequest: result.requests > 0 ? cpuMs * 1000 / result.requests : 0,
    coresUsed: result.elapsedSeconds > 0 ? cpuMs / 1000 / result.elapsedSeconds : 0,
    elapsedSeconds: result.elapsedSeconds,
    peakRssMb: processes[0]?.peakRssMb ?? 0,
    processes,
    notes: options.notes ?? []
  }
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] ?? 0 : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2
}

/**
 * A row measured in several rounds: medians of req/s, percentiles, CPU per request and cores, sums of
 * counts, the highest peak. CPU is a median like the rest: on a shared 2-vCPU machine one disturbed round
 * costs every row more CPU per request (the committed run of 16:26 had a round at half speed throughout),
 * and a pooled figure carried that round into every ratio.
 */
export function combine (runs: Row[]): Row {
  const [first] = runs
  if (!first) throw new Error('no runs to combine')
  if (runs.length === 1) return first
  const statusCounts: Record<string, number> = {}
  for (const run of runs) for (const [status, count] of Object.entries(run.statusCounts)) statusCounts[status] = (statusCounts[status] ?? 0) + count
  const requests = runs.reduce((sum, run) => sum + run.requests, 0)
  const elapsedSeconds = runs.reduce((sum, run) => sum + run.elapsedSeconds, 0)
  const processes = first.processes.map((p, index) => ({
    name: p.name,
    cpuMs: runs.reduce((sum, run) => sum + (run.processes[index]?.cpuMs ?? 0), 0),
    peakRssMb: Math.max(...runs.map((run) => run.processes[index]?.peakRssMb ?? 0))
  }))
  return {
    ...first,
    rps: median(runs.map((run) => run.rps)),
    rounds: runs.map((run) => Math.round(run.rps)),
    requests,
    latencyMs: {
      p50: median(runs.map((run) => run.latencyMs.p50)),
      p99: median(runs.map((run) => run.latencyMs.p99)),
      max: Math.max(...runs.map((run) => run.latencyMs.max))
    },
    statusCounts,
    unexpected: runs.reduce((sum, run) => sum + run.unexpected, 0),
    cpuUsPerRequest: median(runs.map((run) => run.cpuUsPerRequest)),
    cpuRounds: runs.map((run) => run.cpuUsPerRequest),
    coresUsed: median(runs.map((run) => run.coresUsed)),
    elapsedSeconds,
    peakRssMb: processes[0]?.peakRssMb ?? 0,
    processes,
    notes: [...new Set(runs.flatMap((run) => run.notes))]
  }
}

/** This row's req/s, CPU per request and p99 over another row's. */
export function ratio (row: Row, other: Row | undefined): Ratio | undefined {
  if (!other || other.rps === 0 || other.cpuUsPerRequest === 0) return undefined
  return {
    row: other.id,
    rps: row.rps / other.rps,
    cpu: row.cpuUsPerRequest / other.cpuUsPerRequest,
    p99: other.latencyMs.p99 > 0 ? row.latencyMs.p99 / other.latencyMs.p99 : 0
  }
}

export function machine () {
  const cpu = cpus()
  return {
    node: process.version,
    openssl: process.versions.openssl,
    cpus: cpu.length,
    cpuModel: cpu[0]?.model ?? 'unknown',
    loadavg: loadavg().map((value) => Number(value.toFixed(2)))
  }
}
