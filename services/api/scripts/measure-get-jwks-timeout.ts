/*
 * Measures whether get-jwks 11 honours a timeout: a loopback JWKS endpoint that answers after
 * DELAY_MS, asked through get-jwks with every timeout knob its README and typings offer set to
 * 1 s, then through fetch with a per-call AbortSignal.timeout (what our key store does).
 * Run: node services/api/scripts/measure-get-jwks-timeout.ts
 */
import { generateKeyPairSync } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import buildGetJwks from 'get-jwks'

const delayMs = Number(process.env.DELAY_MS ?? 4000)
const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'k1', use: 'sig' }
const server = createServer((_request, response) => {
  setTimeout(() => { response.setHeader('content-type', 'application/json'); response.end(JSON.stringify({ keys: [jwk] })) }, delayMs)
})
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
const domain = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`

async function time (label: string, run: () => Promise<unknown>) {
  const start = performance.now()
  let outcome: string
  try { await run(); outcome = 'resolved' } catch (error) { outcome = `rejected ${(error as Error).name}` }
  console.log(JSON.stringify({ variant: label, outcome, elapsedMs: Math.round(performance.now() - start), endpointDelayMs: delayMs }))
}

// The options get-jwks documents (timeout) or merges into fetch (fetchOptions.timeout), all 1 s.
const options = { jwksPath: '.well-known/jwks.json', timeout: 1000, fetchOptions: { timeout: 1000 } }
const getJwks = buildGetJwks(options as Parameters<typeof buildGetJwks>[0])
await time('get-jwks getJwk, timeout: 1000 and fetchOptions.timeout: 1000', () => getJwks.getJwk({ domain, alg: 'RS256', kid: 'k1' }))
await time('fetch with AbortSignal.timeout(1000)', () => fetch(`${domain}.well-known/jwks.json`, { signal: AbortSignal.timeout(1000) }).then((r) => r.json()))
server.closeAllConnections()
server.close()
