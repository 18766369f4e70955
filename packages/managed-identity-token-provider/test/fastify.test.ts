import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { AccessToken, TokenCredential } from '@azure/core-auth'
import Fastify from 'fastify'
import { Registry, register as globalRegistry } from 'prom-client'
import managedIdentityTokenProvider, { ManagedIdentityTokenProvider } from '../src/fastify.ts'

const scope = 'api://some-api/.default'
const metricNames = ['token_acquisition_duration_seconds', 'token_expires_in_seconds', 'token_refresh_failures_total', 'token_requests_total']

/** Answers after 50 ms with a 1 h token; counts its calls. */
class SlowCredential implements TokenCredential {
  calls = 0
  async getToken (): Promise<AccessToken> {
    this.calls++
    await new Promise((resolve) => setTimeout(resolve, 50))
    return { token: `t${this.calls}`, expiresOnTimestamp: Date.now() + 3_600_000 }
  }
}

async function waitUntil (check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

test('the plugin decorates the instance, warms its scopes on ready, reports readiness and metrics on the given registry', async (t) => {
  const registry = new Registry()
  const credential = new SlowCredential()
  const app = Fastify()
  t.after(() => app.close())
  await app.register(managedIdentityTokenProvider, { credential, scopes: [scope], registry })
  // The app wires readiness into its own probe.
  app.get('/readyz', async (_request, reply) => {
    const reason = app.managedIdentity.notReadyReason()
    return reason === null ? { status: 'ready' } : reply.code(503).send({ reason })
  })
  assert.ok(app.managedIdentity instanceof ManagedIdentityTokenProvider)
  assert.equal(managedIdentityTokenProvider[Symbol.for('fastify.display-name') as unknown as keyof typeof managedIdentityTokenProvider], 'managed-identity-token-provider')

  await app.ready()
  assert.equal((await app.inject('/readyz')).statusCode, 503, 'listening never waits for the token')
  await waitUntil(() => app.managedIdentity.notReadyReason() === null, 2000)
  assert.equal((await app.inject('/readyz')).statusCode, 200)
  assert.equal(credential.calls, 1, 'warmed once')

  assert.equal((await app.managedIdentity.getToken(scope)).token, 't1')
  const text = await registry.metrics()
  for (const name of metricNames) assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name)
  assert.match(text, /^token_requests_total\{source="cache",result="success"\} 1$/m)
  assert.match(text, /^token_acquisition_duration_seconds_count\{result="success"\} 1$/m)
  assert.match(text, /^token_expires_in_seconds 3[45]\d\d/m)
  assert.deepEqual(metricNames.filter((name) => globalRegistry.getSingleMetric(name)), [], 'nothing on the global registry')
})

test('without a registry the metrics go on prom-client\'s global one, and leave it when the app closes', async () => {
  const app = Fastify()
  await app.register(managedIdentityTokenProvider, { credential: new SlowCredential() })
  await app.ready()
  assert.deepEqual(metricNames.filter((name) => globalRegistry.getSingleMetric(name)), metricNames)
  assert.equal(app.managedIdentity.notReadyReason(), 'no token requested yet')
  await app.close()
  assert.deepEqual(metricNames.filter((name) => globalRegistry.getSingleMetric(name)), [])
})

/** What @azure/identity throws for an HTTP error: CredentialUnavailableError with MSAL's ServerError as cause. */
const failing = (status: number, errorCode: string, description: string): TokenCredential => ({
  async getToken () {
    throw Object.assign(new Error('ManagedIdentityCredential: Authentication failed.'), {
      name: 'CredentialUnavailableError',
      cause: { status, errorCode, errorMessage: `Description: ${description} - Correlation ID: 3333` }
    })
  }
})
const aadsts = 'AADSTS500011: The resource principal named api://my-api was not found in the tenant named 72f988bf-86f1-41af-91ab-2d7cd011db47. Trace ID: 1111 Correlation ID: 2222'

test('the README\'s route: a token that cannot be had is the app\'s 503 with Retry-After, and the endpoint\'s text stays in the log', async (t) => {
  for (const [status, errorCode, description] of [[400, 'invalid_resource', aadsts], [429, 'throttled', 'too many requests']] as const) {
    await t.test(String(status), async (t) => {
      const lines: string[] = []
      const app = Fastify({ logger: { level: 'error', stream: { write: (line: string) => { lines.push(line) } } } })
      t.after(() => app.close())
      await app.register(managedIdentityTokenProvider, { credential: failing(status, errorCode, description), registry: new Registry(), waitTimeoutMs: 300, retryBaseDelayMs: 10, retryMaxDelayMs: 50 })
      app.get('/orders', async () => (await app.managedIdentity.getToken(scope)).token.length)
      const response = await app.inject('/orders')
      assert.equal(response.statusCode, 503)
      assert.match(String(response.headers['retry-after']), /^[1-9]\d*$/)
      assert.deepEqual(Object.keys(response.json()).sort(), ['code', 'error', 'message', 'statusCode'])
      assert.equal(response.json().code, 'TOKEN_UNAVAILABLE')
      for (const secret of ['AADSTS', '72f988bf', 'Trace ID', 'Correlation', 'too many requests', 'HTTP']) assert.ok(!response.body.includes(secret), `${secret} in ${response.body}`)
      assert.ok(lines.some((line) => line.includes(status === 400 ? 'AADSTS500011' : 'throttled')), `the log has the details: ${lines.join('')}`)
    })
  }
})

test('the error handler leaves other errors to the one before it, and errorHandler: false leaves TokenUnavailableError to the app', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(managedIdentityTokenProvider, { credential: failing(400, 'invalid_resource', aadsts), registry: new Registry() })
  app.get('/boom', async () => { throw Object.assign(new Error('teapot'), { statusCode: 418 }) })
  assert.equal((await app.inject('/boom')).statusCode, 418)

  // Without the handler, Fastify's default one still answers 503 with Retry-After (statusCode,
  // headers), though with the message: an app that turns it off maps the error itself.
  const bare = Fastify()
  t.after(() => bare.close())
  await bare.register(managedIdentityTokenProvider, { credential: failing(400, 'invalid_resource', aadsts), registry: new Registry(), errorHandler: false })
  bare.get('/orders', async () => (await bare.managedIdentity.getToken(scope)).token.length)
  const response = await bare.inject('/orders')
  assert.equal(response.statusCode, 503)
  assert.equal(response.headers['retry-after'], '30')
})

test('the plugin refuses options it sets itself, and passes the provider\'s checks on', async () => {
  await assert.rejects(async () => { await Fastify().register(managedIdentityTokenProvider, { logger: console } as never).ready() }, { name: 'TypeError', message: /logger is set by the plugin/ })
  await assert.rejects(async () => { await Fastify().register(managedIdentityTokenProvider, { clientID: 'x', registry: new Registry() } as never).ready() }, { name: 'TypeError', message: /unknown option "clientID"/ })
  // A refused option registers no metric on the global registry, which outlives the app.
  await assert.rejects(async () => { await Fastify().register(managedIdentityTokenProvider, { maxScopes: 0 }).ready() }, { name: 'RangeError', message: /maxScopes/ })
  assert.deepEqual(metricNames.filter((name) => globalRegistry.getSingleMetric(name)), [])
  // Fastify's own register options are not the provider's.
  const app = Fastify()
  await app.register(managedIdentityTokenProvider, { credential: new SlowCredential(), registry: new Registry(), logLevel: 'warn' } as never)
  await app.ready()
  await app.close()
})
