/*
 * fastify-entra-auth: Microsoft Entra access-token validation and app-role authorization for Fastify.
 * The plugin is the default export; the validator and the key store work without Fastify.
 */
import { fastifyEntraAuth } from './plugin.ts'

export { fastifyEntraAuth }
export default fastifyEntraAuth
export type { EntraAuth } from './plugin.ts'
export {
  DEFAULTS, EntraAuthOptionsError, resolveOptions,
  type FastifyEntraAuthOptions, type JwksOptions, type ResolvedOptions, type TokenCacheOptions
} from './options.ts'
export {
  NUMERIC_DATE_RANGE, REASONS, SCOPE_TOKEN, authorize, createTokenValidator, expandAudiences, isCanonicalBase64url, parseAuthorization, withRequiredRoles,
  type Acceptance, type Identity, type KeyProvider, type Reason, type Rejection, type SignatureChecks, type TokenValidator, type TokenVersion,
  type ValidationResult, type ValidatorOptions
} from './token-validation.ts'
export { SignatureWorker } from './signature-worker.ts'
export {
  KID_PATTERN, KeyStore,
  type KeyLookup, type KeyStoreLogger, type KeyStoreOptions, type SigningKey, type VerifierSettings, type VerifyOutcome
} from './key-store.ts'
export { createAuthMetrics, type AuthMetrics, type AuthResult } from './metrics.ts'
export { ENTRA_CLOUD_HOSTS, cloudHostsOf, jwksUriAllowed } from './clouds.ts'
