import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../mock-imds/src/app.ts'
import { readConfig } from '../../mock-imds/src/config.ts'
import { IdentityEndpoint } from '../src/identity/endpoint.ts'
import { ManagedIdentityTokenProvider } from '../src/identity/token-provider.ts'
import { tenant } from './helpers.ts'

// The 24 h token path, in process: the real SDK against a real mock-imds, with a clock that jumps
// through the day. MSAL reads the clock through `new Date()`, mock-imds through Date.now(), so
// Date itself is replaced (this file runs in its own process under node --test). The SDK freezes
// its endpoint per process: this file uses one mock-imds, IMDS flavour.

let offsetMs = 0
const RealDate = Date
const realNow = RealDate.now.bind(RealDate)
class JumpingDate extends RealDate {
  constructor (...args: unknown[]) {
    if (args.length === 0) super(realNow() + offsetMs)
    else super(...(args as [string | number | Date]))
  }

  static override now () { return realNow() + offsetMs }
}
globalThis.Date = JumpingDate as DateConstructor
const hours = (h: number) => { offsetMs = h * 3_600_000 }

let mock: FastifyInstance
before(async () => {
  mock = await buildApp(readConfig({ LOG_LEVEL: 'silent' }))
  process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = await mock.listen({ host: '127.0.0.1', port: 0 })
})
after(async () => {
  globalThis.Date = RealDate
  await mock?.close()
})

async function tokenRequests (): Promise<number> {
  const text = (await mock.inject('/metrics')).body
  return text.split('\n').filter((line) => line.startsWith('mock_imds_token_requests_total{'))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0)
}

const silent = { debug () {}, info () {}, warn () {}, error () {} }
const events: string[] = []

function provider (scope: string) {
  return new ManagedIdentityTokenProvider({
    source: new IdentityEndpoint({ scope, selector: { kind: 'system' }, attemptTimeoutMs: 2000 }),
    settings: {
      acquisitionDeadlineMs: 5000,
      waitTimeoutMs: 5000,
      retryBaseDelayMs: 50,
      retryMaxDelayMs: 200,
      fatalCooldownMs: 1000,
      refreshFraction: 0.5,
      refreshJitter: 0.25,
      expiryMarginMs: 120_000
    },
    observer: {
      servedFromCache: () => events.push('cache'),
      acquisitionFinished: (result) => events.push(`acquisition:${result}`),
      refreshFailed: () => events.push('refresh-failed')
    },
    log: silent
  })
}

test('past the SDK\'s half-life, the SDK fetches but returns the old token: the provider reads the new one from the SDK\'s cache', async (t) => {
  hours(0)
  const tokens = provider(tenant.apiScope)
  t.after(() => tokens.close())
  const first = await tokens.getToken()
  assert.equal(await tokenRequests(), 1)
  assert.equal(await tokens.getToken(), first, 'served from the held token')
  assert.equal(await tokenRequests(), 1)

  // 13 h later an endpoint that does not cache would issue a new token: mock-imds forgets its own.
  hours(13)
  ;(mock.issuer as unknown as { clearTokenCache: () => void }).clearTokenCache()
  const renewed = await tokens.getToken({ forceRefresh: true })
  assert.notEqual(renewed, first, 'the new token, not the old one the SDK returned first')
  assert.equal(await tokenRequests(), 2, 'one request: the second read came from the SDK\'s cache')
  assert.ok(tokens.expiresInSeconds() > 23 * 3600)
})

test('an endpoint that caches (as IMDS does) renews only in the last 5 minutes, before the caller\'s margin', async (t) => {
  // Another resource, so that neither the SDK's cache nor mock-imds's holds a token for it yet.
  hours(0)
  const scope = `${tenant.apiClientId}/.default`
  const tokens = provider(scope)
  t.after(() => tokens.close())
  const before = await tokenRequests()
  const first = await tokens.getToken()

  hours(13)
  assert.equal(await tokens.getToken({ forceRefresh: true }), first, 'mock-imds still serves its cached token')
  assert.equal(await tokenRequests(), before + 2, 'the SDK fetched once past its half-life; the re-read was free')

  hours(23.95) // 3 minutes left: inside the SDK's 5-minute window, outside the caller's 2-minute margin
  assert.equal(await tokens.getToken(), first, 'still fresh for the caller: no request')
  assert.equal(tokens.readiness(), null)
  const renewed = await tokens.getToken({ forceRefresh: true })
  assert.notEqual(renewed, first)
  assert.equal(await tokenRequests(), before + 3)

  hours(47.94) // the renewed token (issued at 23.95 h), 36 s before its expiry: inside the margin, so requests wait for a new one
  assert.match(tokens.readiness() ?? '', /expires in 3\d s/)
  assert.notEqual(await tokens.getToken(), renewed)
  assert.equal(await tokenRequests(), before + 4)
  assert.equal(events.filter((e) => e === 'refresh-failed').length, 0)
})
