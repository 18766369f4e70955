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
