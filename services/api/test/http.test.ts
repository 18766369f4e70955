import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { test } from 'node:test'
import { TENANT, TestAuthority, appClaims, createTestKey, mint } from '../../../packages/fastify-entra-auth/test/helpers/authority.ts'
import { startApi } from './helpers/api.ts'

/* What only a real socket shows: Node's own header handling in front of the api. */

async function raw (port: number, request: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    // write, not end: a client that half-closes right after its request has it aborted by Node's http
    // server (httpAllowHalfOpen false) as soon as the FIN arrives, before any async route can answer.
    // Connection: close has the server end the exchange.
    const socket = connect(port, '127.0.0.1', () => socket.write(request))
    let data = ''
    socket.setEncoding('latin1').on('data', (chunk: string) => { data += chunk }).on('end', () => resolve(data))
      // Node answers an oversized header and resets the connection while we are still writing.
      .on('error', (error) => { if (data) resolve(data); else reject(error) })
  })
}

test('over real HTTP: duplicated Authorization headers are refused, a 300 KB token never reaches the app', async (t) => {
  const key = createTestKey()
  const authority = await TestAuthority.start({ [TENANT]: [key] })
  t.after(() => authority.stop())
  const api = await startApi(authority.url, { LOG_LEVEL: 'warn' })
  t.after(() => api.app.close())
  await api.app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = api.app.server.address() as { port: number }
  const token = mint(key)

  const single = await raw(port, `GET /claims HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`)
  assert.match(single, /^HTTP\/1\.1 200 /)
  // Node keeps only the first Authorization header in request.headers; the api reads rawHeaders.
  const twice = await raw(port, `GET /claims HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nauthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`)
  assert.match(twice, /^HTTP\/1\.1 400 /)
  assert.match(twice, /www-authenticate: Bearer error="invalid_request"/i)

  const huge = mint(key, appClaims({ padding: 'x'.repeat(300_000) }))
  const tooLarge = await raw(port, `GET /claims HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${huge}\r\nConnection: close\r\n\r\n`)
  assert.match(tooLarge, /^HTTP\/1\.1 431 /)
})
