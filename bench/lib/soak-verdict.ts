import type { RateSample } from './load.ts'

export interface ServiceSample {
  rssMb: number
  heapMb: number | null
  /** The service's own counters (cumulative since it started), by a readable name. */
  counters?: Record<string, number>
}

export interface Sample {
  /** seconds since the start */
  t: number
  streams: Array<Omit<RateSample, 'latencies' | 'latenciesByStatus'> & { rps: number, p99Ms: number }>
  services: Record<string, ServiceSample>
}

export interface SoakEvent { t: number, what: string, ok: boolean, detail?: string }

/** The token kinds of the api stream that must be accepted; every other kind must be rejected. */
export const validKinds = new Set(['valid, reused', 'valid, unique'])

export type Counts = Record<string, Record<string, number>>

export function addCounts (into: Counts, from: Counts): void {
  for (const [kind, statuses] of Object.entries(from)) {
    const target = into[kind] ?? (into[kind] = {})
    for (const [status, count] of Object.entries(statuses)) target[status] = (target[status] ?? 0) + count
  }
}

export const percentile = (values: number[], p: number): number => {
  if (values.length === 0) return 0
  const sorted = Float64Array.from(values).sort()
  return sorted[Math.min(sorted.length - 1, Math.ceil(p / 100 * sorted.length) - 1)] ?? 0
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] ?? 0 : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2
}

export interface Verdict {
  passed: boolean
  failures: string[]
  /** RSS at the end over RSS at the baseline, minus 1, per service. */
  rssGrowth: Record<string, number>
  totals: Record<string, Counts>
}

/**
 * The fail conditions: a valid request rejected, a bad one accepted, a 5xx to a valid
 * request (or, for the caller, anything but 200 while it held an unexpired token), RSS still growing
 * (see below: over 5% through the second half of a run of 4 minutes or more, else over 10% after the
 * first minute).
 */
export function verdict (samples: Sample[], events: SoakEvent[], durationS: number): Verdict {
  const failures: string[] = []
  const totals: Record<string, Counts> = {}
  let callerNonOkWithToken = 0
  let dropped = 0
  for (const sample of samples) {
    for (const stream of sample.streams) {
      addCounts(totals[stream.name] ?? (totals[stream.name] = {}), stream.byKind)
      if (stream.name === 'caller') callerNonOkWithToken += stream.nonOkWithToken
      dropped += stream.dropped
    }
  }
  for (const [kind, statuses] of Object.entries(totals.api ?? {})) {
    const valid = validKinds.has(kind)
    for (const [status, count] of Object.entries(statuses)) {
      if (valid && status !== '200') {
        failures.push(`api: ${count} "${kind}" request(s) answered ${status} (${status.startsWith('5') ? 'a 5xx to a valid request' : 'a valid request rejected'})`)
      } else if (!valid && status === '200') {
        failures.push(`api: ${count} "${kind}" request(s) accepted`)
      }
    }
  }
  if (callerNonOkWithToken > 0) {
    const statuses = Object.entries(totals.caller?.call ?? {}).filter(([status]) => status !== '200').map(([s, n]) => `${n}× ${s}`).join(', ')
    failures.push(`caller: ${callerNonOkWithToken} /call answered other than 200 while it held an unexpired token (every non-200: ${statuses})`)
  }
  if (dropped > 0) failures.push(`${dropped} request(s) never sent: the targets fell more than 10 s behind the fixed rate`)

  // RSS saw-tooths with every GC, so medians of windows are compared, never two single samples. A run
  // of 4 minutes or more compares the minute before its middle with its last minute, and fails on 5%:
  // a leak grows through the second half too, while a heap settling into its size does not. (The
  // caller's heap grows to its working size for about two minutes: in a 10-minute soak its RSS went
  // 278 -> 348 MB in minutes 1-2, then 348 -> 366 MB over the last eight, its heap saw-toothing 40-200
  // MB throughout; against the second minute that read as 16% growth.) Shorter runs compare the minute
  // after the first (a run under 2 min: its quarters) with the last, and fail on 10%.
  const windowS = durationS >= 120 ? 60 : durationS / 4
  const long = durationS >= 240
  const baselineStartS = long ? durationS / 2 - windowS : windowS
  const limit = long ? 0.05 : 0.10
  const distinct = samples.filter((sample, i, all) => i === 0 || sample.t !== all[i - 1]?.t)
  const baseline = distinct.filter((sample) => sample.t > baselineStartS && sample.t <= baselineStartS + windowS)
  const end = distinct.filter((sample) => sample.t > durationS - windowS)
  const rssGrowth: Record<string, number> = {}
  if (baseline.length > 0 && end.length > 0 && end[0] !== baseline[0]) {
    for (const name of Object.keys(baseline[0]?.services ?? {})) {
      const before = median(baseline.map((sample) => sample.services[name]?.rssMb ?? 0))
      const after = median(end.map((sample) => sample.services[name]?.rssMb ?? 0))
      const growth = before > 0 ? after / before - 1 : 0
      rssGrowth[name] = growth
      if (growth > limit) failures.push(`${name}: RSS grew ${(growth * 100).toFixed(1)}% from ${Math.round(baselineStartS)}-${Math.round(baselineStartS + windowS)} s to the last ${Math.round(windowS)} s (median ${before.toFixed(0)} -> ${after.toFixed(0)} MB)`)
    }
  }
  for (const event of events.filter((e) => !e.ok)) failures.push(`schedule: "${event.what}" failed at mock-imds (${event.detail ?? ''})`)
  return { passed: failures.length === 0, failures, rssGrowth, totals }
}

export interface MinuteRecord {
  minute: number
  streams: Record<string, { rps: number, p99Ms: number, answered: number, dropped: number, nonOkWithToken: number, byKind: Counts }>
  services: Record<string, ServiceSample>
  /** How much each service counter grew during the minute. */
  counterDeltas: Record<string, Record<string, number>>
  events: string[]
}

/** Per minute: counts summed, p99 over every answer of the minute, memory at the minute's end. */
export function perMinute (samples: Sample[], latencies: Array<{ t: number, stream: string, values: number[] }>, events: SoakEvent[], durationS: number): MinuteRecord[] {
  const minutes: MinuteRecord[] = []
  const inMinute = <T extends { t: number }>(list: T[], minute: number) => list.filter((item) => item.t > minute * 60 && item.t <= (minute + 1) * 60 + 0.5)
  for (let minute = 0; minute * 60 < durationS; minute++) {
    const these = inMinute(samples, minute)
    if (these.length === 0) continue
    const seconds = Math.min(60, durationS - minute * 60)
    const streams: MinuteRecord['streams'] = {}
    for (const name of new Set(these.flatMap((sample) => sample.streams.map((s) => s.name)))) {
      const record = { rps: 0, p99Ms: 0, answered: 0, dropped: 0, nonOkWithToken: 0, byKind: {} as Counts }
      for (const sample of these) {
        const stream = sample.streams.find((s) => s.name === name)
        if (!stream) continue
        addCounts(record.byKind, stream.byKind)
        record.answered += stream.answered
        record.nonOkWithToken += stream.nonOkWithToken
        record.dropped += stream.dropped
      }
      record.rps = record.answered / seconds
      record.p99Ms = percentile(inMinute(latencies, minute).filter((l) => l.stream === name).flatMap((l) => l.values), 99)
      streams[name] = record
    }
    // The first minute counts from the service's start (which includes the run's preparation).
    const previous = samples.filter((sample) => sample.t <= minute * 60).at(-1)
    const endOf = these[these.length - 1]
    const counterDeltas: MinuteRecord['counterDeltas'] = {}
    for (const [service, state] of Object.entries(endOf?.services ?? {})) {
      const deltas: Record<string, number> = {}
      for (const [counter, value] of Object.entries(state.counters ?? {})) {
        deltas[counter] = value - (previous?.services[service]?.counters?.[counter] ?? 0)
      }
      if (Object.keys(deltas).length > 0) counterDeltas[service] = deltas
    }
    minutes.push({ minute: minute + 1, streams, services: endOf?.services ?? {}, counterDeltas, events: inMinute(events, minute).map((e) => e.what) })
  }
  return minutes
}
