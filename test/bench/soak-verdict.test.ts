import assert from 'node:assert/strict'
import { test } from 'node:test'
import { lineChart } from '../../bench/lib/chart.ts'
import { perMinute, verdict, type Sample } from '../../bench/lib/soak-verdict.ts'

// The soak's verdict decides pass or fail after minutes of load: these check it on recorded-shape
// samples, so that a broken rule shows up in seconds rather than after a ten-minute run.

interface Shape {
  t: number
  api?: Record<string, Record<string, number>>
  caller?: Record<string, number>
  nonOkWithToken?: number
  rss?: number
}

function sample ({ t, api = { 'valid, reused': { 200: 10 }, garbage: { 401: 2 } }, caller = { 200: 5 }, nonOkWithToken = 0, rss = 100 }: Shape): Sample {
  const stream = (name: string, byKind: Record<string, Record<string, number>>, nonOk = 0) => ({
    name,
    answered: Object.values(byKind).flatMap((s) => Object.values(s)).reduce((a, b) => a + b, 0),
    dropped: 0,
    byKind,
    nonOkWithToken: nonOk,
    validUntilMs: 0,
    rps: 1,
    p99Ms: 1
  })
  return {
    t,
    streams: [stream('api', api), stream('caller', { call: caller }, nonOkWithToken)],
    services: { api: { rssMb: rss, heapMb: 20, counters: { 'jwks refreshes ok': t / 30 } }, caller: { rssMb: 90, heapMb: 15 } }
  }
}

const steady = (extra: Partial<Shape> = {}) => [0, 30, 60, 90, 120, 150, 180].map((t) => sample({ t, ...extra }))

test('a clean run passes', () => {
  const result = verdict(steady(), [{ t: 10, what: 'keys rotated', ok: true }], 180)
  assert.deepEqual(result.failures, [])
  assert.equal(result.passed, true)
  assert.deepEqual(result.totals.api?.['valid, reused'], { 200: 70 })
})

test('a valid request rejected, or answered 5xx, fails the run', () => {
  const samples = steady()
  samples[3] = sample({ t: 90, api: { 'valid, unique': { 200: 5, 401: 1, 503: 2 } } })
  const result = verdict(samples, [], 180)
  assert.equal(result.passed, false)
  assert.equal(result.failures.length, 2)
  assert.match(result.failures.join('\n'), /1 "valid, unique" request\(s\) answered 401 \(a valid request rejected\)/)
  assert.match(result.failures.join('\n'), /2 "valid, unique" request\(s\) answered 503 \(a 5xx to a valid request\)/)
})

test('a bad token accepted fails the run; bad tokens rejected with any 4xx do not', () => {
  const samples = steady()
  samples[2] = sample({ t: 60, api: { expired: { 401: 3, 200: 1 }, 'wrong audience': { 403: 2 } } })
  const result = verdict(samples, [], 180)
  assert.deepEqual(result.failures, ['api: 1 "expired" request(s) accepted'])
})

test('the caller failing while it holds an unexpired token fails the run, failing without one does not', () => {
  const withToken = steady()
  withToken[4] = sample({ t: 120, caller: { 200: 3, 503: 2 }, nonOkWithToken: 2 })
  assert.match(verdict(withToken, [], 180).failures.join('\n'), /caller: 2 \/call answered other than 200 while it held an unexpired token \(every non-200: 2× 503\)/)
  const withoutToken = steady()
  withoutToken[0] = sample({ t: 0, caller: { 503: 4 }, nonOkWithToken: 0 })
  assert.equal(verdict(withoutToken, [], 180).passed, true)
})

test('RSS growth over 10% after the first minute fails the run; growth during the first minute does not', () => {
  const growing = [0, 30, 60, 90, 120, 150, 180].map((t) => sample({ t, rss: t < 60 ? 50 : 100 + (t - 60) / 5 }))
  const result = verdict(growing, [], 180)
  assert.equal(result.passed, false)
  // Median of 60-120 s (106, 112) against median of the last minute (118, 124): +11%.
  assert.match(result.failures.join('\n'), /^api: RSS grew 11\.0% from 60-120 s to the last 60 s \(median 109 -> 121 MB\)$/m)
  const settled = [0, 30, 60, 90, 120, 150, 180].map((t) => sample({ t, rss: t < 60 ? 50 : 100 + (t - 60) / 30 }))
  assert.equal(verdict(settled, [], 180).passed, true)
  assert.ok((verdict(settled, [], 180).rssGrowth.api ?? 0) > 0.005)
})

test('a run of 4 minutes or more: RSS that settles after a two-minute ramp passes; RSS still growing in the second half fails', () => {
  const times = Array.from({ length: 61 }, (_, i) => i * 10)
  // The caller of a 10-minute soak: a ramp over minutes 1-2, then 348 -> 366 MB over the last eight.
  const settling = times.map((t) => sample({ t, rss: t <= 120 ? 278 + (t / 120) * 70 : 348 + ((t - 120) / 480) * 18 }))
  const settled = verdict(settling, [], 600)
  assert.equal(settled.passed, true, settled.failures.join('\n'))
  assert.ok((settled.rssGrowth.api ?? 0) > 0.01 && (settled.rssGrowth.api ?? 0) < 0.05)
  // A leak of 3 MB a minute on 200 MB: 7% from the minute before the middle to the last minute.
  const leaking = times.map((t) => sample({ t, rss: 200 + (t / 60) * 3 }))
  const leaked = verdict(leaking, [], 600)
  assert.equal(leaked.passed, false)
  assert.match(leaked.failures.join('\n'), /^api: RSS grew 7\.0% from 240-300 s to the last 60 s \(median 214 -> 229 MB\)$/m)
})

test('a fault that mock-imds refused fails the run (the schedule did not happen)', () => {
  const result = verdict(steady(), [{ t: 30, what: 'keys rotated', ok: false, detail: '404' }], 180)
  assert.deepEqual(result.failures, ['schedule: "keys rotated" failed at mock-imds (404)'])
})

test('per-minute records sum the counts of their samples and name their events', () => {
  const latencies = [{ t: 30, stream: 'api', values: [1, 2, 3, 100] }, { t: 90, stream: 'api', values: [5] }]
  const minutes = perMinute(steady(), latencies, [{ t: 61, what: 'keys rotated', ok: true }], 180)
  assert.equal(minutes.length, 3)
  assert.deepEqual(minutes.map((m) => m.minute), [1, 2, 3])
  // Samples at 30 and 60 s fall in the first minute (the one at 0 s precedes it).
  assert.deepEqual(minutes[0]?.streams.api?.byKind['valid, reused'], { 200: 20 })
  assert.equal(minutes[0]?.streams.api?.p99Ms, 100)
  assert.deepEqual(minutes[1]?.events, ['keys rotated'])
  // Counters are cumulative in the samples; a minute reports how much they grew in it.
  assert.deepEqual(minutes.map((m) => m.counterDeltas.api?.['jwks refreshes ok']), [2, 2, 2])
  assert.equal(minutes[0]?.counterDeltas.caller, undefined)
})

test('the chart is an SVG with a path per series and a numbered marker per event', () => {
  const svg = lineChart({
    title: 'soak <test>',
    xLabel: 'minutes',
    panels: [{ title: 'Throughput', unit: 'req/s', series: [{ name: 'api', points: [[0, 1], [1, 3], [2, 2]] }, { name: 'caller', points: [[0, 2], [2, 2]] }] }],
    events: [{ x: 1, label: '1:00 keys rotated' }]
  })
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/)
  assert.match(svg, /<\/svg>\n$/)
  assert.equal(svg.match(/<path /g)?.length, 2)
  assert.match(svg, /soak &lt;test&gt;/)
  assert.match(svg, />1\. 1:00 keys rotated</)
  assert.doesNotMatch(svg, /NaN|undefined/)
})
