import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import { runOpenLoop } from '../../bench/lib/open-loop.ts'

test('open loop: answers after the deadline are counted by the second their request was due', async (t) => {
  // Slow (300 ms) for the first 600 ms of the run, then at once: every late answer was due in second 1.
  let firstAt: number | undefined
  const server = createServer((_request, response) => {
    firstAt ??= performance.now()
    const slow = performance.now() - firstAt < 600
    setTimeout(() => { response.writeHead(200, { 'content-length': '2' }).end('ok') }, slow ? 300 : 0)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.after(() => { server.close() })
  const { port } = server.address() as AddressInfo
  const result = await runOpenLoop({ url: `http://127.0.0.1:${port}`, path: '/', rate: 200, connections: 8, seconds: 2, drainMs: 2000, deadlineMs: 100, tokens: ['x'] })
  const late = (result.latenciesByStatus['200'] ?? []).filter((ms) => ms > 100).length
  assert.equal(result.sent, 400)
  assert.equal(result.statusCounts['200'], 400)
  assert.ok(late > 50, `the slow start made answers late (${late})`)
  assert.equal(result.lateByDueSecond.length, 2)
  assert.equal(result.lateByDueSecond[0], late, 'all of them due in the first second')
  assert.equal(result.lateByDueSecond[1], 0)
})
