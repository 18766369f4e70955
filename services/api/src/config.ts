import type { TokenVersion } from 'fastify-entra-auth'
import { Type, type Static } from 'typebox'
import { CommaList, CommonConfig, Port, loadConfig, splitList } from '../../shared/config.ts'

const guid = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}'
const Milliseconds = (fallback: number, minimum: number) => Type.Integer({ minimum, maximum: 7 * 86_400_000, default: fallback })

export const ApiConfigSchema = Type.Object({
  ...CommonConfig.properties,
  PORT: Port(3001),
  /**
   * The tenants whose tokens are accepted: GUIDs, comma-separated, or `*` for a multi-tenant api
   * (Microsoft.Identity.Web's {tenantid} issuer template: any tenant, each tenant's keys loaded on first
   * use, iss still bound to tid and ver).
   */
  AUTH_TENANT_ID: Type.Union([Type.Literal('*'), CommaList(guid)]),
  /** With AUTH_TENANT_ID=*: tenants whose keys are held at once; past it the least recently used is dropped. */
  AUTH_MAX_TENANTS: Type.Integer({ minimum: 1, maximum: 100_000, default: 1000 }),
  /**
   * The api's own client id when its app registration has its own signing key (claims mapping): discovery is
   * then read with `?appid=<it>`, whose jwks_uri lists that key (Microsoft Learn, "Access token validation").
   */
  AUTH_SIGNING_KEYS_APP_ID: Type.Optional(Type.String({ pattern: `^${guid}$` })),
  /** Accepted audiences: the api's client ID and/or its App ID URI, comma-separated. */
  AUTH_AUDIENCE: CommaList('[^,\\s]+'),
  /** Roles any one of which lets a caller in (comma-separated; printable ASCII without quote or backslash: they go into WWW-Authenticate). */
  AUTH_REQUIRED_ROLES: CommaList('[\\x21\\x23-\\x2B\\x2D-\\x5B\\x5D-\\x7E]+', 'DoAll'),
  /** Where the OpenID configuration of each tenant is read; a sovereign cloud's host, or mock-imds. */
  AUTH_AUTHORITY_HOST: Type.String({ pattern: '^https?://[^/\\s]+(/[^\\s]*)?$', default: 'https://login.microsoftonline.com' }),
  /** Token versions accepted: "1.0,2.0" (both, each against its own OpenID configuration) or "2.0". */
  AUTH_ACCEPTED_TOKEN_VERSIONS: CommaList('(1\\.0|2\\.0)', '1.0,2.0'),
  /** Background JWKS refresh period. Microsoft's signing-key-rollover guidance: 1 h. */
  AUTH_JWKS_REFRESH_INTERVAL_MS: Milliseconds(3_600_000, 100),
  /** At most one JWKS fetch per this period for tokens with an unknown kid. Microsoft: 5 min. */
  AUTH_JWKS_COOLDOWN_MS: Milliseconds(300_000, 0),
  /** Deadline of every discovery or JWKS request, connection to last byte. */
  AUTH_JWKS_TIMEOUT_MS: Milliseconds(5000, 100),
  /** Longest wait between retries after a failed fetch (backoff starts at 1 s and doubles). */
  AUTH_JWKS_RETRY_MAX_MS: Milliseconds(60_000, 100),
  /** Tokens above this size are rejected before any parsing (Entra managed identity tokens are 1-2 KiB). */
  AUTH_MAX_TOKEN_BYTES: Type.Integer({ minimum: 1024, maximum: 16_384, default: 8192 }),
  /** Accepted tokens remembered (the one verified-token cache, by token text and signing key); 0 turns it off. */
  AUTH_TOKEN_CACHE_SIZE: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 1000 }),
  /** How long a verified token is remembered at most; never past its exp (plus the clock skew). */
  AUTH_TOKEN_CACHE_TTL_MS: Milliseconds(600_000, 0),
  /** Where RSA signatures are checked: worker (one thread, checks sent in batches: a second core, less CPU per check) or event-loop (inline, no thread). */
  AUTH_SIGNATURE_CHECKS: Type.Union([Type.Literal('worker'), Type.Literal('event-loop')], { default: 'worker' }),
  /**
   * Load shedding (@fastify/under-pressure): while the event loop's mean delay over the last sample
   * exceeds this many ms, authenticated routes answer 503 with Retry-After instead of queueing; 0 turns
   * the check off.
   */
  OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: Type.Integer({ minimum: 0, maximum: 60_000, default: 100 }),
  /**
   * The same for the event loop's utilization over the last sample (0-1); 0 (the default) turns it off.
   * It sees what the delay check cannot (callers with bounded pools queue on their side: bench/README.md,
   * "Overload"), but at 0.95 a 3-minute soak at 35 % of the measured maximum on a shared machine had
   * 1,221 valid requests refused: a 100 ms window of full use is not overload. Opt in where the api has
   * its cores to itself.
   */
  OVERLOAD_MAX_EVENT_LOOP_UTILIZATION: Type.Number({ minimum: 0, maximum: 1, default: 0 }),
  /**
   * The same for signature checks queued on the worker thread (AUTH_SIGNATURE_CHECKS=worker): refuse
   * while the oldest has waited longer than this many ms. Past capacity they queue there while the event
   * loop still looks idle, so the delay check alone let accepted requests wait seconds (bench/README.md,
   * "Overload"). Requests whose token is held in the verified-token cache (no signature check) are still
   * served while only this check is over. 0 turns the check off.
   */
  OVERLOAD_MAX_SIGNATURE_CHECK_DELAY_MS: Type.Integer({ minimum: 0, maximum: 60_000, default: 100 }),
  /** How often the shedding checks are sampled, in ms (at least 10): the shortest refusing or accepting phase. */
  OVERLOAD_SAMPLE_INTERVAL_MS: Type.Integer({ minimum: 10, maximum: 60_000, default: 100 }),
  /** Retry-After of a refusal, in seconds. */
  OVERLOAD_RETRY_AFTER_SECONDS: Type.Integer({ minimum: 0, maximum: 3600, default: 1 })
})

type RawApiConfig = Static<typeof ApiConfigSchema>

export type { TokenVersion }

export interface ApiConfig extends Omit<RawApiConfig, 'AUTH_TENANT_ID' | 'AUTH_AUDIENCE' | 'AUTH_REQUIRED_ROLES' | 'AUTH_ACCEPTED_TOKEN_VERSIONS'> {
  AUTH_TENANT_ID: string[] | '*'
  AUTH_AUDIENCE: string[]
  AUTH_REQUIRED_ROLES: string[]
  AUTH_ACCEPTED_TOKEN_VERSIONS: TokenVersion[]
}

export function readConfig (env = process.env): ApiConfig {
  const raw = loadConfig(ApiConfigSchema, env)
  return {
    ...raw,
    AUTH_TENANT_ID: raw.AUTH_TENANT_ID.trim() === '*' ? '*' : [...new Set(splitList(raw.AUTH_TENANT_ID).map((tenant) => tenant.toLowerCase()))],
    AUTH_AUDIENCE: splitList(raw.AUTH_AUDIENCE),
    AUTH_REQUIRED_ROLES: splitList(raw.AUTH_REQUIRED_ROLES),
    AUTH_ACCEPTED_TOKEN_VERSIONS: [...new Set(splitList(raw.AUTH_ACCEPTED_TOKEN_VERSIONS) as TokenVersion[])].sort(),
    AUTH_AUTHORITY_HOST: raw.AUTH_AUTHORITY_HOST.replace(/\/+$/, '')
  }
}
