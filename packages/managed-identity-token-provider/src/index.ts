/**
 * managed-identity-token-provider: a resilient `TokenCredential` for Azure managed identities.
 * This entry imports neither fastify nor prom-client; the Fastify plugin is
 * `managed-identity-token-provider/fastify`.
 */
export { ManagedIdentityTokenProvider, type ManagedIdentityGetTokenOptions } from './provider.ts'
export type { ManagedIdentityTokenProviderOptions } from './options.ts'
export {
  TokenUnavailableError,
  IdentityEndpointError,
  defaultHints,
  type FailureReason,
  type DeploymentFailureReason,
  type FailureHints
} from './errors.ts'
export { AbortError, type Logger, type TokenProviderObserver } from './scope-tokens.ts'
