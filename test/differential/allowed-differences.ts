import { because, claimOp, has, headerOp, type Decision, type Observation } from './compare.ts'
import type { Mutation } from './tokens.ts'

/**
 * A difference between the api and Microsoft's validator. `applies` must name both the mutation that
 * causes it and the api's own reason code (and, where one code covers several rules, its
 * error_description), so that an entry cannot hide a disagreement of another kind.
 */
export interface AllowedDifference {
  id: string
  /** Why the api decides otherwise, with the rule's source. */
  reason: string
  applies: (o: Observation, api: Decision, oracle: Decision) => boolean
}

const stricter = (api: Decision, oracle: Decision) => api === 'reject' && (oracle === 'accept' || oracle === 'forbid')

/** Claim names a managed identity token carries once: any other spelling of them is a case-variant repeat. */
const CASE_VARIANTS = new Set(['TID', 'Tid', 'AUD', 'Aud', 'ISS', 'Roles', 'SCP', 'Exp'])
const isArrayValue = (m: Mutation) => (m.kind === 'claim') && m.op !== 'absent' && 'json' in m.value && Array.isArray(m.value.json)

/**
 * Where the api is stricter than Microsoft.Identity.Web on purpose: exactly the table "Stricter than
 * Microsoft.Identity.Web" of packages/fastify-entra-auth/README.md (same ids, same reasons; a test keeps
 * them in step). Nothing else may differ.
 */
export const ALLOWED_DIFFERENCES: AllowedDifference[] = [
  {
    id: 'rs256-only',
    reason: 'Entra signs access tokens with RS256 only (id_token_signing_alg_values_supported: ["RS256"]); Microsoft leaves ValidAlgorithms null and accepts any algorithm the RSA key can verify (RS384, RS512, PS256).',
    applies: (o, api, ms) => stricter(api, ms) && because(o, ['unsupported_alg']) &&
      has(o.testCase, (m) => m.kind === 'alg' && ['RS384', 'RS512', 'PS256'].includes(m.alg))
  },
  {
    id: 'configured-tenants-only',
    reason: 'A token whose tid names a tenant the api is not configured for (tenants) is refused. Microsoft.Identity.Web\'s AadIssuerValidator accepts any tenant whose iss matches its tid through the {tenantid} template (Entra\'s keys are common to all tenants) and leaves restricting tenants to the app; with a tenant\'s own authority it compares iss with that tenant\'s issuer and never reads tid, so a token whose tid alone names another tenant passes unless its key\'s issuer names a tenant. Set tenants: \'*\' to accept any tenant.',
    applies: (o, api, ms) => stricter(api, ms) && because(o, ['wrong_tenant']) &&
      has(o.testCase, (m) => m.kind === 'tenant' && m.part !== 'iss')
  },
  {
    id: 'x5t-names-the-kid-key',
    reason: 'A header x5t must name the same key as kid (the JWK\'s x5t; Entra: the same thumbprint). Microsoft takes the first JWKS key whose id equals kid or x5t (JwtTokenUtilities.ResolveTokenSigningKey), so it refuses such a token or not depending on the order of the JWKS.',
    applies: (o, api, ms) => stricter(api, ms) && because(o, ['unknown_key']) && headerOp(o.testCase, 'x5t', ['set'])
  },
  {
    id: 'roles-claim-only',
    reason: 'App roles are read from the roles claim only, where Entra puts them (Microsoft Learn, access token claims reference); Microsoft.Identity.Web also reads a "role" claim and ClaimTypes.Role\'s URI (inbound mapping), which Entra does not send in access tokens.',
    applies: (o, api, ms) => api === 'forbid' && ms === 'accept' && because(o, ['missing_role']) &&
      (claimOp(o.testCase, 'role', ['set']) || claimOp(o.testCase, 'http://schemas.microsoft.com/ws/2008/06/identity/claims/role', ['set']))
  },
  {
    id: 'registered-members-typed',
    reason: 'A registered header parameter (x5t, x5t#S256: strings, RFC 7515 §4.1) or claim present with another JSON type is refused, null included; Microsoft refuses other types (IDX14101/IDX14102) but reads JSON null as absent.',
    applies: (o, api, ms) => stricter(api, ms) &&
      ((because(o, ['malformed'], ['a token header parameter has the wrong type']) && has(o.testCase, (m) => m.kind === 'header' && m.op === 'set' && ['x5t', 'x5t#S256'].includes(m.name) && m.label === 'null')) ||
       (because(o, ['invalid_claim'], ['a token claim has the wrong type or value']) && has(o.testCase, (m) => m.kind === 'claim' && m.op === 'set' && m.label === 'null')))
  },
  {
    id: 'single-audience',
    reason: 'Entra never issues an access token with several audiences; Microsoft accepts an aud array that contains one valid audience (Validators.ValidateAudience).',
    applies: (o, api, ms) => stricter(api, ms) && because(o, ['wrong_audience']) &&
      has(o.testCase, (m) => m.kind === 'claim' && m.name === 'aud' && isArrayValue(m))
  },
  {
    id: 'app-only',
    reason: 'The api serves managed identities: a token with scp (delegated) or an idtyp other than "app" is 403 (Microsoft Learn, claims-validation: check idtyp when authorizing by azp/appid); Microsoft.Identity.Web lets scp through authentication and authorizes by scope or role.',
    applies: (o, api, ms) => api === 'forbid' && ms === 'accept' && because(o, ['delegated_token']) &&
      (claimOp(o.testCase, 'scp', ['set', 'duplicate']) || claimOp(o.testCase, 'idtyp', ['set', 'duplicate']))
  },
  {
    id: 'no-roles-is-403',
    reason: 'A valid token without any app role is 403 insufficient_scope (RFC 6750 §3.1: the token is fine, its privileges are not); Microsoft.Identity.Web fails authentication instead (IDW10201, 401) for a token with neither scp nor roles.',
    applies: (o, api, ms) => api === 'forbid' && ms === 'reject' && o.oracle.reason === 'IDW10201' && because(o, ['missing_role', 'delegated_token']) &&
      (claimOp(o.testCase, 'roles', ['absent']) || has(o.testCase, (m) => m.kind === 'claim' && m.name === 'roles' && m.op === 'set' && 'json' in m.value && Array.isArray(m.value.json) && m.value.json.length === 0))
  },
  {
    id: 'roles-are-strings',
    reason: 'roles is an array of strings (Microsoft Learn, access token claims reference); Microsoft.Identity.Web reads any JSON value as role claims (a string, a number, or an array with a number in it).',
    applies: (o, api, ms) => stricter(api, ms) && because(o, ['invalid_claim'], ['a token claim has the wrong type or value']) &&
      has(o.testCase, (m) => m.kind === 'claim' && m.name === 'roles' && m.op === 'set')
  },
  {
    id: 'kid-names-a-published-key',
    reason: 'Entra always names the signing key in kid; the api looks the key up by kid only. Microsoft tries every key of the JWKS (TryAllIssuerSigningKeys, default true) or the x5t when kid is absent or unknown: one RSA verification per published key per token.',
    applies: (o, api, ms) => stricter(api, ms) && (because(o, ['malformed'], ['the token header lacks a valid kid']) || because(o, ['unknown_key', 'bad_signature'])) &&
      (headerOp(o.testCase, 'kid') || headerOp(o.testCase, 'Kid'))
  },
  {
    id: 'typ-is-jwt',
    reason: 'Entra access tokens carry typ "JWT"; the api refuses a typ other than the media type JWT ("JWT" or "application/jwt", any case, RFC 7515 §4.1.9), e.g. at+jwt or JOSE, so that tokens of another kind are not taken for access tokens. Microsoft leaves ValidTypes null (no typ check).',
    applies: (o, api, ms) => stricter(api, ms) && because(o, ['malformed'], ['the token type must be JWT']) &&
      !has(o.testCase, (m) => m.kind === 'header' && m.name === 'typ' && m.op === 'set' && m.label === '"application/jwt"') &&
      headerOp(o.testCase, 'typ', ['set', 'duplicate'])
  },
  {
    id: 'refused-header-parameters',
    reason: 'jku, x5u, jwk (key material named by the token), crit (RFC 7515 §4.1.11: unknown critical extensions must be refused; Microsoft ignores crit) and cty (no nested JWTs) are refused; Microsoft ignores them all.',
    applies: (o, api, ms) => stricter(api, ms) && because(o, ['malformed'], ['the token header has a parameter that is not accepted']) &&
      ['jku', 'x5u', 'jwk', 'crit', 'cty'].some((name) => headerOp(o.testCase, name, ['set', 'duplicate']))
  },
  {
    id: 'numeric-dates-are-numbers',
    reason: 'exp, nbf and iat are NumericDates, JSON numbers (RFC 7519 §2, §4.1.4); Microsoft also reads a numeric string ("0").',
    applies: (o, api, ms) => stricter(api, ms) && (because(o, ['invalid_claim'], ['a token time is not a NumericDate in range', 'a token claim has the wrong type or value']) || because(o, ['missing_claim'])) &&
      has(o.testCase, (m) => m.kind === 'claim' && ['exp', 'nbf', 'iat'].includes(m.name) && m.op === 'set' && 'json' in m.value && typeof m.value.json !== 'number')
  },
  {
    id: 'entra-claims-required',
    reason: 'The api requires what every Entra app-only token carries, with its type: tid (a GUID), oid (a GUID), sub, azp (v2) or appid (v1) as non-empty strings, iat and nbf as numbers, ver, and xms_mirid a string when present. Microsoft requires only exp, aud and iss (tid only when the key names an issuer).',
    applies: (o, api, ms) => stricter(api, ms) && (because(o, ['missing_claim', 'wrong_version']) || because(o, ['invalid_claim'], ['a token claim has the wrong type or value', 'a token time is not a NumericDate in range'])) &&
      ['tid', 'oid', 'sub', 'azp', 'appid', 'iat', 'nbf', 'ver', 'xms_mirid'].some((name) => claimOp(o.testCase, name))
  },
  {
    id: 'no-repeated-claims',
    reason: 'A claim named twice, exactly or in another case, is refused (RFC 7519 §4: a JWT with duplicate names may be rejected; Microsoft refuses only a case-variant tid, EnforceSingleClaimCaseInsensitive) so that no other parser in the path can read another value.',
    // The api reads the last of repeated members (JSON.parse); when that value is wrong, its own check speaks first.
    applies: (o, api, ms) => stricter(api, ms) && (because(o, ['invalid_claim'], ['the token repeats a claim', 'a token claim has the wrong type or value', 'a token time is not a NumericDate in range']) || because(o, ['wrong_version', 'missing_claim', 'wrong_issuer', 'wrong_audience'])) &&
      has(o.testCase, (m) => m.kind === 'claim' && (m.op === 'duplicate' || (m.op === 'set' && CASE_VARIANTS.has(m.name))))
  },
  {
    id: 'unpadded-base64url',
    reason: 'Every segment is base64url without padding, in the URL-safe alphabet (RFC 7515 §2, RFC 7519 §3); Microsoft decodes "=" padding and the standard alphabet too.',
    applies: (o, api, ms) => stricter(api, ms) && because(o, ['malformed'], ['the token is not a signed JWT']) &&
      has(o.testCase, (m) => m.kind === 'encoding' && (m.op === 'padding' || m.op === 'std-alphabet'))
  },
  {
    id: 'client-id-exact',
    reason: 'The client id is a GUID and is compared exactly; Microsoft ignores a trailing slash on every audience (IgnoreTrailingSlashWhenValidatingAudience), which the api applies to App ID URIs only.',
    applies: (o, api, ms) => stricter(api, ms) && because(o, ['wrong_audience']) &&
      has(o.testCase, (m) => m.kind === 'claim' && m.name === 'aud' && m.op === 'set' && m.label === 'client id + "/"')
  },
  {
    id: 'role-values-not-split',
    reason: 'An app role value has no spaces (Microsoft Learn, app roles: "value ... cannot contain spaces"), so the api compares each roles entry whole; Microsoft.Identity.Web splits role values on spaces (ValidateAppRole).',
    applies: (o, api, ms) => api === 'forbid' && ms === 'accept' && because(o, ['missing_role']) &&
      has(o.testCase, (m) => m.kind === 'claim' && m.name === 'roles' && m.op === 'set' && m.label === '["DoAll Other"]')
  },
  {
    id: 'iss-bound-to-ver',
    reason: 'iss must be the issuer of the OpenID configuration of the token\'s own ver (v1: sts.windows.net, v2: login.microsoftonline.com/…/v2.0); Microsoft picks the issuer by the iss suffix and never reads ver.',
    applies: (o, api, ms) => stricter(api, ms) && because(o, ['wrong_issuer']) &&
      has(o.testCase, (m) => m.kind === 'claim' && m.name === 'iss' && m.op === 'set' && ['v1 issuer', 'v2 issuer'].includes(m.label))
  },
  {
    id: 'v1-token-key-in-v1-jwks',
    reason: 'A v1 token is verified with a key of the v1 OpenID configuration (Microsoft Learn, access tokens: validate a token against the metadata of its version), whose kid must also be in the v2 JWKS (where its issuer is published); Microsoft.Identity.Web reads only the v2 configuration. Entra publishes the same keys in both, so only a test authority can tell.',
    applies: (o, api, ms) => stricter(api, ms) && because(o, ['unknown_key']) && o.testCase.spec.version === '1.0' &&
      has(o.testCase, (m) => m.kind === 'signer' && m.key === 'v2Only')
  }
]
