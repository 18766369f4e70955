import assert from 'node:assert/strict'
import { createRemoteJWKSet, decodeJwt, jwtVerify, type JWTPayload } from 'jose'

interface Discovery { issuer: string, jwks_uri: string }

/**
 * A second validator, independent of the api's fast-jwt + get-jwks: jose, configured only from
 * mock-imds's discovery document, the way any OpenID Connect relying party would configure it.
 */
export class JoseValidator {
  private readonly mockUrl: string
  private readonly tenantId: string
  private readonly byVersion = new Map<string, { discovery: Discovery, jwks: ReturnType<typeof createRemoteJWKSet> }>()

  constructor (mockUrl: string, tenantId: string) {
    this.mockUrl = mockUrl
    this.tenantId = tenantId
  }

  private async configuration (version: string) {
    let config = this.byVersion.get(version)
    if (!config) {
      const path = version === '2.0' ? `${this.tenantId}/v2.0/.well-known/openid-configuration` : `${this.tenantId}/.well-known/openid-configuration`
      const response = await fetch(`${this.mockUrl}/${path}`)
      assert.equal(response.status, 200)
      const discovery = await response.json() as Discovery
      config = { discovery, jwks: createRemoteJWKSet(new URL(discovery.jwks_uri)) }
      this.byVersion.set(version, config)
    }
    return config
  }

  /** Verifies signature, issuer (from discovery), audience and lifetime; returns the claims. */
  async verify (token: string, audience: string): Promise<JWTPayload> {
    // Microsoft: validate a v1 token against v1 metadata and a v2 token against v2 metadata.
    const version = String(decodeJwt(token).ver)
    const { discovery, jwks } = await this.configuration(version)
    const { payload } = await jwtVerify(token, jwks, { issuer: discovery.issuer, audience, algorithms: ['RS256'] })
    return payload
  }
}

/** The api's own validation: GET /claims with the token. 200 with the claims, or the rejection. */
export async function apiVerdict (apiUrl: string, token: string): Promise<{ status: number, claims?: Record<string, unknown>, wwwAuthenticate: string | null }> {
  const response = await fetch(`${apiUrl}/claims`, { headers: { authorization: `Bearer ${token}` } })
  const body = await response.json() as Record<string, unknown>
  return {
    status: response.status,
    ...(response.status === 200 ? { claims: body } : {}),
    wwwAuthenticate: response.headers.get('www-authenticate')
  }
}
