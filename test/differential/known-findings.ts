import type { AllowedDifference } from './allowed-differences.ts'
import { claimOp, has, type Observation } from './compare.ts'

/**
 * Disagreements the differential test found, written up in FINDINGS.md (same ids): the api is wrong and
 * is to be fixed. Each is counted and reported, not failed, until its fix lands; then its entry goes.
 */

const NOT_UNICODE = ['invalid UTF-8', 'overlong UTF-8', 'lone high surrogate', 'lone low surrogate']
/** The api authenticated the token (then answered 200, or 403 for its role or app-only rules). */
const authenticated = (api: string) => api === 'accept' || api === 'forbid'
const oracleSaid = (o: Observation, ...codes: string[]) => codes.includes(o.oracle.reason ?? '')

export const KNOWN_FINDINGS: AllowedDifference[] = [
  {
    id: 'F1-v1-signing-key-issuer',
    reason: 'A v1 token signed by a key whose v2 JWKS entry names another tenant is accepted; Microsoft refuses it (IDX40005).',
    applies: (o, api, ms) => authenticated(api) && ms === 'reject' && oracleSaid(o, 'IDX40005') &&
      o.testCase.spec.version === '1.0' && has(o.testCase, (m) => m.kind === 'signer' && m.key === 'otherTenant')
  },
  {
    id: 'F2-noncanonical-base64url',
    reason: 'A segment whose last character has unused low bits set (same bytes, another spelling) is accepted; Microsoft refuses it (IDX10511 signature, IDX14101 payload, IDX14102 header).',
    applies: (o, api, ms) => authenticated(api) && ms === 'reject' && oracleSaid(o, 'IDX10511', 'IDX14101', 'IDX14102') &&
      has(o.testCase, (m) => m.kind === 'encoding' && m.op === 'noncanonical')
  },
  {
    id: 'F3-not-unicode',
    reason: 'A claim with invalid UTF-8 or a lone surrogate is accepted; Microsoft refuses the payload (IDX14101).',
    applies: (o, api, ms) => authenticated(api) && ms === 'reject' && oracleSaid(o, 'IDX14101') &&
      has(o.testCase, (m) => m.kind === 'claim' && m.op === 'set' && NOT_UNICODE.includes(m.label))
  },
  {
    id: 'F4-padding-is-400',
    reason: 'A token whose header or payload segment has "=" padding or the standard alphabet gets 400 invalid_request; it is a bad token, 401 invalid_token (RFC 6750 §3.1).',
    applies: (o, api) => api === 'bad-request' && o.api.description === 'the Authorization header must be exactly one Bearer token' &&
      has(o.testCase, (m) => m.kind === 'encoding' && m.segment !== 'signature' && (m.op === 'padding' || m.op === 'std-alphabet'))
  },
  {
    id: 'F5-member-types',
    reason: 'A header or payload member that JWT/JWS define with a type (x5t a string; azp a string) is accepted with another type when the api does not use it; Microsoft refuses the token (IDX14102 header, IDX14101 payload).',
    applies: (o, api, ms) => authenticated(api) && ms === 'reject' && oracleSaid(o, 'IDX14101', 'IDX14102') &&
      (has(o.testCase, (m) => m.kind === 'header' && m.name === 'x5t' && m.op === 'set') ||
       (o.testCase.spec.version === '1.0' && claimOp(o.testCase, 'azp', ['set'])))
  },
  {
    id: 'F6-v1-key-without-v2-entry',
    reason: 'A v1 token signed by a key published only in the v1 JWKS (so its issuer cannot be checked) is accepted; Microsoft refuses it (IDX10503, the key is not in the v2 configuration).',
    applies: (o, api, ms) => authenticated(api) && ms === 'reject' && oracleSaid(o, 'IDX10503', 'IDX10517') &&
      o.testCase.spec.version === '1.0' && has(o.testCase, (m) => m.kind === 'signer' && m.key === 'v1Only')
  },
  {
    id: 'F7-typ-media-type',
    reason: 'typ "application/jwt" is refused; RFC 7515 §4.1.9 makes it the same media type as "JWT".',
    applies: (o, api, ms) => api === 'reject' && ms === 'accept' && o.api.description === 'the token type must be JWT' &&
      has(o.testCase, (m) => m.kind === 'header' && m.name === 'typ' && m.op === 'set' && m.label === '"application/jwt"')
  },
  {
    id: 'F8-numeric-date-range',
    reason: 'exp, nbf or iat of 1e20, 2^63, 1e400 (Infinity) or -1e400 is accepted (exp 1e20 never expires); Microsoft refuses a NumericDate a 64-bit integer cannot hold (IDX14101).',
    applies: (o, api, ms) => authenticated(api) && ms === 'reject' && oracleSaid(o, 'IDX14101') &&
      has(o.testCase, (m) => m.kind === 'claim' && ['exp', 'nbf', 'iat'].includes(m.name) && m.op === 'set' && ['1e20', '1e400', '-1e400', '2^63'].includes(m.label))
  }
]
