import { Type, type Static } from 'typebox'
import { CommonConfig, ConfigError, Port, loadConfig } from '../../shared/config.ts'

const guid = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
// ARM IDs are case-insensitive, so only the shape is checked here; IMDS has the last word.
const armId = '^/subscriptions/[^/\\s]+/resource[gG]roups/[^/\\s]+/providers/[^\\s]+$'

const Milliseconds = (fallback: number, minimum = 1) => Type.Integer({ minimum, maximum: 3_600_000, default: fallback })
const Fraction = (fallback: number) => Type.Number({ minimum: 0, maximum: 1, default: fallback })

export const CallerConfigSchema = Type.Object({
  ...CommonConfig.properties,
  PORT: Port(3000),
  /** Where the api listens, e.g. http://api:3001. */
  API_BASE_URL: Type.String({ pattern: '^https?://[^\\s]+$' }),
  /** The scope to ask a token for: the api's App ID URI (or client ID) with /.default. */
  API_SCOPE: Type.String({ pattern: '^[^\\s]+/\\.default$' }),
  /** Each call to the api, headers and body, must finish within this. */
  API_TIMEOUT_MS: Milliseconds(5_000),

  // Which managed identity: none of the three means the system-assigned identity; at most one may be set.
  /** A user-assigned identity by client ID (the variable DefaultAzureCredential and AKS also read). */
  AZURE_CLIENT_ID: Type.Optional(Type.String({ pattern: guid })),
  /** A user-assigned identity by its ARM resource ID (.../Microsoft.ManagedIdentity/userAssignedIdentities/<name>). */
  MANAGED_IDENTITY_RESOURCE_ID: Type.Optional(Type.String({ pattern: armId })),
  /** A user-assigned identity by the object ID of its service principal (its principalId). */
  MANAGED_IDENTITY_OBJECT_ID: Type.Optional(Type.String({ pattern: guid })),

  /** One HTTP attempt at the identity endpoint; a hung attempt is given up after this. */
  TOKEN_ATTEMPT_TIMEOUT_MS: Milliseconds(5_000),
  /** One acquisition (attempts plus backoff) gives up after this; the next request or refresh starts another. */
  TOKEN_ACQUISITION_DEADLINE_MS: Milliseconds(60_000),
  /** How long a request waits for a token before it gets a 503. */
  TOKEN_WAIT_TIMEOUT_MS: Milliseconds(10_000),
  /** Backoff between attempts: full jitter, random in [0, min(max, base * 2^attempt)]. */
  TOKEN_RETRY_BASE_DELAY_MS: Milliseconds(500),
  TOKEN_RETRY_MAX_DELAY_MS: Milliseconds(15_000),
  /** After a non-retryable answer (identity not found), requests get 503 at once for this long, sparing IMDS. */
  TOKEN_FATAL_COOLDOWN_MS: Milliseconds(30_000),
  /** Proactive refresh at lifetime * (FRACTION + random * JITTER) after a token arrives. */
  TOKEN_REFRESH_FRACTION: Fraction(0.5),
  TOKEN_REFRESH_JITTER: Fraction(0.25),
  /** A token closer than this to its expiry (capped at a tenth of its lifetime) is no longer handed out. */
  TOKEN_EXPIRY_MARGIN_SECONDS: Type.Integer({ minimum: 0, maximum: 3600, default: 120 })
})

export type CallerConfig = Static<typeof CallerConfigSchema>

export const readConfig = (env = process.env): CallerConfig => {
  const config = loadConfig(CallerConfigSchema, env)
  const selectors = (['AZURE_CLIENT_ID', 'MANAGED_IDENTITY_RESOURCE_ID', 'MANAGED_IDENTITY_OBJECT_ID'] as const)
    .filter((name) => config[name] !== undefined)
  if (selectors.length > 1) {
    throw new ConfigError(`invalid configuration: ${selectors.join(' and ')} are both set; name the managed identity with at most one of them`)
  }
  if (config.TOKEN_REFRESH_FRACTION + config.TOKEN_REFRESH_JITTER >= 1) {
    throw new ConfigError('invalid configuration: TOKEN_REFRESH_FRACTION + TOKEN_REFRESH_JITTER must stay below 1 (a refresh after expiry is no refresh)')
  }
  return { ...config, API_BASE_URL: config.API_BASE_URL.replace(/\/+$/, '') }
}

/** The identity selector for the token provider, from whichever variable is set (none: system-assigned). */
export function identityOptions (config: CallerConfig): { clientId?: string, resourceId?: string, objectId?: string } {
  if (config.AZURE_CLIENT_ID) return { clientId: config.AZURE_CLIENT_ID }
  if (config.MANAGED_IDENTITY_RESOURCE_ID) return { resourceId: config.MANAGED_IDENTITY_RESOURCE_ID }
  if (config.MANAGED_IDENTITY_OBJECT_ID) return { objectId: config.MANAGED_IDENTITY_OBJECT_ID }
  return {}
}
