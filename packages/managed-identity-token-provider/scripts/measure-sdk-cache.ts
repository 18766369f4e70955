/**
 * What the SDK's token cache and mock-imds's cache (which, like IMDS, serves its cached token until
 * the last 5 minutes) answer at the caller's refresh points of a 24 h token. A fake clock jumps
 * through the day; each line is one getToken through ManagedIdentityEndpoint, with the HTTP exchanges it
 * made. Run: node packages/managed-identity-token-provider/scripts/measure-sdk-cache.ts (the numbers are in the README).
 */
import { installJumpingClock } from '../test/jumping-clock.ts'

const clock = installJumpingClock()

const { buildMockImds } = await import('../../mock-imds/src/index.ts')
const mock = await buildMockImds({ logLevel: 'silent' })
const address = await mock.listen({ host: '127.0.0.1', port: 0 })
// Read by the SDK at its first token request: set before the credential is used.
process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = address

const { ManagedIdentityEndpoint } = await import('../src/endpoint.ts')
const endpoint = new ManagedIdentityEndpoint({ selector: { kind: 'system' } })

let firstExpiresOn: number | undefined
const points: Array<[string, number]> = [
  ['start', 0], ['again', 0],
  ['13 h (past the SDK refreshAfter)', 13], ['13 h, read again', 13],
  ['18 h', 18], ['18 h, read again', 18],
  ['23 h 57 min (last 300 s)', 23.95], ['23 h 57 min, read again', 23.95]
]
for (const [label, hours] of points) {
  clock.jumpToHours(hours)
  const { token, exchanges } = await endpoint.attempt(['api://msi-pair-api/.default'], 2000)
  firstExpiresOn ??= token.expiresOnTimestamp
  const refreshAfter = token.refreshAfterTimestamp === undefined ? '-' : `${((token.refreshAfterTimestamp - Date.now()) / 3_600_000).toFixed(2)} h`
  console.log(`${label.padEnd(34)} HTTP ${JSON.stringify(exchanges.map((e) => e.status)).padEnd(6)} ` +
    `${token.expiresOnTimestamp === firstExpiresOn ? 'first token' : 'NEW token  '}  SDK refreshAfter in ${refreshAfter}`)
}
await mock.close()
