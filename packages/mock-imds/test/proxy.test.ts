import assert from 'node:assert/strict'
import { request } from 'node:http'
import { after, before, test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { build } from './helpers.ts'

let app: FastifyInstance
let port: number
before(async () => {
  app = await build({ host: '127.0.0.1' })
  await app.listen({ host: '127.0.0.1', port: 0 })
  port = (app.server.address() as { port: number }).port
})
after(() => app.close())

/** A request the way an HTTP proxy receives it: the absolute URL as the request target. */
function viaProxy (target: string, headers: Record<string, string> = {}): Promise<{ status: number, body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: target, headers }, (response) => {
      let body = ''
      response.setEncoding('utf8').on('data', (chunk) => { body += chunk }).on('end', () => resolve({ status: response.statusCode ?? 0, body }))
    }).on('error', reject).end()
  })
}

test('as HTTP_PROXY, it answers for IMDS at 169.254.169.254, and for nothing else', async () => {
  const token = await viaProxy('http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=api://msi-pair-api', { metadata: 'true' })
  assert.equal(token.status, 200)
  assert.equal(typeof JSON.parse(token.body).access_token, 'string')
  // DefaultAzureCredential's probe: no query, no Metadata header. Any answer means "available".
  assert.equal((await viaProxy('http://169.254.169.254/metadata/identity/oauth2/token')).status, 400)
  for (const target of ['http://example.com/metadata/identity/oauth2/token', 'http://169.254.169.254.evil.example/metadata/identity/oauth2/token', 'http://169.254.169.254:8080/metadata/identity/oauth2/token']) {
    assert.equal((await viaProxy(target, { metadata: 'true' })).status, 404, target)
  }
})
