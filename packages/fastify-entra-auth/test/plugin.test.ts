import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify, { type FastifyBaseLogger } from 'fastify'
import { Registry, register as globalRegistry } from 'prom-client'
import * as entry from '../src/index.ts'
import fastifyEntraAuth, { DEFAULTS, EntraAuthOptionsError, type FastifyEntraAuthOptions, type Identity } from '../src/index.ts'
import { API_CLIENT_ID, TENANT, TestAuthority, createTestKey, mint } from './helpers/authority.ts'
import { startApp } from './helpers/app.ts'

/* The plugin's contract as a user meets it: exports, options and their errors, registry, logger, decorators. */

test('exports: the plugin as default and named, wrapped once by fastify-plugin with the package name', () => {
  assert.equal(entry.default, entry.fastifyEntraAuth)
  const meta = (fastifyEntraAuth as unknown as Record<symbol, { name: string, fastify: string }>)[Symbol.for('plugin-meta')]
  assert.deepEqual({ name: meta?.name, fastify: meta?.fastify }, { name: 'fastify-entra-auth', fastify: '5.x' })
  assert.deepEqual(Object.keys(entry).sort(), [
    'DEFAULTS', 'ENTRA_CLOUD_HOSTS', 'EntraAuthOptionsError', 'KID_PATTERN', 'KeyStore', 'NUMERIC_DATE_RANGE', 'REASONS', 'SCOPE_TOKEN', 'SignatureWorker', 'authorize', 'cloudHostsOf', 'createAuthMetrics',
    'createTokenValidator', 'default', 'expandAudiences', 'fastifyEntraAuth', 'isCanonicalBase64url', 'jwksUriAllowed', 'parseAuthorization', 'resolveOptions', 'withRequiredRoles'
  ])
})

test('defaults are the documented ones (Microsoft.IdentityModel: 5 min skew, 5 min refresh throttle)', () => {
  assert.equal(DEFAULTS.clockSkewMs, 300_000)
  assert.equal(DEFAULTS.jwks.cooldownMs, 300_000)
  assert.equal(DEFAULTS.jwks.refreshIntervalMs, 3_600_000)
  assert.equal(DEFAULTS.authorityHost, 'https://login.microsoftonline.com')
  assert.deepEqual(DEFAULTS.tokenVersions, ['1.0', '2.0'])
})

test('an invalid option fails the registration with EntraAuthOptionsError naming the option', async () => {
  const base: FastifyEntraAuthOptions = { tenants: [TENANT], audiences: [API_CLIENT_ID], registry: new Registry() }
  const cases: Array<[Partial<FastifyEntraAuthOptions> & Record<string, unknown>, string]> = [
    [{ tenants: [] }, 'tenants'],
    [{ tenants: ['contoso.onmicrosoft.com'] }, 'tenants'],
    [{ audiences: [] }, 'audiences'],
    [{ tokenVersions: ['3.0' as '2.0'] }, 'tokenVersions'],
    [{ tokenVersions: [] }, 'tokenVersions'],
    [{ authorityHost: 'ftp://login.microsoftonline.com' }, 'authorityHost'],
    [{ authorityHost: 'login.microsoftonline.com' }, 'authorityHost'],
    [{ clockSkewMs: -1 }, 'clockSkewMs'],
    [{ maxTokenBytes: 1.5 }, 'maxTokenBytes'],
    [{ jwks: { cooldownMs: -5 } }, 'jwks.cooldownMs'],
    [{ jwks: { refreshIntervalMs: 10 } }, 'jwks.refreshIntervalMs'],
    [{ tokenCache: { size: Number.NaN } }, 'tokenCache.size'],
    [{ signingKeysAppId: 'my-api' }, 'signingKeysAppId']
  ]
  for (const [override, option] of cases) {
    const app = Fastify({ logger: false })
    await assert.rejects(async () => { await app.register(fastifyEntraAuth, { ...base, ...override }).ready() }, (error: unknown) => {
      assert.ok(error instanceof EntraAuthOptionsError, `${option}: ${String(error)}`)
      assert.equal(error.option, option)
      assert.match(error.message, new RegExp(`option ${option.replace('.', '\\.')} `))
      return true
    })
    await app.close()
  }
})

test('metrics go to the registry passed, names unchanged; without one, to prom-client\'s global register', async (t) => {
  const key = createTestKey()
  const authority = await TestAuthority.start({ [TENANT]: [key] })
  t.after(() => authority.stop())
  const api = await startApp(authority.url)
  t.after(() => api.app.close())
  assert.equal((await api.get(`Bearer ${mint(key)}`)).statusCode, 200)
  const names = (await api.registry.getMetricsAsJSON()).map((metric) => metric.name).sort()
  assert.deepEqual(names, ['auth_requests_total', 'auth_validation_duration_seconds', 'auth_verified_token_cache_total', 'jwks_keys', 'jwks_last_success_timestamp_seconds', 'jwks_refresh_total', 'jwks_tenants'])
  assert.equal(await api.metric('auth_requests_total', { result: 'accepted', reason: 'none' }), 1)
  assert.equal(globalRegistry.getSingleMetric('auth_requests_total'), undefined, 'nothing leaked to the global register')

  const app = Fastify({ logger: false })
  t.after(() => { globalRegistry.clear() })
  await app.register(fastifyEntraAuth, { tenants: [TENANT], audiences: [API_CLIENT_ID], authorityHost: authority.url })
  await app.ready()
  assert.ok(globalRegistry.getSingleMetric('auth_requests_total'))
  await app.close()
})

test('decorators: entraAuth.notReadyReason, keyStore and validate; request.identity typed, null off protected routes', async (t) => {
  const key = createTestKey()
  const authority = await TestAuthority.start({ [TENANT]: [key] })
  t.after(() => authority.stop())
  let seen: Identity | null | undefined
  const api = await startApp(authority.url, { tokenVersions: ['2.0'] }, (app) => {
    app.get('/open', async (request) => { seen = request.identity; return 'open' })
  })
  t.after(() => api.app.close())
  assert.equal(api.app.entraAuth.notReadyReason(), null)
  assert.equal(api.app.entraAuth.keyStore.keyCount(TENANT), 1)
  const direct = await api.app.entraAuth.validate(mint(key))
  assert.ok(direct.ok)
  assert.equal(direct.identity.objectId, direct.identity.claims.oid)
  assert.equal((await api.get(undefined, '/open')).statusCode, 200)
  assert.equal(seen, null)
})

test('logger: the key store logs through the logger passed', async (t) => {
  const lines: Array<[string, object, string]> = []
  const record = (level: string) => (object: object, message: string) => { lines.push([level, object, message]) }
  const logger = { info: record('info'), warn: record('warn'), error: record('error'), debug () {}, trace () {}, fatal () {}, silent () {}, level: 'info', child: () => logger } as unknown as FastifyBaseLogger
  const app = Fastify({ logger: false })
  t.after(() => app.close())
  // Nothing listens on port 9 of loopback: the first load fails and says so.
  await app.register(fastifyEntraAuth, { tenants: [TENANT], audiences: [API_CLIENT_ID], authorityHost: 'http://127.0.0.1:9', registry: new Registry(), logger, jwks: { fetchTimeoutMs: 500 } })
  await app.ready()
  assert.ok(lines.some(([level, , message]) => level === 'error' && /JWKS not loaded/.test(message)), JSON.stringify(lines))
  assert.match(String(app.entraAuth.notReadyReason()), new RegExp(`${TENANT} v1.0, ${TENANT} v2.0`))
})

test('a route whose roles cannot be named in a challenge fails to register', async (t) => {
  const key = createTestKey()
  const authority = await TestAuthority.start({ [TENANT]: [key] })
  t.after(() => authority.stop())
  for (const roles of [['Has Space'], ['quo"te'], ['é'], [''], 'DoAll']) {
    await assert.rejects(startApp(authority.url, {}, (app) => {
      app.get('/bad', { config: { auth: { roles: roles as string[] } } }, async () => 'never')
    }), /config\.auth\.roles must be an array of app role values/, JSON.stringify(roles))
  }
})
