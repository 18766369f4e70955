/*
 * The api's refusal reason (fastify-entra-auth's auth_requests_total reason label), read from the fixed
 * error_description of its RFC 6750 challenge: each description belongs to exactly one reason, so the
 * caller can name the reason without the api putting anything new on the wire. The caller does not
 * import the auth package (it ships without it); services/caller/test/api-reason.test.ts reads every
 * description out of the package's source and fails when one is missing here or maps elsewhere. An entry
 * the package no longer uses is harmless (it never matches), so the table may run ahead of a release.
 */

const BY_DESCRIPTION: Readonly<Record<string, string>> = Object.freeze({
  'a Bearer token is required': 'missing_token',
  'exactly one Authorization header is allowed': 'malformed',
  'the Authorization header must be exactly one Bearer token': 'malformed',
  'send the token in the Authorization header only': 'malformed',
  'the token is malformed': 'malformed',
  'the token is too large': 'malformed',
  'the token is not a signed JWT': 'malformed',
  'the token header is not a JSON object': 'malformed',
  'the token type must be JWT': 'malformed',
  'a token header parameter has the wrong type': 'malformed',
  'the token header has a parameter that is not accepted': 'malformed',
  'the token header lacks a valid kid': 'malformed',
  'the token payload is not a JSON object': 'malformed',
  'the token must be signed with RS256': 'unsupported_alg',
  'the signature key was not found': 'unknown_key',
  'the token signature is invalid': 'bad_signature',
  'the token expired': 'expired',
  'the token is not valid yet': 'not_yet_valid',
  'the token is not for this audience': 'wrong_audience',
  'the token issuer is not accepted': 'wrong_issuer',
  'the signing key does not belong to the token issuer': 'wrong_issuer',
  'the token tenant is not accepted': 'wrong_tenant',
  'the token version is not accepted': 'wrong_version',
  'the token lacks a required claim': 'missing_claim',
  'a token claim has the wrong type or value': 'invalid_claim',
  'a token time is not a NumericDate in range': 'invalid_claim',
  'the token repeats a claim': 'invalid_claim',
  'an app-only token is required, not a delegated one': 'delegated_token',
  'the token lacks a required app role': 'missing_role',
  'the signing keys are not available yet': 'keys_unavailable'
})

/** Every description the caller knows, with its reason (for the test that keeps this in step with the api). */
export const API_REASONS_BY_DESCRIPTION = BY_DESCRIPTION

/**
 * The api's reason for a refusal, from its WWW-Authenticate challenge (error_description, RFC 6750 §3),
 * or from the JSON body's error_description; undefined when neither names a known description.
 */
export function apiRefusalReason (wwwAuthenticate: string | undefined, body: unknown): string | undefined {
  const fromHeader = /error_description="([^"]*)"/.exec(wwwAuthenticate ?? '')?.[1]
  const fromBody = typeof body === 'object' && body !== null ? (body as { error_description?: unknown }).error_description : undefined
  const description = fromHeader ?? (typeof fromBody === 'string' ? fromBody : undefined)
  return description === undefined ? undefined : BY_DESCRIPTION[description]
}

/**
 * Where to look next, for the 502 body: explain runs the api's own checks on the token and prints the
 * fix. The caller never echoes its token, so the pointer says how to get the same token.
 */
export function explainPointer (scope: string): string {
  const resource = scope.replace(/\/\.default$/, '')
  return 'To see why and what to change: run `npm run explain -- --keys <token>` (the entra-explain bin of fastify-entra-auth) ' +
    'with the api\'s AUTH_* settings in the environment. The same token as the caller\'s, from its host: ' +
    `curl -s -H Metadata:true "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=${resource}" ` +
    '(on Container Apps: $IDENTITY_ENDPOINT with the X-IDENTITY-HEADER header; locally: the mock-imds URL).'
}
