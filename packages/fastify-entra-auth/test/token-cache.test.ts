import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { verify as cryptoVerify } from 'node:crypto'
import { describe, test } from 'node:test'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import fastifyEntraAuth from '../src/index.ts'
import type { KeyLookup, SigningKey } from '../src/key-store.ts'
import { resolveOptions } from '../src/options.ts'
import { MAX_BATCH, SignatureWorker } from '../src/signature-worker.ts'
import { acceptedEntryBytes, createTokenValidator, type KeyProvider, type TokenVersion } from '../src/token-validation.ts'
import { API_CLIENT_ID, TENANT, TestAuthority, appClaims, createTestKey, mint, v2Issuer, type TestKey } from './helpers/authority.ts'

/*
 * The one verified-token cache (accepted tokens by text and signing key): bounded by entries and by
 * bytes, never holding a rejection, and letting go of a token as soon as its key leaves the key store.
 * Each test counts signature checks, which is what a cache hit saves.
 */

class CountingKeys implements KeyProvider {
  readonly keys = new Map<string, SigningKey>()
  checks = 0
  add (key: TestKey): void {
    this.keys.set(key.kid, {
      kid: key.kid,
      issuer: key.jwksIssuer,
      signatureValid: (token) => {
        this.checks++
        const dot = token.lastIndexOf('.')
        return cryptoVerify('sha256', Buffer.from(token.slice(0, dot)), key.publicKey, Buffer.from(token.slice(dot + 1), 'base64url'))
      },
      verify: () => { throw new Error('the validator must not call the diagnostic verifier') }
    })
  }

  find (_tenant: string, _version: TokenVersion, kid: string): KeyLookup {
    const key = this.keys.get(kid)
    return key ? { state: 'found', key, issuer: v2Issuer(TENANT), keyIssuer: key.issuer, v2Issuer: v2Issuer(TENANT) } : { state: 'unknown' }
  }

  async refreshForUnknownKid (): Promise<void> {}
}

const validator = (keys: KeyProvider, cache: { size: number, maxBytes?: number }) => createTokenValidator({
  tenants: [TENANT],
  versions: ['2.0'],
  audiences: [API_CLIENT_ID],
  maxTokenBytes: 8192,
  keys,
  acceptedCache: { ...cache, ttlMs: 600_000, clockToleranceMs: 300_000 }
})

const payloadJson = (token: string) => Buffer.from(token.split('.')[1] as string, 'base64url').toString()

describe('the verified-token cache', () => {
  const a = createTestKey()
  const tokens = Array.from({ length: 6 }, (_, i) => mint(a, appClaims({ uti: `token-${i}` })))
  /** Two acceptances: what stores a token (admission at the second). */
  const store = async (validate: (token: string) => Promise<unknown>, token: string) => { await validate(token); await validate(token) }

  test('a token is stored at its second acceptance and answered from the cache from its third, without a signature check', async () => {
    const keys = new CountingKeys()
    keys.add(a)
    const validate = validator(keys, { size: 10 })
    const first = await validate(tokens[0] as string)
    const second = await validate(tokens[0] as string)
    const third = await validate(tokens[0] as string)
    assert.ok(first.ok && !first.fromCache)
    assert.ok(second.ok && !second.fromCache, 'a token seen once is not stored: a stream of distinct tokens stores nothing')
    assert.ok(third.ok && third.fromCache)
    assert.equal(keys.checks, 2)
  })

  test('distinct tokens, each seen once, are never stored', async () => {
    const keys = new CountingKeys()
    keys.add(a)
    const validate = validator(keys, { size: 10 })
    await store(validate, tokens[0] as string)
    for (const token of tokens.slice(1)) await validate(token)
    const held = await validate(tokens[0] as string)
    assert.ok(held.ok && held.fromCache, 'the stored token was not evicted by tokens seen once')
  })

  test('bounded by entries: the oldest goes first', async () => {
    const keys = new CountingKeys()
    keys.add(a)
    const validate = validator(keys, { size: 2 })
    for (const token of tokens.slice(0, 3)) await store(validate, token)
    assert.equal(keys.checks, 6)
    assert.ok((await validate(tokens[2] as string)).ok)
    assert.ok((await validate(tokens[1] as string)).ok)
    assert.equal(keys.checks, 6, 'the two newest are held')
    await validate(tokens[0] as string)
    assert.equal(keys.checks, 7, 'the oldest was evicted')
  })

  test('bounded by bytes: entries counted by acceptedEntryBytes, the oldest go first; one larger than the bound is not kept', async () => {
    const keys = new CountingKeys()
    keys.add(a)
    const entry = acceptedEntryBytes(tokens[0] as string, payloadJson(tokens[0] as string))
    assert.ok(entry > (tokens[0] as string).length, `an entry counts more than its token: ${entry}`)
    // Room for two entries (tokens differ by a character at most), with 1,000 entries allowed.
    const validate = validator(keys, { size: 1000, maxBytes: 2 * entry + 10 })
    for (const token of tokens.slice(0, 3)) await store(validate, token)
    await validate(tokens[2] as string)
    await validate(tokens[1] as string)
    assert.equal(keys.checks, 6, 'the two newest are held')
    await validate(tokens[0] as string)
    assert.equal(keys.checks, 7, 'the oldest was evicted for bytes')

    const tiny = new CountingKeys()
    tiny.add(a)
    const validateTiny = validator(tiny, { size: 1000, maxBytes: entry - 1 })
    for (let i = 0; i < 3; i++) assert.ok((await validateTiny(tokens[0] as string)).ok)
    assert.equal(tiny.checks, 3, 'nothing cached')
  })

  test('a rejection is never remembered, and forged tokens cannot evict an accepted one', async () => {
    const keys = new CountingKeys()
    keys.add(a)
    const forger = createTestKey({ kid: a.kid })
    const validate = validator(keys, { size: 1 })
    await store(validate, tokens[0] as string)
    const forged = mint(forger, appClaims({ uti: 'forged' }))
    for (let i = 0; i < 3; i++) {
      const result = await validate(forged)
      assert.deepEqual(result.ok ? null : result.reason, 'bad_signature')
    }
    assert.equal(keys.checks, 5, 'each forged request is checked again')
    const again = await validate(tokens[0] as string)
    assert.ok(again.ok && again.fromCache, 'the accepted token is still held')
  })

  test("a token with a held token's signature but other claims is not a hit: the cache answers for the exact text only", async () => {
    const keys = new CountingKeys()
    keys.add(a)
    const validate = validator(keys, { size: 10 })
    const held = tokens[0] as string
    await store(validate, held)
    const [header, , signature] = held.split('.') as [string, string, string]
    // Same signature, so the same 30 fingerprint bits the cache finds entries by; another payload.
    const payload = Buffer.from(JSON.stringify({ ...JSON.parse(payloadJson(held)), roles: ['Admin.All'] })).toString('base64url')
    const spliced = `${header}.${payload}.${signature}`
    for (let i = 0; i < 3; i++) {
      const result = await validate(spliced)
      assert.deepEqual(result.ok ? null : result.reason, 'bad_signature')
    }
    assert.equal(keys.checks, 5, 'each spliced request had its signature checked')
    const again = await validate(held)
    assert.ok(again.ok && again.fromCache, 'the held token is still answered from the cache')
  })

  test('header checks are remembered per header text, and a flood of distinct headers changes no answer', async () => {
    const keys = new CountingKeys()
    keys.add(a)
    const validate = validator(keys, { size: 0 })
    const [, payload, signature] = (tokens[0] as string).split('.') as [string, string, string]
    const withHeader = (header: Record<string, unknown>) => `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${payload}.${signature}`
    // More distinct headers than the memo holds (64), each refused for its own reason, twice.
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 100; i++) {
        const result = await validate(withHeader({ alg: i % 2 === 0 ? 'none' : 'RS256', kid: a.kid, jku: `https://example.test/${i}` }))
        assert.deepEqual(result.ok ? null : result.reason, i % 2 === 0 ? 'unsupported_alg' : 'malformed')
      }
      const ok = await validate(tokens[0] as string)
      assert.ok(ok.ok, 'the valid token is still accepted')
    }
    assert.equal(keys.checks, 2, 'no refused header reached a signature check')
  })

  test('a key that leaves the key store takes its tokens with it, even with the same kid back under another key', async () => {
    const keys = new CountingKeys()
    keys.add(a)
    const validate = validator(keys, { size: 10 })
    await store(validate, tokens[0] as string)
    const held = await validate(tokens[0] as string)
    assert.ok(held.ok && held.fromCache)
    keys.keys.delete(a.kid)
    const gone = await validate(tokens[0] as string)
    assert.deepEqual(gone.ok ? null : gone.reason, 'unknown_key')
    // Another key published under the same kid: the cached acceptance must not survive it.
    keys.add(createTestKey({ kid: a.kid }))
    const replaced = await validate(tokens[0] as string)
    assert.deepEqual(replaced.ok ? null : replaced.reason, 'bad_signature')
  })

  test('size 0 turns the cache off', async () => {
    const keys = new CountingKeys()
    keys.add(a)
    const validate = validator(keys, { size: 0 })
    for (let i = 0; i < 3; i++) {
      const result = await validate(tokens[0] as string)
      assert.ok(result.ok && !result.fromCache)
    }
    assert.equal(keys.checks, 3)
  })

  test('tokenCache.maxBytes: 8 MiB by default, at least 64 KiB', () => {
    const base = { tenants: [TENANT], audiences: [API_CLIENT_ID] }
    assert.equal(resolveOptions(base).tokenCache.maxBytes, 8 * 1024 * 1024)
    assert.equal(resolveOptions({ ...base, tokenCache: { maxBytes: 65_536 } }).tokenCache.maxBytes, 65_536)
    assert.throws(() => resolveOptions({ ...base, tokenCache: { maxBytes: 1000 } }), /tokenCache\.maxBytes/)
  })
})

describe('signatureChecks', () => {
  test("'worker' (the default) and 'event-loop' give the same answers, valid, forged, short and truncated signatures alike", async (t) => {
    const key = createTestKey()
    const authority = await TestAuthority.start({ [TENANT]: [key] })
    t.after(() => authority.stop())
    assert.equal(resolveOptions({ tenants: [TENANT], audiences: [API_CLIENT_ID] }).signatureChecks, 'worker')
    const valid = Array.from({ length: 40 }, (_, i) => mint(key, appClaims({ uti: `v${i}` })))
    const forged = Array.from({ length: 40 }, (_, i) => mint(createTestKey({ kid: key.kid }), appClaims({ uti: `f${i}` })))
    const short = `${valid[0]?.slice(0, valid[0].lastIndexOf('.'))}.AAAA`
    for (const signatureChecks of ['worker', 'event-loop'] as const) {
      const app = Fastify()
      t.after(() => app.close())
      await app.register(fastifyEntraAuth, { tenants: [TENANT], audiences: [API_CLIENT_ID], authorityHost: authority.url, signatureChecks, registry: new Registry(), tokenCache: { size: 0 } })
      // All at once, as a round of I/O sends them: one batch to the worker, answers in order.
      const results = await Promise.all([...valid, ...forged, short].map((token) => app.entraAuth.validate(token)))
      assert.deepEqual(results.slice(0, 40).map((r) => r.ok), valid.map(() => true), signatureChecks)
      assert.deepEqual(results.slice(40).map((r) => r.ok ? null : r.reason), [...forged, short].map(() => 'bad_signature'), signatureChecks)
    }
  })

  test('SignatureWorker: checks it held when its thread dies are answered on the event loop, and so is every later one', async () => {
    const key = createTestKey()
    const errors: Error[] = []
    const worker = new SignatureWorker({ onError: (error) => { errors.push(error) } })
    const valid = mint(key)
    const forged = mint(createTestKey({ kid: key.kid }))
    const inline = (token: string) => () => { const dot = token.lastIndexOf('.'); return cryptoVerify('sha256', Buffer.from(token.slice(0, dot)), key.publicKey, Buffer.from(token.slice(dot + 1), 'base64url')) }
    assert.deepEqual(await Promise.all([worker.check(key.publicKey, valid, () => { throw new Error('not inline') }), worker.check(key.publicKey, forged, () => { throw new Error('not inline') })]), [true, false], 'checked on the worker')
    const held = [worker.check(key.publicKey, valid, inline(valid)), worker.check(key.publicKey, forged, inline(forged))]
    // Kill the thread while the batch is on its way (sent from setImmediate).
    await new Promise((resolve) => setImmediate(resolve))
    await (worker as unknown as { worker: { terminate: () => Promise<number> } }).worker.terminate()
    assert.deepEqual(await Promise.all(held), [true, false])
    assert.equal(errors.length, 1, 'the failure is reported once')
    assert.deepEqual(await Promise.all([worker.check(key.publicKey, valid, inline(valid)), worker.check(key.publicKey, forged, inline(forged))]), [true, false])
    await worker.close()
  })

  test('SignatureWorker: a round of more checks than MAX_BATCH goes in several messages, answered in order; delayMs is the oldest unanswered batch\'s wait', async () => {
    const key = createTestKey()
    const worker = new SignatureWorker({ onError: (error) => { throw error } })
    const valid = mint(key)
    const dot = valid.lastIndexOf('.')
    // Same length, other bytes: each is a full RSA check that fails.
    const forged = (i: number) => { const bytes = Buffer.from(valid.slice(dot + 1), 'base64url'); bytes.writeUInt16BE(i, 0); return `${valid.slice(0, dot)}.${bytes.toString('base64url')}` }
    const tokens = Array.from({ length: MAX_BATCH * 3 + 7 }, (_, i) => i % 100 === 0 ? valid : forged(i))
    const posted: unknown[] = []
    const thread = (worker as unknown as { worker: { postMessage: (message: unknown) => void } }).worker
    const post = thread.postMessage.bind(thread)
    thread.postMessage = (message) => { posted.push(message); post(message) }
    assert.equal(worker.delayMs(), 0, 'nothing owed')
    const answers = Promise.all(tokens.map((token) => worker.check(key.publicKey, token, () => { throw new Error('not inline') })))
    await new Promise((resolve) => setImmediate(resolve))
    const batches = posted.filter((message) => (message as { tokens?: string[] }).tokens !== undefined) as Array<{ tokens: string[] }>
    assert.deepEqual(batches.map((batch) => batch.tokens.length), [MAX_BATCH, MAX_BATCH, MAX_BATCH, 7])
    await new Promise((resolve) => setTimeout(resolve, 5))
    assert.ok(worker.delayMs() > 0, 'answers are owed: the oldest batch has been waiting')
    assert.deepEqual(await answers, tokens.map((token) => token === valid))
    assert.equal(worker.delayMs(), 0, 'everything answered')
    await worker.close()
  })

  test('SignatureWorker keeps a process alive only while it owes an answer', () => {
    // A script that awaits a check and is never closed: it must print the answer, then exit by itself.
    const script = `
      import { generateKeyPairSync, sign } from 'node:crypto'
      import { SignatureWorker } from ${JSON.stringify(new URL('../src/signature-worker.ts', import.meta.url).href)}
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
      const input = 'eyJhbGciOiJSUzI1NiJ9.eyJ4IjoxfQ'
      const token = input + '.' + sign('sha256', Buffer.from(input), privateKey).toString('base64url')
      const worker = new SignatureWorker({ onError: () => {} })
      console.log(await worker.check(publicKey, token, () => { throw new Error('inline') }))`
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 })
    assert.equal(child.signal, null, 'it exited by itself, not by the timeout')
    assert.equal(child.status, 0, child.stderr)
    assert.equal(child.stdout.trim(), 'true')
  })

  test('an unknown value is refused at registration', () => {
    assert.throws(() => resolveOptions({ tenants: [TENANT], audiences: [API_CLIENT_ID], signatureChecks: 'thread-pool' as 'event-loop' }), /signatureChecks must be 'worker' or 'event-loop'/)
  })
})
