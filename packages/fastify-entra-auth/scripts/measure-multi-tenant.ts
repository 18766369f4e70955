/*
 * Multi-tenant mode under a flood of random tids (issue 12 §3): discovery/JWKS requests and RSS after
 * 10,000 tokens with random tids, (a) forged (a real kid, a wrong signature: what anyone can send) and
 * (b) validly signed for 10,000 distinct tenants (what only 10,000 real tenants could send), with the
 * default maxTenants (1000). Real HTTP on loopback (inject retains about 10 KB per request in this
 * Fastify version, measured with a bare route, which would drown the figures), RSS and heap after a forced GC.
 * Run: npx node --expose-gc packages/fastify-entra-auth/scripts/measure-multi-tenant.ts   (COUNT=10000)
 */
import { randomUUID } from 'node:crypto'
import Fastify from 'fastify'
import { Pool } from 'undici'
import { Registry } from 'prom-client'
import { fastifyEntraAuth } from '../src/index.ts'
import { API_CLIENT_ID, TestAuthority, appClaims, createTestKey, mint } from '../test/helpers/authority.ts'

const COUNT = Number(process.env.COUNT ?? 10_000)
const gc = (globalThis as { gc?: () => void }).gc
if (!gc) throw new Error('run with --expose-gc')
const mib = (bytes: number) => Math.round(bytes / 1024 / 1024 * 10) / 10
/** After a forced GC: RSS (what the OS sees; V8 keeps freed pages) and the live JS heap (what is held). */
const memory = () => { gc(); gc(); const { rss, heapUsed, external } = process.memoryUsage(); return { rssMiB: mib(rss), heapUsedMiB: mib(heapUsed), externalMiB: mib(external) } }

const key = createTestKey()
const forger = createTestKey({ kid: key.kid })
const authority = await TestAuthority.start({ common: [key] })
authority.anyTenantKeys = [key]
const app = Fastify({ logger: false })
await app.register(fastifyEntraAuth, { tenants: '*', audiences: [API_CLIENT_ID], authorityHost: authority.url, registry: new Registry() })
app.get('/claims', { config: { auth: { roles: ['DoAll'] } } }, async () => 'ok')
const origin = await app.listen({ host: '127.0.0.1', port: 0 })
const pool = new Pool(origin, { connections: 8 })
const tenantRequests = () => authority.urls.filter((url) => !url.startsWith('/common/')).length

async function flood (label: string, signer: typeof key) {
  const tokens = Array.from({ length: COUNT }, () => mint(signer, appClaims({}, '2.0', randomUUID())))
  const memoryBefore = memory()
  const requestsBefore = authority.urls.length
  const tenantBefore = tenantRequests()
  const statuses = new Map<number, number>()
  const started = performance.now()
  // Eight requests in flight at a time.
  let next = 0
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < tokens.length) {
      const token = tokens[next++] as string
      const { statusCode, body } = await pool.request({ method: 'GET', path: '/claims', headers: { authorization: `Bearer ${token}` } })
      await body.dump()
      statuses.set(statusCode, (statuses.get(statusCode) ?? 0) + 1)
    }
  }))
  const seconds = (performance.now() - started) / 1000
  console.log(JSON.stringify({
    flood: label,
    tokens: COUNT,
    statuses: Object.fromEntries(statuses),
    requestsToAuthority: authority.urls.length - requestsBefore,
    tenantDocumentRequests: tenantRequests() - tenantBefore,
    tenantsHeld: app.entraAuth.keyStore.tenantCount(),
    before: memoryBefore,
    after: memory(),
    seconds: Math.round(seconds * 10) / 10
  }))
}

console.log(JSON.stringify({ node: process.version, start: { ...memory(), tenantsHeld: app.entraAuth.keyStore.tenantCount(), requestsToAuthority: authority.urls.length } }))
await flood('forged, random tids', forger)
await flood('validly signed, random tids (10,000 tenants)', key)
await pool.close()
await app.close()
await authority.stop()
