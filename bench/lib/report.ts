import type { BenchSettings, Row } from './rows.ts'

export interface Burst {
  concurrency: number
  statusCounts: Record<string, number>
  errors: number
  elapsedMs: number
  tokenRequests: number
  countedBy: string
  /** The latency fault on mock-imds's first token answer, in ms. */
  faultMs?: number
  /** How long after the caller was started the burst was sent, in ms (the caller started its first acquisition then). */
  sentAfterMs?: number
  /** The caller's /readyz status just before the burst: 503 (no token yet) shows the acquisition still in flight. */
  readyBefore?: number
}

export interface Target { goal: string, measured: string, met: boolean }

/** Twice the measured capacity offered open loop to one api, for a while. */
export interface Overload {
  target: string
  /** req/s the row it is twice of measured (row 3, closed loop). */
  capacityRps: number
  offeredRps: number
  seconds: number
  connections: number
  /** The client's deadline: an answer later than this after the request was due came for a caller already gone. */
  giveUpMs: number
  sent: number
  statusCounts: Record<string, number>
  /** Answered after giveUpMs (work for a caller already gone), or never. */
  late: number
  /** The late ones by the second of the run their request was due in (OpenLoopResult.lateByDueSecond). */
  lateByDueSecond?: number[]
  /** How late the generator's send timer fired at most, in ms (OpenLoopResult.generatorLagMaxMs). */
  generatorLagMaxMs?: number
  acceptedMs: { p50: number, p99: number, max: number }
  refusedMs: { p50: number, p99: number, max: number }
  shareRefused: number
}

export interface BenchResults {
  meta: {
    date: string
    node: string
    openssl: string
    cpus: number
    cpuModel: string
    loadavgBefore: number[]
    loadavgAfter: number[]
    note: string
    settings: BenchSettings
    cooldown: string
  }
  rows: Row[]
  overload?: Overload[]
  burst: Burst | null
  targets: Target[]
}

const fixed = (value: number | undefined, digits: number) => value === undefined || !Number.isFinite(value) ? '' : value.toFixed(digits)
const times = (value: number | undefined) => value === undefined || !Number.isFinite(value) || value === 0 ? '' : `${value.toFixed(2)}x`

function extra (row: Row): string {
  const parts: string[] = []
  if (row.jwksFetches !== undefined) parts.push(`JWKS fetches: ${row.jwksFetches}${row.allowedJwksFetches !== undefined ? ` (allowed ${row.allowedJwksFetches})` : ''}`)
  if (row.unexpected > 0) {
    const statuses = Object.entries(row.statusCounts).filter(([status]) => status !== String(row.expectStatus))
    parts.push(`**${row.unexpected} unexpected** (${statuses.map(([s, n]) => `${n}× ${s}`).join(', ') || 'no answer'})`)
  }
  parts.push(...row.notes)
  if (row.rounds) parts.push(`rounds: ${row.rounds.join(' / ')} req/s${row.cpuRounds ? `, ${row.cpuRounds.map((us) => us.toFixed(0)).join(' / ')} µs` : ''}`)
  return parts.join('; ')
}

/** The Markdown the README quotes: one table, then the targets, then how the numbers were made. */
export function markdown (results: BenchResults): string {
  const { meta } = results
  const lines = [
    '| # | Row | expect | req/s | p50 ms | p99 ms | max ms | CPU µs/req | cores | peak RSS MB | req/s ÷ jose | CPU ÷ jose | req/s ÷ bare | CPU ÷ bare | p99 ÷ bare | notes |',
    '|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|'
  ]
  for (const row of results.rows) {
    const jose = row.vsJose
    const bare = row.vsBare
    lines.push(`| ${row.id} | ${row.name} | ${row.expectStatus} | ${Math.round(row.rps)} | ${fixed(row.latencyMs.p50, 2)} | ${fixed(row.latencyMs.p99, 2)} | ${fixed(row.latencyMs.max, 1)} | ${fixed(row.cpuUsPerRequest, 0)} | ${fixed(row.coresUsed, 2)} | ${fixed(row.peakRssMb, 0)} | ${times(jose?.rps)} | ${times(jose?.cpu)} | ${times(bare?.rps)}${bare && bare.row !== '1' ? ` (${bare.row})` : ''} | ${times(bare?.cpu)} | ${times(bare?.p99)} | ${extra(row)} |`)
  }
  const out = [lines.join('\n'), '']
  if (results.burst) {
    const b = results.burst
    const fault = b.faultMs === undefined ? '' : ` while its first token request was in flight (mock-imds held it ${b.faultMs} ms; the burst left ${Math.round(b.sentAfterMs ?? 0)} ms after the caller was started, its /readyz answering ${b.readyBefore ?? '?'} just before)`
    out.push(`Cold burst: ${b.concurrency} concurrent GET /call against a caller just started${fault}: ${Object.entries(b.statusCounts).map(([s, n]) => `${n}× ${s}`).join(', ')}${b.errors ? `, ${b.errors} without answer` : ''} in ${Math.round(b.elapsedMs)} ms; **${b.tokenRequests} token request(s)** reached mock-imds (counted by ${b.countedBy}).`, '')
  }
  if (results.overload && results.overload.length > 0) {
    out.push('Overload: twice the capacity measured by row 3 (distinct tokens), and 0.8x row 1 when that is less, offered open loop over raw keep-alive sockets, pipelined when busy (latency counted from when each request was due); "late" counts answers that came after the client\'s deadline, or never.', '')
    out.push('| api | offered req/s | s | connections | sent | 200 | 503 | refused | late | accepted p50 / p99 / max ms | refused p99 ms | generator lag max ms |', '|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|')
    for (const o of results.overload) {
      out.push(`| ${o.target} | ${Math.round(o.offeredRps)} (${(o.offeredRps / o.capacityRps).toFixed(2)} × ${Math.round(o.capacityRps)}) | ${o.seconds} | ${o.connections} | ${o.sent} | ${o.statusCounts['200'] ?? 0} | ${o.statusCounts['503'] ?? 0} | ${(o.shareRefused * 100).toFixed(0)}% | ${o.late} (deadline ${o.giveUpMs} ms)${o.late > 0 && o.lateByDueSecond ? `; due in second ${o.lateByDueSecond.map((n, second) => n > 0 ? `${second + 1}: ${n}` : '').filter(Boolean).join(', ')}` : ''} | ${fixed(o.acceptedMs.p50, 1)} / ${fixed(o.acceptedMs.p99, 1)} / ${fixed(o.acceptedMs.max, 0)} | ${fixed(o.refusedMs.p99, 1)} | ${fixed(o.generatorLagMaxMs ?? 0, 0)} |`)
    }
    out.push('')
  }
  out.push('Goals (issue 15, and issue 8 where marked):', '')
  for (const target of results.targets) out.push(`- ${target.met ? 'met' : '**not met**'}: ${target.goal} (measured: ${target.measured})`)
  const s = meta.settings
  out.push('', `${meta.date}, ${meta.cpus} × ${meta.cpuModel}, Node ${meta.node} (OpenSSL ${meta.openssl}); ${s.connections} connections; every row ${s.rounds > 1 ? `${s.rounds} times, rows interleaved round after round, each time ` : ''}${s.warmupSeconds} s warm-up + ${s.durationSeconds} s measured${s.rounds > 1 ? ' (req/s, percentiles and CPU: medians of the rounds; max and peak RSS: the highest)' : ''}; floods once, at the end${s.quick ? ' (--quick: checks the harness, not the speed)' : ''}; load average ${meta.loadavgBefore.join(' ')} before, ${meta.loadavgAfter.join(' ')} after. ${meta.note}`)
  return out.join('\n') + '\n'
}
