import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/core-auth'
import { ManagedIdentityTokenProvider, TokenUnavailableError } from '../src/index.ts'

// The provider's contract over any TokenCredential (its `credential` option): what it adds is
// independent of the SDK underneath. The SDK path (ManagedIdentityCredential against mock-imds)
// is in azure-sdk-client.test.ts, sdk-cache.test.ts and the caller's tests.

const scope = 'api://some-api/.default'
const hour = 3_600_000

/** A credential whose answers the test scripts: each call takes the next behaviour. */
class ScriptedCredential implements TokenCredential {
  calls: Array<{ scopes: string[], options: GetTokenOptions | undefined }> = []
  readonly #next: (call: number, scopes: string[]) => Promise<AccessToken>
  constructor (next: (call: number, scopes: string[]) => Promise<AccessToken>) { this.#next = next }
  async getToken (scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken> {
    const list = Array.isArray(scopes) ? scopes : [scopes]
    this.calls.push({ scopes: list, options })
    return await this.#next(this.calls.length, list)
  }
}

const token = (name: string, lifetimeMs = hour): AccessToken => ({ token: name, expiresOnTimestamp: Date.now() + lifetimeMs })
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
/** What @azure/identity throws for an HTTP error: CredentialUnavailableError with MSAL's ServerError as cause. */
const httpError = (status: number, description: string) => Object.assign(new Error('ManagedIdentityCredential: Authentication failed.'), {
  name: 'CredentialUnavailableError',
  cause: { status, errorCode: 'invalid_request', errorMessage: `Description: ${description} - Correlation ID: x` }
})

const fast = { retryBaseDelayMs: 10, retryMaxDelayMs: 50, attemptTimeoutMs: 1000, waitTimeoutMs: 2000 }

test('bad options are refused at construction, naming the option', () => {
  assert.throws(() => new ManagedIdentityTokenProvider({ clientId: 'a', objectId: 'b' }), { name: 'TypeError', message: /clientId and objectId/ })
  const credential = new ScriptedCredential(async () => token('t'))
  assert.throws(() => new ManagedIdentityTokenProvider({ credential, clientId: 'a' }), { name: 'TypeError', message: /clientId has no effect with credential/ })
  assert.throws(() => new ManagedIdentityTokenProvider({ refreshFraction: 0.8, refreshJitter: 0.3 }), { name: 'RangeError', message: /refreshFraction \+ refreshJitter/ })
  assert.throws(() => new ManagedIdentityTokenProvider({ waitTimeoutMs: 0 }), { name: 'RangeError', message: /waitTimeoutMs/ })
})

test('single flight per scope: 50 concurrent calls make one request per scope, and scopes get their own tokens', async (t) => {
  const credential = new ScriptedCredential(async (call, scopes) => { await delay(50); return token(`${scopes[0]}#${call}`) })
  const provider = new ManagedIdentityTokenProvider({ credential, ...fast })
  t.after(() => provider.close())
  const results = await Promise.all([
    ...Array.from({ length: 50 }, () => provider.getToken(scope)),
    ...Array.from({ length: 50 }, () => provider.getToken(['api://other/.default']))
  ])
  assert.equal(credential.calls.length, 2)
  assert.deepEqual(credential.calls.map((c) => c.scopes[0]).sort(), ['api://other/.default', scope])
  assert.equal(new Set(results.slice(0, 50).map((r) => r.token)).size, 1)
  assert.equal(new Set(results.slice(50).map((r) => r.token)).size, 1)
  assert.notEqual(results[0]!.token, results[50]!.token)
  // Held: answered without a call, with the expiry in ms and a refresh point before it.
  const again = await provider.getToken(scope)
  assert.equal(credential.calls.length, 2)
  assert.equal(again.tokenType, 'Bearer')
  assert.ok(again.expiresOnTimestamp > Date.now() + hour - 5000 && again.expiresOnTimestamp <= Date.now() + hour)
  assert.ok(again.refreshAfterTimestamp! >= Date.now() + hour * 0.5 - 5000 && again.refreshAfterTimestamp! <= Date.now() + hour * 0.75)
})

test('abortSignal: an aborted wait rejects with AbortError at once; the acquisition goes on for the next call', async (t) => {
  const credential = new ScriptedCredential(async () => { await delay(300); return token('slow') })
  const provider = new ManagedIdentityTokenProvider({ credential, ...fast })
  t.after(() => provider.close())
  await assert.rejects(provider.getToken(scope, { abortSignal: AbortSignal.abort() }), { name: 'AbortError' })
  const started = performance.now()
  await assert.rejects(provider.getToken(scope, { abortSignal: AbortSignal.timeout(50) }), { name: 'AbortError' })
  assert.ok(performance.now() - started < 250, 'rejected when the signal fired, not when the token came')
  assert.equal((await provider.getToken(scope)).token, 'slow')
  assert.equal(credential.calls.length, 1, 'the aborted wait did not cancel or repeat the acquisition')
})

test('a wait past its timeout throws TokenUnavailableError; the acquisition goes on and the token is held afterwards', async (t) => {
  const credential = new ScriptedCredential(async () => { await delay(400); return token('late') })
  const provider = new ManagedIdentityTokenProvider({ credential, ...fast, waitTimeoutMs: 100 })
  t.after(() => provider.close())
  const error = await provider.getToken(scope).then(() => undefined, (e: unknown) => e)
  assert.ok(error instanceof TokenUnavailableError)
  assert.equal(error.reason, 'timeout')
  assert.equal(error.deploymentError, false)
  assert.match(error.message, /within 100 ms/)
  assert.match(error.hint, /goes on in the background/)
  assert.equal(provider.notReadyReason()?.startsWith('no token yet'), true)
  // requestOptions.timeout is a per-call wait.
  assert.equal((await provider.getToken(scope, { requestOptions: { timeout: 2000 } })).token, 'late')
  assert.equal(credential.calls.length, 1)
  assert.equal(provider.notReadyReason(), null)
})

test('retryable failures are retried with backoff; a deployment error is not, and holds back further calls', async (t) => {
  await t.test('500, 500, then a token', async (t) => {
    const credential = new ScriptedCredential(async (call) => { if (call < 3) throw httpError(500, 'busy'); return token('third') })
    const provider = new ManagedIdentityTokenProvider({ credential, ...fast })
    t.after(() => provider.close())
    assert.equal((await provider.getToken(scope)).token, 'third')
    assert.equal(credential.calls.length, 3)
  })
  await t.test('400 Identity not found: identity_not_found with its hint, one request for two calls', async (t) => {
    const credential = new ScriptedCredential(async () => { throw httpError(400, 'Identity not found') })
    const provider = new ManagedIdentityTokenProvider({ credential, ...fast })
    t.after(() => provider.close())
    for (let i = 0; i < 2; i++) {
      const error = await provider.getToken(scope).then(() => undefined, (e: unknown) => e)
      assert.ok(error instanceof TokenUnavailableError)
      assert.equal(error.reason, 'identity_not_found')
      assert.equal(error.deploymentError, true)
      assert.equal(error.endpointStatus, 400)
      assert.match(error.hint, /AZURE_CLIENT_ID/)
      assert.match(error.message, /deployment error, not retried: .*Identity not found/)
    }
    assert.equal(credential.calls.length, 1)
    assert.match(provider.notReadyReason() ?? '', /Identity not found/)
  })
  await t.test('hints can be replaced per reason', async (t) => {
    const credential = new ScriptedCredential(async () => { throw httpError(400, 'Identity not found') })
    const provider = new ManagedIdentityTokenProvider({ credential, ...fast, hints: { identity_not_found: 'check MY_IDENTITY' } })
    t.after(() => provider.close())
    await assert.rejects(provider.getToken(scope), { reason: 'identity_not_found', hint: 'check MY_IDENTITY' })
  })
})

test('a hung credential: each attempt ends at attemptTimeoutMs and is retried', async (t) => {
  const credential = new ScriptedCredential(async (call) => call === 1 ? await new Promise<AccessToken>(() => {}) : token('second'))
  const provider = new ManagedIdentityTokenProvider({ credential, ...fast, attemptTimeoutMs: 100 })
  t.after(() => provider.close())
  assert.equal((await provider.getToken(scope)).token, 'second')
  assert.equal(credential.calls.length, 2)
  assert.equal(credential.calls[0]!.options?.abortSignal?.aborted, true, 'the timed-out attempt was aborted')
})

test('a slow credential: a cut attempt is followed by one that may wait for the rest of the deadline, and after a success the first attempt waits long enough', async (t) => {
  // Every answer takes 300 ms; the attempt timeout is 100 ms.
  const credential = new ScriptedCredential(async (call) => { await delay(300); return token(`slow-${call}`) })
  const provider = new ManagedIdentityTokenProvider({ credential, ...fast, attemptTimeoutMs: 100, acquisitionDeadlineMs: 3000 })
  t.after(() => provider.close())
  const first = await provider.getToken(scope)
  assert.equal(first.token, 'slow-2', 'the first attempt was cut, the second waited')
  assert.equal(credential.calls[0]!.options?.abortSignal?.aborted, true)
  assert.equal(credential.calls[1]!.options?.abortSignal?.aborted, false)
  // A new scope (a new acquisition): its first attempt may now wait twice the 300 ms it took.
  assert.equal((await provider.getToken('api://other/.default')).token, 'slow-3')
  assert.equal(credential.calls.length, 3, 'no attempt cut after the first success')
})

test('a wait that ends while an attempt is in flight says the token is still being fetched', async (t) => {
  const credential = new ScriptedCredential(async () => { await delay(500); return token('late') })
  const provider = new ManagedIdentityTokenProvider({ credential, ...fast, attemptTimeoutMs: 2000, waitTimeoutMs: 100 })
  t.after(() => provider.close())
  const error = await provider.getToken(scope).then(() => undefined, (e: unknown) => e)
  assert.ok(error instanceof TokenUnavailableError)
  assert.equal(error.fetching, true)
  assert.match(error.message, /still being fetched.*attempt 1 has waited 0 s of up to 2 s/)
  assert.match(error.hint, /still being fetched/)
})

test('the last good token is served while refreshes fail, and counted as refresh failures', async (t) => {
  // A 2 s token refreshed 100-150 ms in; every refresh fails.
  const credential = new ScriptedCredential(async (call) => { if (call > 1) throw httpError(503, 'down'); return token('first', 2000) })
  let refreshFailures = 0
  const provider = new ManagedIdentityTokenProvider({
    credential, ...fast, refreshFraction: 0.05, refreshJitter: 0.025, observer: { refreshFailed: () => { refreshFailures++ } }
  })
  t.after(() => provider.close())
  assert.equal((await provider.getToken(scope)).token, 'first')
  await delay(400)
  assert.ok(refreshFailures >= 1, `${refreshFailures} refresh failures`)
  assert.equal((await provider.getToken(scope)).token, 'first')
  assert.equal(provider.notReadyReason(), null)
})

test('the number of scopes is bounded (maxScopes): a new scope beyond it is refused', async (t) => {
  const credential = new ScriptedCredential(async (_call, scopes) => token(scopes[0]!))
  const provider = new ManagedIdentityTokenProvider({ credential, ...fast, maxScopes: 2 })
  t.after(() => provider.close())
  await provider.getToken('api://a/.default')
  await provider.getToken('api://b/.default')
  await assert.rejects(provider.getToken('api://c/.default'), { name: 'TokenUnavailableError', reason: 'too_many_scopes' })
  assert.equal((await provider.getToken('api://a/.default')).token, 'api://a/.default')
})

test('unknown, empty and mistyped options are refused at construction, naming the option', () => {
  // A typo would otherwise select the system-assigned identity without a word.
  assert.throws(() => new ManagedIdentityTokenProvider({ clientID: 'x' } as never), { name: 'TypeError', message: /unknown option "clientID" \(did you mean clientId\?\)/ })
  assert.throws(() => new ManagedIdentityTokenProvider({ waitTimeout: 1000 } as never), { name: 'TypeError', message: /unknown option "waitTimeout"/ })
  // An empty AZURE_CLIENT_ID is no selector: it must not mean the system-assigned identity.
  for (const name of ['clientId', 'resourceId', 'objectId']) {
    assert.throws(() => new ManagedIdentityTokenProvider({ [name]: '' }), { name: 'TypeError', message: new RegExp(`${name} is an empty string`) })
  }
  assert.throws(() => new ManagedIdentityTokenProvider({ clientId: '  ' }), { name: 'TypeError', message: /clientId is an empty string/ })
  assert.throws(() => new ManagedIdentityTokenProvider({ clientId: 42 } as never), { name: 'TypeError', message: /clientId must be a string, got number 42/ })
  assert.throws(() => new ManagedIdentityTokenProvider({ attemptTimeoutMs: '5000' } as never), { name: 'TypeError', message: /attemptTimeoutMs must be a number, got string "5000"/ })
  assert.throws(() => new ManagedIdentityTokenProvider({ refreshFraction: '0.5' } as never), { name: 'TypeError', message: /refreshFraction must be a number, got string "0.5"/ })
  assert.throws(() => new ManagedIdentityTokenProvider({ expiryMarginMs: '0' } as never), { name: 'TypeError', message: /expiryMarginMs must be a number/ })
  assert.throws(() => new ManagedIdentityTokenProvider({ maxScopes: '16' } as never), { name: 'TypeError', message: /maxScopes must be a number/ })
  for (const maxScopes of [0, -1, 1.5, Number.NaN]) {
    assert.throws(() => new ManagedIdentityTokenProvider({ maxScopes }), { name: 'RangeError', message: /maxScopes must be a positive integer/ }, String(maxScopes))
  }
  assert.throws(() => new ManagedIdentityTokenProvider({ hints: { identityNotFound: 'x' } } as never), { name: 'TypeError', message: /hints has an unknown reason "identityNotFound"/ })
  assert.throws(() => new ManagedIdentityTokenProvider({ credential: {} as never }), { name: 'TypeError', message: /credential must be a TokenCredential/ })
  // Explicitly undefined options are unset, as the types allow.
  new ManagedIdentityTokenProvider({ clientId: undefined, attemptTimeoutMs: undefined, maxScopes: 1 }).close()
})

test('TokenUnavailableError is the app\'s 503: the endpoint\'s status is endpointStatus, never status', async (t) => {
  await t.test('429 without Retry-After', async (t) => {
    const credential = new ScriptedCredential(async () => { throw httpError(429, 'too many requests') })
    const provider = new ManagedIdentityTokenProvider({ credential, ...fast, waitTimeoutMs: 300 })
    t.after(() => provider.close())
    const error = await provider.getToken(scope).then(() => undefined, (e: unknown) => e)
    assert.ok(error instanceof TokenUnavailableError)
    assert.equal(error.reason, 'throttled')
    assert.equal(error.endpointStatus, 429)
    assert.equal('status' in error, false, 'no status for a framework to answer with')
    assert.equal(error.statusCode, 503)
    assert.ok(error.retryAfterMs !== undefined && error.retryAfterMs >= 1000)
    assert.equal(error.headers['retry-after'], String(Math.ceil(error.retryAfterMs / 1000)))
  })
  await t.test('400 AADSTS500011', async (t) => {
    const credential = new ScriptedCredential(async () => { throw httpError(400, 'AADSTS500011: The resource principal named api://x was not found in the tenant') })
    const provider = new ManagedIdentityTokenProvider({ credential, ...fast })
    t.after(() => provider.close())
    const error = await provider.getToken(scope).then(() => undefined, (e: unknown) => e)
    assert.ok(error instanceof TokenUnavailableError)
    assert.equal(error.reason, 'invalid_resource')
    assert.equal(error.endpointStatus, 400)
    assert.equal(error.statusCode, 503)
    assert.equal('status' in error, false)
  })
})

test('retryAfterMs is truthful: the cooldown left after a deployment error, undefined when asking again never helps', async (t) => {
  const credential = new ScriptedCredential(async () => { throw httpError(400, 'Identity not found') })
  const provider = new ManagedIdentityTokenProvider({ credential, ...fast, fatalCooldownMs: 30_000 })
  t.after(() => provider.close())
  const first = await provider.getToken(scope).then(() => undefined, (e: unknown) => e)
  assert.ok(first instanceof TokenUnavailableError && first.deploymentError)
  assert.ok(first.retryAfterMs !== undefined && first.retryAfterMs > 29_000 && first.retryAfterMs <= 30_000, `first: ${first.retryAfterMs}`)
  assert.equal(first.headers['retry-after'], '30')
  await delay(20)
  const second = await provider.getToken(scope).then(() => undefined, (e: unknown) => e)
  assert.ok(second instanceof TokenUnavailableError && second.deploymentError)
  assert.ok(second.retryAfterMs !== undefined && second.retryAfterMs < first.retryAfterMs && second.retryAfterMs > 29_000, `second: ${second.retryAfterMs}`)
  assert.equal(credential.calls.length, 1)
  // A misuse of the provider: no later call helps, so no Retry-After.
  for (const bad of [[], '  ']) {
    const misuse = await provider.getToken(bad).then(() => undefined, (e: unknown) => e)
    assert.ok(misuse instanceof TokenUnavailableError)
    assert.equal(misuse.reason, 'invalid_scope')
    assert.equal(misuse.retryAfterMs, undefined)
    assert.deepEqual(misuse.headers, {})
  }
})

test('readiness is about the scopes that count: an aborted call or an unknown scope does not take the service out of rotation', async (t) => {
  const unknown = 'api://unknown/.default'
  const credential = new ScriptedCredential(async (_call, scopes) => {
    if (scopes[0] === unknown) throw httpError(400, 'AADSTS500011: The resource principal named api://unknown was not found in the tenant named contoso. Trace ID: 0000 Correlation ID: 1111')
    return token(scopes[0]!)
  })
  const provider = new ManagedIdentityTokenProvider({ credential, ...fast })
  t.after(() => provider.close())
  await provider.getToken(scope)
  assert.equal(provider.notReadyReason(), null)

  await assert.rejects(provider.getToken('api://aborted/.default', { abortSignal: AbortSignal.abort() }), { name: 'AbortError' })
  assert.equal(credential.calls.length, 1, 'an aborted call starts nothing')
  assert.equal(provider.notReadyReason(), null)
  assert.ok(provider.expiresInSeconds() > 3500, `expiresInSeconds ${provider.expiresInSeconds()}`)

  await assert.rejects(provider.getToken(unknown), { reason: 'invalid_resource', deploymentError: true })
  assert.equal(provider.notReadyReason(), null, 'an undeclared scope that never held a token does not count')
  assert.ok(provider.expiresInSeconds() > 3500)

  // A declared (warmed) scope counts from the start: not ready until its token is held.
  provider.warm(unknown)
  await delay(50)
  assert.match(provider.notReadyReason() ?? '', /^api:\/\/unknown\/\.default: no token yet: .*AADSTS500011/)
  assert.equal(provider.expiresInSeconds(), 0)
})

test('readiness before any scope counts: never ready, and says why', async (t) => {
  const credential = new ScriptedCredential(async () => { throw httpError(400, 'Identity not found') })
  const provider = new ManagedIdentityTokenProvider({ credential, ...fast })
  t.after(() => provider.close())
  assert.equal(provider.notReadyReason(), 'no token requested yet')
  await assert.rejects(provider.getToken(scope, { abortSignal: AbortSignal.abort() }), { name: 'AbortError' })
  assert.equal(provider.notReadyReason(), 'no token requested yet')
  await assert.rejects(provider.getToken(scope), { reason: 'identity_not_found' })
  assert.match(provider.notReadyReason() ?? '', /^no token yet: .*Identity not found/)
  assert.equal(provider.expiresInSeconds(), 0)
})

test('failFast: once the endpoint has failed twice in a row, a call is answered at once instead of waiting through the backoff; calls without it still wait', async (t) => {
  // Two attempts fail after 100 ms each, 297 ms of backoff after each (full jitter, base = max, the
  // random draw pinned at 0.99), then a token: failures at ~100 and ~500 ms, the token at ~900 ms.
  t.mock.method(Math, 'random', () => 0.99)
  const credential = new ScriptedCredential(async (call) => {
    await delay(100)
    if (call <= 2) throw httpError(500, `busy ${call}`)
    return token('third')
  })
  const provider = new ManagedIdentityTokenProvider({ credential, ...fast, retryBaseDelayMs: 300, retryMaxDelayMs: 300 })
  t.after(() => provider.close())
  const since = (start: number) => performance.now() - start

  // A single failure is a blip: the call waits through its backoff, and is released by the second failure.
  let start = performance.now()
  const released = await provider.getToken(scope, { failFast: true }).then(() => undefined, (e: unknown) => e)
  const releasedAfterMs = since(start)
  assert.ok(released instanceof TokenUnavailableError)
  assert.equal(released.reason, 'server_error')
  assert.equal(released.fetching, true)
  assert.equal(released.deploymentError, false)
  assert.match(released.message, /the identity endpoint is failing, the next attempt is in \d+\.\d s; last failure: .*busy 2/)
  assert.ok(releasedAfterMs >= 400 && releasedAfterMs < 850, `released after ${Math.round(releasedAfterMs)} ms, at the second failure`)
  assert.equal(credential.calls.length, 2)

  // During the second backoff: at once. retryAfterMs is the time to the next attempt, at least 1 s
  // (TokenUnavailableError's contract for a transient failure); the message gives the real time.
  start = performance.now()
  const during = await provider.getToken(scope, { failFast: true }).then(() => undefined, (e: unknown) => e)
  assert.ok(since(start) < 50, `answered in ${Math.round(since(start))} ms`)
  assert.ok(during instanceof TokenUnavailableError)
  assert.equal(during.retryAfterMs, 1000)
  assert.match(during.message, /the next attempt is in 0\.[0-3] s/)

  // The same call without failFast waits through the backoff and gets the retry's token.
  assert.equal((await provider.getToken(scope)).token, 'third')
  assert.equal(credential.calls.length, 3, 'the failFast calls started no attempt of their own')
  // Once a token is held, failFast changes nothing.
  assert.equal((await provider.getToken(scope, { failFast: true })).token, 'third')
})

test('failFast: a single failure is waited through', async (t) => {
  const credential = new ScriptedCredential(async (call) => { if (call === 1) throw httpError(500, 'blip'); return token('second') })
  const provider = new ManagedIdentityTokenProvider({ credential, ...fast })
  t.after(() => provider.close())
  assert.equal((await provider.getToken(scope, { failFast: true })).token, 'second')
})

test('failFast: a deployment error ends the streak, so the next transient failure is one blip again', async (t) => {
  // 500, 500 (a streak of two), then 400 Identity not found; after the 300 ms cooldown the background
  // acquisition meets one 500 and then a token. Every answer takes 100 ms, every backoff 49.5 ms.
  t.mock.method(Math, 'random', () => 0.99)
  const credential = new ScriptedCredential(async (call) => {
    await delay(100)
    if (call === 3) throw httpError(400, 'Identity not found')
    if (call <= 4) throw httpError(500, `busy ${call}`)
    return token('after-fix')
  })
  const provider = new ManagedIdentityTokenProvider({ credential, ...fast, retryBaseDelayMs: 50, retryMaxDelayMs: 50, fatalCooldownMs: 300 })
  t.after(() => provider.close())
  await assert.rejects(provider.getToken(scope), { reason: 'identity_not_found', deploymentError: true })
  // The cooldown ends ~300 ms after the 400 (at ~400 ms): attempt 4 starts then and fails at ~800 ms.
  await delay(350)
  assert.equal((await provider.getToken(scope, { failFast: true })).token, 'after-fix', 'one 500 after the deployment error is waited through')
  assert.equal(credential.calls.length, 5)
})
