import { createHash, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import Fastify, { type FastifyInstance } from 'fastify'
import { createSigner } from 'fast-jwt'
import { defaultTenant } from '../../scripts/lib/local-stack.ts'

/**
 * The bench's own Entra stand-in: an RSA key, a token mint, and a server with Entra's discovery and
 * JWKS paths. mock-imds caches one token per identity, and rows 3 to 5 need thousands of distinct
 * valid tokens; minting them here, with the same claims mock-imds issues, is the honest way.
 * The server counts every fetch, which is how the flood rows count JWKS fetches.
 */

export const tenant = defaultTenant()
export const callerClientId = '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d'
export const callerPrincipalId = '1b2c3d4e-5f6a-4b7c-9d8e-0f1a2b3c4d5e'
export const issuerV2 = `https://login.microsoftonline.com/${tenant.tenantId}/v2.0`
export const issuerV1 = `https://sts.windows.net/${tenant.tenantId}/`
/** What the api and every peer accept as aud: the v2 token's aud is the api's client ID. */
export const audiences = [tenant.apiClientId, tenant.apiAppIdUri]
export const requiredRole = 'DoAll'

interface RsaKey {
  kid: string
  privatePem: string
  jwk: { kty: 'RSA', use: 'sig', kid: string, x5t: string, n: string, e: string }
}

function createKey (): RsaKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const kid = createHash('sha1').update(publicKey.export({ format: 'der', type: 'spki' })).digest('base64url')
  const { n, e } = publicKey.export({ format: 'jwk' })
  return {
    kid,
    privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    jwk: { kty: 'RSA', use: 'sig', kid, x5t: kid, n: n as string, e: e as string }
  }
}

export type TokenKind = 'valid' | 'expired' | 'badSignature' | 'wrongAudience' | 'randomKid' | 'garbage'

const opaque = (bytes: number) => randomBytes(bytes).toString('base64url')

export class TokenMint {
  readonly key = createKey()
  // A key nobody publishes, to forge signatures under the real kid.
  private readonly forger = createKey()
  private readonly sign = createSigner({ key: this.key.privatePem, algorithm: 'RS256', kid: this.key.kid, header: { alg: 'RS256', typ: 'JWT' } })
  private readonly forge = createSigner({ key: this.forger.privatePem, algorithm: 'RS256', kid: this.key.kid, header: { alg: 'RS256', typ: 'JWT' } })

  /** Claims as mock-imds issues them to the caller's system-assigned identity (v2 token). */
  claims (overrides: Record<string, unknown> = {}): Record<string, unknown> {
    const now = Math.floor(Date.now() / 1000)
    return {
      aud: tenant.apiClientId,
      iss: issuerV2,
      iat: now - 300,
      nbf: now - 300,
      exp: now + 3 * 3600,
      aio: opaque(40),
      azp: callerClientId,
      azpacr: '2',
      idtyp: 'app',
      oid: callerPrincipalId,
      rh: `0.${opaque(48)}.`,
      roles: [requiredRole],
      sub: callerPrincipalId,
      tid: tenant.tenantId,
      uti: opaque(16),
      ver: '2.0',
      xms_mirid: '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/msi-pair/providers/Microsoft.Compute/virtualMachineScaleSets/caller',
      ...overrides
    }
  }

  token (kind: TokenKind): string {
    const now = Math.floor(Date.now() / 1000)
    switch (kind) {
      case 'valid': return this.sign(this.claims())
      // Well past the five minutes of clock skew any validator allows.
      case 'expired': return this.sign(this.claims({ iat: now - 7200, nbf: now - 7200, exp: now - 3600 }))
      case 'badSignature': return this.forge(this.claims())
      case 'wrongAudience': return this.sign(this.claims({ aud: randomUUID() }))
      case 'randomKid': {
        // No key can match, so no signature is needed: the kid alone decides whether a fetch happens.
        const header = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: opaque(20) })).toString('base64url')
        const payload = Buffer.from(JSON.stringify(this.claims())).toString('base64url')
        return `${header}.${payload}.${opaque(256)}`
      }
      case 'garbage': {
        const shapes = [() => opaque(64), () => `${opaque(20)}.${opaque(30)}`, () => `${opaque(30)}.${opaque(200)}.${opaque(40)}`, () => 'eyJhbGciOiJub25lIn0.e30.']
        return (shapes[Math.floor(Math.random() * shapes.length)] as () => string)()
      }
    }
  }

  tokens (kind: TokenKind, count: number): string[] {
    return Array.from({ length: count }, () => this.token(kind))
  }
}

export function writeTokens (file: string, tokens: string[]): string {
  writeFileSync(file, JSON.stringify(tokens))
  return file
}

export interface IssuerCounts {
  discovery: number
  jwks: number
  failed: number
}

export interface IssuerServer {
  url: string
  counts: IssuerCounts
  app: FastifyInstance
  close: () => Promise<void>
}

export interface IssuerServerOptions {
  keys: Array<RsaKey['jwk']>
  /**
   * mock-imds's URL, for the soak: its keys are served next to ours and its JWKS and discovery
   * faults come through, so that rotations and outages at mock-imds reach the api.
   */
  upstream?: string
}

/** Entra's discovery documents (v2 and v1) and JWKS paths for the default tenant, on loopback. */
export async function startIssuerServer (options: IssuerServerOptions): Promise<IssuerServer> {
  const app = Fastify({ logger: false })
  const counts: IssuerCounts = { discovery: 0, jwks: 0, failed: 0 }
  const { tenantId } = tenant
  let host = ''

  const upstream = async (path: string): Promise<{ status: number, body: unknown }> => {
    if (!options.upstream) return { status: 200, body: null }
    try {
      const response = await fetch(`${options.upstream}${path}`, { signal: AbortSignal.timeout(10_000) })
      const text = await response.text()
      let body: unknown = text
      try { body = JSON.parse(text) } catch { /* an outage's HTML or garbage: passed on as is */ }
      return { status: response.status, body }
    } catch {
      return { status: 504, body: { error: 'upstream_unreachable' } }
    }
  }

  const discovery = (version: '1.0' | '2.0') => ({
    issuer: version === '2.0' ? issuerV2 : issuerV1,
    jwks_uri: `${host}/${tenantId}/discovery/${version === '2.0' ? 'v2.0/' : ''}keys`,
    token_endpoint: `${host}/${tenantId}/oauth2/${version === '2.0' ? 'v2.0/' : ''}token`,
    id_token_signing_alg_values_supported: ['RS256'],
    response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
    subject_types_supported: ['pairwise']
  })

  for (const version of ['1.0', '2.0'] as const) {
    const suffix = version === '2.0' ? 'v2.0/' : ''
    app.get(`/${tenantId}/${suffix}.well-known/openid-configuration`, async (_request, reply) => {
      counts.discovery++
      const answer = await upstream(`/${tenantId}/${suffix}.well-known/openid-configuration`)
      if (answer.status !== 200) { counts.failed++; return reply.code(answer.status).send(answer.body) }
      return discovery(version)
    })
    app.get(`/${tenantId}/discovery/${suffix}keys`, async (_request, reply) => {
      counts.jwks++
      const answer = await upstream(`/${tenantId}/discovery/${suffix}keys`)
      if (answer.status !== 200) { counts.failed++; return reply.code(answer.status).send(answer.body) }
      const upstreamKeys = (answer.body as { keys?: unknown[] } | null)?.keys ?? []
      const own = options.keys.map((jwk) => version === '2.0' ? { ...jwk, issuer: 'https://login.microsoftonline.com/{tenantid}/v2.0' } : jwk)
      return { keys: [...own, ...upstreamKeys] }
    })
  }

  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('issuer: no address')
  host = `http://127.0.0.1:${address.port}`
  return { url: host, counts, app, close: () => app.close() }
}

/** How the api, and every peer, is pointed at an issuer server. */
export const targetEnv = (issuerUrl: string): Record<string, string> => ({
  AUTH_AUTHORITY_HOST: issuerUrl,
  AUTH_TENANT_ID: tenant.tenantId,
  AUTH_AUDIENCE: audiences.join(','),
  ISSUER_URL: issuerUrl,
  TENANT_ID: tenant.tenantId,
  AUDIENCES: audiences.join(','),
  REQUIRED_ROLE: requiredRole
})
