import type { BenchSettings, Row } from './rows.ts'

export interface Burst {
  concurrency: number
  statusCounts: Record<string, number>
  errors: number
  elapsedMs: number
  tokenRequests: number
  countedBy: string
}

export interface Target { goal: string, measured: string, met: boolean }

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
  burst: Burst | null
  targets: Target[]
}

const fixed = (value: number | undefined, digits: number) => value === undefined || !Number.isFinite(value) ? '' : value.toFixed(digits)
const ratio = (value: number | undefined) => value === undefined ? '' : `${value.toFixed(2)}x`

function extra (row: Row): string {
  const parts: string[] = []
  if (row.jwksFetches !== undefined) parts.push(`JWKS fetches: ${row.jwksFetches}${row.allowedJwksFetches !== undefined ? ` (allowed ${row.allowedJwksFetches})` : ''}`)
  if (row.unexpected > 0) {
    const statuses = Object.entries(row.statusCounts).filter(([status]) => status !== String(row.expectStatus))
    parts.push(`**${row.unexpected} unexpected** (${statuses.map(([s, n]) => `${n}× ${s}`).join(', ') || 'no answer'})`)
  }
  parts.push(...row.notes)
  if (row.rounds) parts.push(`rounds: ${row.rounds.join(' / ')} req/s`)
  return parts.join('; ')
}

/** The Markdown the README quotes: one table, then the targets, then how the numbers were made. */
export function markdown (results: BenchResults): string {
  const { meta } = results
  const lines = [
    '| # | Row | expect | req/s | p50 ms | p99 ms | max ms | CPU µs/req | peak RSS MB | vs | req/s ratio | p99 ratio | notes |',
    '|---|---|---|--:|--:|--:|--:|--:|--:|---|--:|--:|---|'
  ]
  for (const row of results.rows) {
    lines.push(`| ${row.id} | ${row.name} | ${row.expectStatus} | ${Math.round(row.rps)} | ${fixed(row.latencyMs.p50, 2)} | ${fixed(row.latencyMs.p99, 2)} | ${fixed(row.latencyMs.max, 1)} | ${fixed(row.cpuUsPerRequest, 0)} | ${fixed(row.peakRssMb, 0)} | ${row.baseline ?? ''} | ${ratio(row.rpsRatio)} | ${ratio(row.p99Ratio)} | ${extra(row)} |`)
  }
  const out = [lines.join('\n'), '']
  if (results.burst) {
    const b = results.burst
    out.push(`Cold burst: ${b.concurrency} concurrent GET /call against a caller just started: ${Object.entries(b.statusCounts).map(([s, n]) => `${n}× ${s}`).join(', ')}${b.errors ? `, ${b.errors} without answer` : ''} in ${Math.round(b.elapsedMs)} ms; **${b.tokenRequests} token request(s)** reached mock-imds (counted by ${b.countedBy}).`, '')
  }
  out.push('Targets of issue 8:', '')
  for (const target of results.targets) out.push(`- ${target.met ? 'met' : '**not met**'}: ${target.goal} (measured: ${target.measured})`)
  const s = meta.settings
  out.push('', `${meta.date}, ${meta.cpus} × ${meta.cpuModel}, Node ${meta.node} (OpenSSL ${meta.openssl}); ${s.connections} connections; every row ${s.rounds > 1 ? `${s.rounds} times, rows interleaved round after round, each time ` : ''}${s.warmupSeconds} s warm-up + ${s.durationSeconds} s measured${s.rounds > 1 ? ' (req/s and percentiles: medians of the rounds; max: the highest)' : ''}; floods once, at the end${s.quick ? ' (--quick: checks the harness, not the speed)' : ''}; load average ${meta.loadavgBefore.join(' ')} before, ${meta.loadavgAfter.join(' ')} after. ${meta.note}`)
  return out.join('\n') + '\n'
}
