import { createHash, generateKeyPairSync } from 'node:crypto'
import { createSigner } from 'fast-jwt'

export type TokenVersion = '1.0' | '2.0'

export interface SigningKey {
  kid: string
  /** The public key as Entra publishes it (n, e, kid, and x5t, which Entra sets equal to kid). */
  jwk: { kty: 'RSA', use: 'sig', kid: string, x5t: string, n: string, e: string }
  sign: (claims: Record<string, unknown>, version: TokenVersion) => string
}

/**
 * An RSA key made in memory at start: nothing is ever written to disk or into an image layer.
 * The kid is the base64url SHA-1 thumbprint of the public key, the shape Entra's kid and x5t have.
 */
export function createSigningKey (): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const kid = createHash('sha1').update(publicKey.export({ format: 'der', type: 'spki' })).digest('base64url')
  const { n, e } = publicKey.export({ format: 'jwk' })
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
  // Entra puts x5t in v1 token headers only; one signer per header shape, built once.
  const signers = {
    '1.0': createSigner({ key: pem, algorithm: 'RS256', kid, header: { alg: 'RS256', typ: 'JWT', x5t: kid } }),
    '2.0': createSigner({ key: pem, algorithm: 'RS256', kid, header: { alg: 'RS256', typ: 'JWT' } })
  }
  return {
    kid,
    jwk: { kty: 'RSA', use: 'sig', kid, x5t: kid, n: n as string, e: e as string },
    sign: (claims, version) => signers[version](claims)
  }
}
