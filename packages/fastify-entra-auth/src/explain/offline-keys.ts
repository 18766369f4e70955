import { generateKeyPairSync, sign } from 'node:crypto'
import { createVerifier } from 'fast-jwt'
import type { KeyLookup, SigningKey } from '../key-store.ts'
import { expandAudiences, type KeyProvider, type TokenVersion } from '../token-validation.ts'
import { expectedIssuer } from './clouds.ts'

/*
 * The key provider of explain's offline mode: every kid is "found", and its verify() runs fast-jwt with
 * exactly the settings the KeyStore gives each real key (src/key-store.ts, buildKey: RS256, allowedIss =
 * the discovery document's issuer, allowedAud, the required claims of the version, the clock tolerance)
 * over the token's own header and payload text, re-signed with a throwaway key. So every check the api
 * runs happens as in the api, except these, which need the tenant's published keys:
 *   - the kid is among the tenant's keys for that version (unknown_key), and the keys load at all (keys_unavailable);
 *   - the RS256 signature (bad_signature);
 *   - the signing key's issuer member (EnableAadSigningKeyIssuerValidation, IDX40005: wrong_issuer);
 *   - iss is compared with the issuer derived from the authority host (explain/clouds.ts) rather than
 *     read from the tenant's discovery document.
 */

/** What offline mode does not check, each with the reason it would answer. */
export const OFFLINE_SKIPS = Object.freeze([
  'the kid is one of the tenant\'s published signing keys (unknown_key) and the keys can be loaded (keys_unavailable)',
  'the RS256 signature (bad_signature)',
  'the signing key\'s issuer (IDX40005, wrong_issuer)',
  'the issuer is compared with the one derived from the authority host, not read from the discovery document'
])

// One throwaway key per process: 2048-bit generation costs ~50 ms, and it never signs anything that leaves.
let throwaway: ReturnType<typeof generateKeyPairSync> | undefined

export interface OfflineKeyOptions {
  authorityHost: string
  audiences: string[]
  clockToleranceMs: number
}

export class OfflineKeys implements KeyProvider {
  private readonly options: OfflineKeyOptions
  private readonly verifiers = new Map<string, SigningKey>()
  /** Set when find() was called: the checks before the key lookup passed. */
  lookedUp = false

  constructor (options: OfflineKeyOptions) {
    this.options = options
  }

  find (tenant: string, version: TokenVersion, kid: string): KeyLookup {
    this.lookedUp = true
    const issuer = expectedIssuer(this.options.authorityHost, tenant, version).issuer
    const v2Issuer = expectedIssuer(this.options.authorityHost, tenant, '2.0').issuer
    const id = `${tenant}|${version}`
    let key = this.verifiers.get(id)
    if (key === undefined) {
      key = this.unsignedKey(kid, issuer, version)
      this.verifiers.set(id, key)
    }
    return { state: 'found', key, issuer, keyIssuer: undefined, v2Issuer }
  }

  async refreshForUnknownKid (): Promise<void> {}

  private unsignedKey (kid: string, issuer: string, version: TokenVersion): SigningKey {
    throwaway ??= generateKeyPairSync('rsa', { modulusLength: 2048 })
    const { privateKey, publicKey } = throwaway
    const verifier = createVerifier({
      key: publicKey.export({ type: 'spki', format: 'pem' }) as string,
      algorithms: ['RS256'],
      allowedIss: issuer,
      allowedAud: expandAudiences(this.options.audiences),
      requiredClaims: ['iss', 'aud', 'exp', 'nbf', 'iat', 'tid', 'oid', 'sub', 'ver', version === '2.0' ? 'azp' : 'appid'],
      clockTolerance: this.options.clockToleranceMs,
      cache: false
    })
    return {
      kid,
      issuer: undefined,
      verify (token) {
        const input = token.slice(0, token.lastIndexOf('.'))
        const signature = sign('sha256', Buffer.from(input), privateKey).toString('base64url')
        return { payload: verifier(`${input}.${signature}`) as Record<string, unknown>, fromCache: false }
      }
    }
  }
}
