import assert from 'node:assert/strict'
import { test } from 'node:test'
import { flavours, getJson, metric, startBackend, startCaller, timed } from './helpers.ts'

// A busy IMDS answers every token request in seconds (scale sets under load). The caller runs with
// its production deadlines (5 s per attempt, 10 s per request, 60 s per acquisition): the first
// attempt is cut at 5 s, the next may wait for the rest of the deadline, so an endpoint that works,
// however slowly, ends with a token held, without a restart. Meanwhile each /call waits its 10 s and
// gets a 503 that says the token is still being fetched. All four endpoints run at once (~1 min).
const production = {
  TOKEN_ATTEMPT_TIMEOUT_MS: '5000',
  TOKEN_WAIT_TIMEOUT_MS: '10000',
  TOKEN_ACQUISITION_DEADLINE_MS: '60000',
  TOKEN_RETRY_BASE_DELAY_MS: '500',
  TOKEN_RETRY_MAX_DELAY_MS: '15000'
}
const [imds, identity] = flavours as [typeof flavours[number], typeof flavours[number]]

test('an identity endpoint that answers every token request slowly still yields a token', { concurrency: true }, async (t) => {
  const cases = [
    { flavour: imds, latencyMs: 6000 },
    { flavour: imds, latencyMs: 20_000 },
    { flavour: imds, latencyMs: 50_000 },
    { flavour: identity, latencyMs: 6000 }
  ]
  // The stacks start one after another (twelve processes starting at once overload a small
  // machine), then their timelines run side by side.
  let starting = Promise.resolve()
  await Promise.all(cases.map(({ flavour, latencyMs }) => t.test(`${flavour.name}: every token request answered in ${latencyMs / 1000} s`, async (t) => {
    const turn = starting.then(async () => {
      const backend = await startBackend(t, {}, flavour)
      await backend.mock.admin.addFault({ target: 'token', mode: 'latency', latencyMs })
      return { backend, caller: await startCaller(t, flavour, backend, production) }
    })
    starting = turn.then(() => {}, () => {})
    const { backend, caller } = await turn
    const started = Date.now()

    const waiting: Array<Record<string, unknown>> = []
    let first: { status: number, body: Record<string, unknown> } | undefined
    while (Date.now() - started < latencyMs + 30_000) {
      const call = await timed(() => getJson(`${caller.url}/call`))
      if (call.value.status === 200) { first = call.value; break }
      assert.equal(call.value.status, 503, JSON.stringify(call.value.body))
      assert.ok(call.ms > 9000, `a request waits its 10 s before the 503 (${Math.round(call.ms)} ms)`)
      waiting.push(call.value.body)
    }
    const tookS = Math.round((Date.now() - started) / 1000)
    assert.ok(first, `no token after ${tookS} s; the last answer: ${JSON.stringify(waiting.at(-1))}`)
    t.diagnostic(`token held after ${tookS} s, ${waiting.length} requests got a 503 meanwhile`)
    assert.ok(first.body.aud, 'the api accepted the token')

    // Every request before it: a 503 that says the token is still being fetched, and why it waits.
    assert.ok(waiting.length >= Math.floor(latencyMs / 10_000), `${waiting.length} waiting requests`)
    for (const body of waiting) {
      assert.equal(body.error, 'token_unavailable')
      assert.equal(body.fetching, true)
      assert.match(String(body.message), /still being fetched/)
    }
    // One attempt cut at 5 s, one that waited long enough: no storm on a busy endpoint.
    const requests = (await backend.mock.admin.state()).tokenRequests
    assert.ok(requests >= 2 && requests <= 3, `${requests} token requests`)
    assert.equal(await metric(caller.url, 'token_acquisition_duration_seconds_count', { result: 'success' }), 1)
    assert.equal((await getJson(`${caller.url}/readyz`)).status, 200)
    assert.equal((await getJson(`${caller.url}/call`)).status, 200, 'served from the held token')
  })))
})
