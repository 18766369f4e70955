import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import type { BenchResults } from '../../bench/lib/report.ts'

// `npm run bench -- --quick` as a user runs it, in its own process: this checks that the harness
// works and that its counts are right (JWKS fetches under a flood, token requests under a cold
// burst), never how fast anything is.
const root = fileURLToPath(new URL('../../', import.meta.url))
const out = mkdtempSync(join(tmpdir(), 'msi-pair-bench-test-'))
let results: BenchResults
let output = ''

before(async () => {
  const child = spawn(process.execPath, ['bench/run.ts', '--quick', '--out', out], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  // Bounded: SIGINT makes the harness stop every process it started; SIGKILL if even that hangs.
  // A minute on a quiet machine; a shared one can take several to start a dozen processes.
  const stop = setTimeout(() => child.kill('SIGINT'), 300_000)
  const kill = setTimeout(() => child.kill('SIGKILL'), 320_000)
  const [code] = await once(child, 'exit')
  clearTimeout(stop)
  clearTimeout(kill)
  assert.equal(code, 0, `bench --quick failed:\n${output}`)
  results = JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8')) as BenchResults
}, { timeout: 330_000 })

after(() => { rmSync(out, { recursive: true, force: true }) })

const expectedRows = ['1', '1b', '2', '2i', '3', '3e', '4a', '4ae', '4b', '4c', '5a1', '5a2', '5a3', '5b1', '5b2', '5b3', '5c1', '5c2', '5c3', '6a', '6b']
const invalidRows = ['4a', '4ae', '4b', '4c', '5a3', '5b3', '5c3']

test('every row was measured, with sane numbers', () => {
  assert.deepEqual(results.rows.map((row) => row.id), expectedRows)
  for (const row of results.rows) {
    assert.ok(row.rps > 0, `row ${row.id}: ${row.rps} req/s`)
    assert.ok(row.requests > 0, `row ${row.id}: no requests`)
    assert.ok(row.latencyMs.p50 > 0 && row.latencyMs.p50 <= row.latencyMs.p99 && row.latencyMs.p99 <= row.latencyMs.max, `row ${row.id}: latencies ${JSON.stringify(row.latencyMs)}`)
    assert.ok(row.peakRssMb > 10, `row ${row.id}: peak RSS ${row.peakRssMb} MB`)
    assert.ok(row.cpuUsPerRequest >= 0, `row ${row.id}: CPU ${row.cpuUsPerRequest}`)
    assert.ok(row.coresUsed >= 0 && row.coresUsed <= results.meta.cpus + 0.5, `row ${row.id}: ${row.coresUsed} cores`)
  }
  assert.ok(results.burst, 'the cold burst ran')
})

test('valid rows got 200 on every request, invalid rows 401 on every request', () => {
  for (const row of results.rows) {
    const expected = invalidRows.includes(row.id) ? 401 : 200
    assert.equal(row.expectStatus, expected, `row ${row.id}`)
    assert.deepEqual(Object.keys(row.statusCounts), [String(expected)], `row ${row.id}: ${JSON.stringify(row.statusCounts)}`)
    assert.equal(row.unexpected, 0, `row ${row.id}: ${row.unexpected} unexpected answers`)
  }
  assert.deepEqual(results.burst?.statusCounts, { 200: results.burst?.concurrency })
  assert.equal(results.burst?.errors, 0)
})

test('ratios are computed against jose\'s row of the same kind and against the bare row', () => {
  const byId = new Map(results.rows.map((row) => [row.id, row]))
  assert.equal(byId.get('2')?.vsJose?.row, '5c1')
  assert.equal(byId.get('3')?.vsJose?.row, '5c2')
  assert.equal(byId.get('4a')?.vsJose?.row, '5c3')
  assert.equal(byId.get('5a2')?.vsJose?.row, '5c2')
  assert.equal(byId.get('5c2')?.vsJose, undefined, 'jose is not compared with itself')
  assert.equal(byId.get('2')?.vsBare?.row, '1')
  assert.equal(byId.get('6a')?.vsBare?.row, '6b')
  const two = byId.get('2')
  const one = byId.get('1')
  const jose = byId.get('5c1')
  assert.ok(two && one && jose)
  assert.ok(Math.abs((two.vsBare?.rps ?? 0) - two.rps / one.rps) < 1e-9)
  assert.ok(Math.abs((two.vsBare?.cpu ?? 0) - two.cpuUsPerRequest / one.cpuUsPerRequest) < 1e-9)
  assert.ok(Math.abs((two.vsJose?.rps ?? 0) - two.rps / jose.rps) < 1e-9)
})

test('the random-kid flood caused at most one JWKS fetch per cooldown', () => {
  const flood = results.rows.find((row) => row.id === '4c')
  assert.ok(flood?.allowedJwksFetches !== undefined && flood.jwksFetches !== undefined)
  assert.ok(flood.requests > 100, 'the flood sent requests')
  assert.ok(flood.jwksFetches <= flood.allowedJwksFetches, `${flood.jwksFetches} JWKS fetches, ${flood.allowedJwksFetches} allowed (${results.meta.cooldown})`)
})

test('the cold burst of 1,000 concurrent calls caused exactly one token request', () => {
  assert.equal(results.burst?.concurrency, 1000)
  assert.equal(results.burst?.tokenRequests, 1, `counted by ${results.burst?.countedBy}`)
  // The burst must arrive while the first acquisition is in flight, else it cannot catch a caller
  // without single flight: just before it, the caller was not ready (no token yet).
  assert.equal(results.burst?.readyBefore, 503, 'the caller had no token yet when the burst left')
})

test('overload: twice row 3\'s capacity (and 0.8x row 1 when that is less) offered to the api with and without shedding; valid tokens only ever get 200 or 503', () => {
  const overload = results.overload ?? []
  const capacity = results.rows.find((row) => row.id === '3')?.rps ?? 0
  const limit = results.rows.find((row) => row.id === '1')?.rps ?? 0
  const rates = 2 * capacity > 0.8 * limit && limit > capacity ? [2 * capacity, 0.8 * limit] : [2 * capacity]
  assert.equal(overload.length, 2 * rates.length)
  for (const [i, run] of overload.entries()) {
    const rate = rates[Math.floor(i / 2)] as number
    assert.ok(Math.abs(run.offeredRps - rate) < 1e-6, `${run.target}: offered ${run.offeredRps}, expected ${rate}`)
    assert.ok(run.sent > 0, `${run.target}: nothing sent`)
    for (const status of Object.keys(run.statusCounts)) assert.ok(['200', '503', 'no answer'].includes(status), `${run.target}: ${status}`)
    assert.ok(run.shareRefused >= 0 && run.shareRefused <= 1)
    if (i % 2 === 1) assert.equal(run.statusCounts['503'], undefined, `${run.target}: the api without shedding never refuses`)
  }
})

test('the Markdown table has a line per row', () => {
  const table = readFileSync(join(out, 'latest.md'), 'utf8')
  for (const id of expectedRows) assert.match(table, new RegExp(`^\\| ${id} \\|`, 'm'))
})
