import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { defaultTenant, startLocalStack, type LocalStack } from '../../scripts/lib/local-stack.ts'

/*
 * Issue 12, "tests that cannot fail today": token redaction was only tested on a handler that logs
 * headers on purpose. Here the real services run as real processes on loopback, the real SDK gets real
 * tokens, the api sees valid, refused, queried and duplicated credentials, and then every line each
 * service logged is scanned for any token text or Authorization value.
 */

let stack: LocalStack
before(async () => { stack = await startLocalStack() })
after(async () => { await stack?.stop() })

/** A JWS compact serialization (header and payload are JSON objects, so both start with "eyJ"). */
const JWT = /eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}/
/** An Authorization value as a client sends it. */
const AUTHORIZATION_VALUE = /\b(?:bearer|basic)\s+[A-Za-z0-9._~+/-]{8,}/i

async function imdsToken (): Promise<string> {
  const url = new URL('/metadata/identity/oauth2/token', stack.mockImds.url)
  url.searchParams.set('api-version', '2018-02-01')
  url.searchParams.set('resource', defaultTenant().apiAppIdUri)
  const response = await fetch(url, { headers: { metadata: 'true' } })
  assert.equal(response.status, 200, await response.clone().text())
  return ((await response.json()) as { access_token: string }).access_token
}

test('no service logs a token or an Authorization value, whatever the api is sent', async () => {
  // The caller's real SDK gets a token from mock-imds and calls the api with it.
  assert.equal((await fetch(`${stack.caller.url}/call`)).status, 200)
  const token = await imdsToken()
  const [header, payload, signature] = token.split('.') as [string, string, string]
  const claims = `${stack.api.url}/claims`
  const sent: Array<[RequestInit & { headers?: Record<string, string> }, string, number]> = [
    [{ headers: { authorization: `Bearer ${token}` } }, claims, 200],
    [{ headers: { authorization: `Bearer ${header}.${payload}.${signature.slice(0, -4)}AAAA` } }, claims, 401],
    [{ headers: { authorization: `Bearer  ${token}` } }, claims, 200],
    [{ headers: { authorization: `Bearer ${token} extra` } }, claims, 400],
    [{ headers: { authorization: `Basic ${Buffer.from(`user:${token}`).toString('base64')}` } }, claims, 401],
    [{ headers: { authorization: `Bearer ${token}` } }, `${claims}?access_token=${token}`, 400],
    // RFC 6750 §2.3 (a token in the query) is a parameter the api does not support: §3.1 invalid_request.
    [{}, `${claims}?access_token=${token}`, 400],
    [{ headers: { authorization: `Bearer ${token}` } }, `${stack.api.url}/no-such-route?token=${token}`, 404],
    [{ headers: { authorization: `Bearer ${token}` } }, `${stack.caller.url}/no-such-route?access_token=${token}`, 404]
  ]
  for (const [init, url, status] of sent) {
    const response = await fetch(url, init)
    assert.equal(response.status, status, `${url.replace(token, '<token>')}: ${await response.text()}`)
  }
  // Logs are written asynchronously: give the last lines a moment to arrive.
  await new Promise((resolve) => setTimeout(resolve, 300))

  const apiRequests = stack.api.logs.filter((line) => line.includes('"incoming request"')).length
  assert.ok(apiRequests >= sent.length, `the api logged ${apiRequests} requests: the scan must see them`)
  for (const service of [stack.api, stack.caller, stack.mockImds]) {
    assert.ok(service.logs.length > 0, `${service.name} logged nothing`)
    for (const line of service.logs) {
      for (const part of [header, payload, signature]) assert.ok(!line.includes(part), `${service.name} logged a token segment: ${line.slice(0, 300)}`)
      assert.doesNotMatch(line, JWT, `${service.name} logged a JWT: ${line.slice(0, 300)}`)
      assert.doesNotMatch(line, AUTHORIZATION_VALUE, `${service.name} logged an Authorization value: ${line.slice(0, 300)}`)
    }
  }
})
