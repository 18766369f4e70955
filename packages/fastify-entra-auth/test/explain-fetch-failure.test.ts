import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { test } from 'node:test'
import { runExplainCli } from '../src/explain/cli.ts'
import { fetchErrorReason } from '../src/explain/fetch-failure.ts'
import { API_CLIENT_ID, TENANT, createTestKey, mint } from './helpers/authority.ts'

async function explain (args: string[]): Promise<{ code: number, stdout: string }> {
  let stdout = ''
  const code = await runExplainCli([...args, '--tenant', TENANT, '--audience', API_CLIENT_ID, mint(createTestKey())], {}, {
    stdin: async () => '',
    stdout: (text) => { stdout += text },
    stderr: () => {}
  })
  return { code, stdout }
}

/** A port nothing listens on: bound, noted and closed. */
async function deadPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

test('--keys against a dead authority: the fetch failure once, with its URL and cause', async () => {
  const port = await deadPort()
  const { code, stdout } = await explain(['--keys', '--authority-host', `http://127.0.0.1:${port}`, '--timeout-ms', '1000'])
  assert.equal(code, 1)
  const lines = stdout.split('\n').filter((line) => line.includes('Fetch failed'))
  assert.equal(lines.length, 1, stdout)
  assert.match(lines[0] as string, new RegExp(`Fetch failed: GET http://127\\.0\\.0\\.1:${port}/${TENANT}/(v2\\.0/)?\\.well-known/openid-configuration: ECONNREFUSED \\(connect ECONNREFUSED 127\\.0\\.0\\.1:${port}\\)`))
  assert.doesNotMatch(stdout, /TypeError: fetch failed/)
})

test('--keys against a host that does not resolve: ENOTFOUND and the URL', async () => {
  const { stdout } = await explain(['--keys', '--authority-host', 'http://no-such-host.invalid', '--timeout-ms', '3000'])
  const lines = stdout.split('\n').filter((line) => line.includes('Fetch failed'))
  assert.equal(lines.length, 1, stdout)
  assert.match(lines[0] as string, /Fetch failed: GET http:\/\/no-such-host\.invalid\/.+openid-configuration: (ENOTFOUND|EAI_AGAIN)/)
})

test('--keys against an authority that never answers: a timeout with its deadline', async (t) => {
  const sockets = new Set<import('node:net').Socket>()
  const server = createServer((socket) => { sockets.add(socket) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => { for (const socket of sockets) socket.destroy(); server.close() })
  const { port } = server.address() as { port: number }
  const { stdout } = await explain(['--keys', '--authority-host', `http://127.0.0.1:${port}`, '--timeout-ms', '300'])
  const lines = stdout.split('\n').filter((line) => line.includes('Fetch failed'))
  assert.equal(lines.length, 1, stdout)
  assert.match(lines[0] as string, /Fetch failed: GET http:\/\/127\.0\.0\.1:\d+\/.+openid-configuration: timeout \(no answer within 300 ms\)/)
})

test('fetchErrorReason: a timeout, a cause with a code, an AggregateError of addresses', () => {
  assert.equal(fetchErrorReason(new DOMException('x', 'TimeoutError'), 50), 'timeout (no answer within 50 ms)')
  const refused = Object.assign(new Error('connect ECONNREFUSED ::1:9'), { code: 'ECONNREFUSED' })
  assert.equal(fetchErrorReason(new TypeError('fetch failed', { cause: refused }), 1), 'ECONNREFUSED (connect ECONNREFUSED ::1:9)')
  assert.equal(fetchErrorReason(new TypeError('fetch failed', { cause: new AggregateError([refused]) }), 1), 'ECONNREFUSED (connect ECONNREFUSED ::1:9)')
})
