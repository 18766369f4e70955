import assert from 'node:assert/strict'
import { test } from 'node:test'
import { combine, type Row } from '../../bench/lib/rows.ts'

const run = (rps: number, cpuUsPerRequest: number, coresUsed: number, peakRssMb: number): Row => ({
  id: '2',
  name: 'row',
  kind: 'one',
  expectStatus: 200,
  rps,
  requests: rps * 5,
  latencyMs: { p50: 1, p99: 2, max: 3 },
  statusCounts: { 200: rps * 5 },
  unexpected: 0,
  cpuUsPerRequest,
  coresUsed,
  elapsedSeconds: 5,
  peakRssMb,
  processes: [{ name: 'api', cpuMs: rps * 5 * cpuUsPerRequest / 1000, peakRssMb }],
  notes: []
})

test('combine: req/s, CPU per request and cores are medians of the rounds, so one disturbed round does not move them; peak RSS is the highest', () => {
  // The middle round ran at half speed and twice the CPU per request, as a disturbed round does.
  const row = combine([run(20_000, 40, 0.8, 150), run(10_000, 80, 0.8, 160), run(22_000, 42, 0.92, 155)])
  assert.equal(row.rps, 20_000)
  assert.equal(row.cpuUsPerRequest, 42)
  assert.deepEqual(row.cpuRounds, [40, 80, 42])
  assert.deepEqual(row.rounds, [20_000, 10_000, 22_000])
  assert.equal(row.coresUsed, 0.8)
  assert.equal(row.peakRssMb, 160)
  assert.equal(row.requests, 260_000)
})
