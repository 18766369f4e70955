import assert from 'node:assert/strict'
import { connect, type AddressInfo } from 'node:net'
import { test } from 'node:test'
import Fastify from 'fastify'
import { metricsPlugin } from '../../shared/metrics.ts'
import { OverloadGate, overloadPlugin } from '../src/plugins/overload.ts'

/* OverloadGate and the plugin's decision, on a small app whose signature-check delay is always over its limit. */

async function backloggedApp (holdsToken: (rawHeaders: string[]) => boolean = () => false) {
  const gate = new OverloadGate()
  const app = Fastify({ serverFactory: gate.serverFactory })
  await app.register(metricsPlugin)
  await app.register(overloadPlugin, {
    maxEventLoopDelayMs: 0,
    maxEventLoopUtilization: 0,
    maxSignatureCheckDelayMs: 10,
    signatureCheckDelayMs: () => 1000,
    holdsToken,
    gate,
    sampleIntervalMs: 10,
    retryAfterSeconds: 2
  })
  app.get('/claims', { config: { auth: { roles: ['DoAll'] } } }, async () => ({ ok: true }))
  app.get('/slow', async () => { await new Promise((resolve) => setTimeout(resolve, 300)); return 'slow' })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, port: (app.server.address() as AddressInfo).port }
}

/** Raw HTTP/1.1 on one keep-alive connection: each answer's status line and headers, as the client saw them. */
function rawClient (port: number) {
  const socket = connect(port, '127.0.0.1')
  socket.setEncoding('latin1')
  const heads: string[] = []
  let buffer = ''
  socket.on('data', (chunk: string) => {
    buffer += chunk
    for (let end = buffer.indexOf('\r\n\r\n'); end >= 0; end = buffer.indexOf('\r\n\r\n')) {
      const head = buffer.slice(0, end)
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0)
      if (buffer.length < end + 4 + length) break
      heads.push(head)
      buffer = buffer.slice(end + 4 + length)
    }
  })
  socket.on('error', () => {})
  const closed = new Promise<void>((resolve) => socket.once('close', resolve))
  return { socket, heads, closed, send: (path: string, authorization = 'Bearer t') => socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: ${authorization}\r\n\r\n`) }
}

test('gate: a protected path is refused before Fastify, its headers in the order of the in-Fastify refusal; a held token and unprotected paths are served', async (t) => {
  const { app, port } = await backloggedApp((rawHeaders) => rawHeaders.includes('Bearer held'))
  t.after(() => app.close())
  await new Promise((resolve) => setTimeout(resolve, 50))
  const client = rawClient(port)
  t.after(() => client.socket.destroy())
  client.send('/claims?x=1')
  client.send('/claims', 'Bearer held')
  client.send('/slow')
  while (client.heads.length < 3) await new Promise((resolve) => setTimeout(resolve, 10))
  const [refused, held, unprotected] = client.heads
  assert.match(refused ?? '', /^HTTP\/1\.1 503 /)
  const names = (refused ?? '').split('\r\n').slice(1).map((line) => line.slice(0, line.indexOf(':')).toLowerCase())
  assert.deepEqual(names.slice(0, 4), ['retry-after', 'cache-control', 'content-type', 'content-length'])
  assert.match(refused ?? '', /\r\nretry-after: 2\r\n/i)
  assert.match(held ?? '', /^HTTP\/1\.1 200 /, 'a held token costs no signature check')
  assert.match(unprotected ?? '', /^HTTP\/1\.1 200 /, 'only routes that declare config.auth are refused')
  const injected = await app.inject({ method: 'GET', url: '/claims', headers: { authorization: 'Bearer t' } })
  assert.equal(injected.statusCode, 503, 'inject does not pass the gate: the plugin refuses it in Fastify')
  assert.deepEqual(Object.keys(injected.headers).slice(0, 4), ['retry-after', 'cache-control', 'content-type', 'content-length'])
})

test('gate: a closing app is not held open by refusals with keep-alive: Fastify answers Connection: close and the drain ends', async () => {
  const { app, port } = await backloggedApp()
  await new Promise((resolve) => setTimeout(resolve, 50))
  const client = rawClient(port)
  client.send('/slow')
  await new Promise((resolve) => setTimeout(resolve, 50))
  const started = performance.now()
  const closing = app.close()
  // A client that keeps sending on its connection while the app drains, as a busy caller does.
  const sending = setInterval(() => { if (!client.socket.destroyed) client.send('/claims') }, 100)
  const outcome = await Promise.race([closing.then(() => 'closed'), new Promise((resolve) => setTimeout(() => resolve('still open'), 3000))])
  clearInterval(sending)
  // What the server wrote before it closed the connection is read by now.
  await Promise.race([client.closed, new Promise((resolve) => setTimeout(resolve, 2000))])
  client.socket.destroy()
  await closing
  assert.equal(outcome, 'closed', `app.close() after ${(performance.now() - started).toFixed(0)} ms`)
  assert.match(client.heads[0] ?? '', /^HTTP\/1\.1 200 /, `the request in flight was answered: ${JSON.stringify(client.heads)}`)
})

test('gate: https and http2 are refused at construction, not served as plain HTTP', () => {
  const gate = new OverloadGate()
  assert.throws(() => Fastify({ serverFactory: gate.serverFactory, http2: true } as never), /https and http2 options are not supported/)
})
