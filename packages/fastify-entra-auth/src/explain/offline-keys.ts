import { generateKeyPairSync, sign, verify } from 'node:crypto'
import { createVerifier } from 'fast-jwt'
import type { KeyLookup, SigningKey } from '../key-store.ts'
import { expandAudiences, type KeyProvider, type TokenVersion } from '../token-validation.ts'
import { expectedIssuer } from './clouds.ts'

/*
 * explain's offline mode. The api's validator needs a signing key for the tenant's kid; offline there is
 * none, so explain hands the validator the token's own header and payload re-signed with a throwaway
 * key (resign), and this provider answers every kid with that key, built as the KeyStore builds each real
 * key (RS256, the discovery document's issuer, the audiences, the version's required claims, the clock
 * tolerance). Whatever way the validator verifies (fast-jwt, or node:crypto with the key's publicKey),
 * every check runs as in the api except these, which need the tenant's published keys:
 *   - the kid is among the tenant's keys for that version (unknown_key), and the keys load at all (keys_unavailable);
 *   - the RS256 signature (bad_signature);
 *   - the signing key's issuer member (EnableAadSigningKeyIssuerValidation, IDX40005: wrong_issuer);
 *   - iss is compared with the issuer derived from the authority host (explain/clouds.ts) rather than
 *     read from the tenant's discovery document.
 * The checks on the signature segment's text (canonical base64url) run on the original token first
 * (explain.ts), so re-signing hides nothing else.
 */

/** What offline mode does not check, each with the reason it would answer. */
export const OFFLINE_SKIPS = Object.freeze([
  'the kid (and a header x5t) name one of the tenant\'s published signing keys (unknown_key) and the keys can be loaded (keys_unavailable)',
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
  /** Set when find() was called: the original token passed every check before the key lookup. */
  lookedUp = false
  /** false: a probe that answers "unknown kid" (first pass, on the original token); true: the throwaway key. */
  answerWithKey = false

  constructor (options: OfflineKeyOptions) {
    this.options = options
  }

  find (tenant: string, version: TokenVersion, kid: string): KeyLookup {
    this.lookedUp = true
    if (!this.answerWithKey) return { state: 'unknown' }
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
    const { publicKey } = throwaway
    const verifier = createVerifier({
      key: publicKey.export({ type: 'spki', format: 'pem' }) as string,
      algorithms: ['RS256'],
      allowedIss: issuer,
      allowedAud: expandAudiences(this.options.audiences),
      requiredClaims: ['iss', 'aud', 'exp', 'nbf', 'iat', 'tid', 'oid', 'sub', 'ver', version === '2.0' ? 'azp' : 'appid'],
      clockTolerance: this.options.clockToleranceMs,
      cache: false
    })
    // A variable, not a literal: the same object satisfies SigningKey with or without publicKey/signatureValid.
    const key = {
      kid,
      issuer: undefined,
      fingerprint: 'explain-offline',
      publicKey,
      signatureValid: (token: string) => {
        const dot = token.lastIndexOf('.')
        return verify('sha256', Buffer.from(token.slice(0, dot)), publicKey, Buffer.from(token.slice(dot + 1), 'base64url'))
      },
      verify: (token: string) => ({ payload: verifier(token) as Record<string, unknown>, fromCache: false })
    }
    return key as SigningKey
  }
}

/** The token's header and payload text, signed with the throwaway key that OfflineKeys answers with. */
export function resign (token: string): string {
  throwaway ??= generateKeyPairSync('rsa', { modulusLength: 2048 })
  const input = token.slice(0, token.lastIndexOf('.'))
  return `${input}.${sign('sha256', Buffer.from(input), throwaway.privateKey).toString('base64url')}`
}
