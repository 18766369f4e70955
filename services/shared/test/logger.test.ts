import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import { loggerOptions, redactUrl } from '../logger.ts'
import { notFoundPlugin } from '../not-found.ts'

test('credentials in a query string are blanked out, other parameters kept', () => {
  assert.equal(redactUrl('/claims?access_token=eyJabc.def.ghi&x=1'), '/claims?access_token=[redacted]&x=1')
  assert.equal(redactUrl('/a?x=1&Token=secret#frag'), '/a?x=1&Token=[redacted]#frag')
  assert.equal(redactUrl('/metadata/identity/oauth2/token?resource=api://x'), '/metadata/identity/oauth2/token?resource=api://x')
})

test('request logs carry neither the Authorization header nor a token in the URL', async (t) => {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
  const options = loggerOptions('info') as object
  const app = Fastify({ logger: { ...options, stream } })
  app.get('/echo', async (request) => {
    request.log.info({ headers: request.headers }, 'headers seen')
    return {}
  })
  t.after(() => app.close())
  const token = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl'
  await app.inject({ url: `/echo?access_token=${token}`, headers: { authorization: `Bearer ${token}` } })
  const log = lines.join('')
  assert.match(log, /"url":"\/echo\?access_token=\[redacted\]"/)
  assert.match(log, /headers seen/)
  assert.equal(log.includes(token), false)
})

test('a 404 does not echo a query-string token back to the client', async () => {
  const app = Fastify({ logger: false })
  await app.register(notFoundPlugin)
  const response = await app.inject({ url: '/nope?access_token=eyJabc.def.ghi&x=1' })
  assert.equal(response.statusCode, 404)
  assert.equal(response.json().message, 'Route GET:/nope?access_token=[redacted]&x=1 not found')
  assert.ok(!response.body.includes('eyJabc'))
})
