import type { TokenCredential } from '@azure/core-auth'
import type { FailureHints } from './errors.ts'
import type { Logger, TokenProviderObserver } from './scope-tokens.ts'

/**
 * Options of {@link ManagedIdentityTokenProvider}. Every timing is in milliseconds. The defaults
 * are the ones msi-pair's caller runs with in production. `undefined` means unset; any other
 * name is refused with a TypeError (a typo such as `clientID` would otherwise silently select
 * the system-assigned identity), and so is a value of the wrong type (`'5000'` for a number).
 */
export interface ManagedIdentityTokenProviderOptions {
  /**
   * A user-assigned managed identity by its client ID (a GUID). The standalone
   * `ManagedIdentityCredential` does not read `AZURE_CLIENT_ID`: pass it here.
   * At most one of `clientId`, `resourceId`, `objectId`; none selects the system-assigned identity.
   * An empty (or blank) string is refused with a TypeError, here and for the other two: it is what
   * an empty `AZURE_CLIENT_ID` gives, and taking it as unset would silently run as another
   * principal (the system-assigned identity, with other role assignments). Pass `undefined`.
   * @default undefined (system-assigned)
   */
  clientId?: string | undefined
  /**
   * A user-assigned managed identity by its ARM resource ID
   * (`/subscriptions/…/resourceGroups/…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>`).
   * @default undefined
   */
  resourceId?: string | undefined
  /**
   * A user-assigned managed identity by the object ID (principalId) of its service principal.
   * @default undefined
   */
  objectId?: string | undefined
  /**
   * Any `TokenCredential` to wrap instead of the `ManagedIdentityCredential` built from the three
   * options above (which must then be unset). Its attempts are bounded by an abort signal and a
   * timer; HTTP statuses and Retry-After are only seen as far as its errors carry them.
   * @default undefined (a ManagedIdentityCredential with the SDK's retries off)
   */
  credential?: TokenCredential | undefined
  /**
   * Deadline of one HTTP attempt at the identity endpoint, in ms. A hung request is ended (its
   * socket closed) after this. The SDK itself never times out (research: @azure/identity 4.14.1).
   * @default 5000
   */
  attemptTimeoutMs?: number | undefined
  /**
   * How long one getToken call waits for a token, in ms, when none is held. After that it throws
   * a {@link TokenUnavailableError}; the acquisition goes on in the background. A call's own
   * `requestOptions.timeout` or `abortSignal` can end the wait earlier.
   * @default 10000
   */
  waitTimeoutMs?: number | undefined
  /**
   * How long one acquisition (attempts plus backoff) may run, in ms. Then it gives up and the
   * next one starts in the background after a backoff.
   * @default 60000
   */
  acquisitionDeadlineMs?: number | undefined
  /**
   * Backoff between attempts, full jitter: a random delay in [0, min(max, base · 2ⁿ)] ms. A
   * Retry-After from the endpoint (429, 503) replaces it, and also holds back the next acquisition.
   * @default 500
   */
  retryBaseDelayMs?: number | undefined
  /** Upper bound of the backoff, in ms. @default 15000 */
  retryMaxDelayMs?: number | undefined
  /**
   * After a deployment error (identity not found, unknown resource, refused identity header),
   * getToken fails at once for this long, in ms, without asking the endpoint again.
   * @default 30000
   */
  fatalCooldownMs?: number | undefined
  /**
   * The background refresh runs at lifetime × (fraction + random × jitter) after a token
   * arrives; fraction + jitter must stay below 1. With the defaults: between 50 % and 75 % of the
   * token's life, spread so that a scale set's instances do not refresh together.
   * @default 0.5
   */
  refreshFraction?: number | undefined
  /** See `refreshFraction`. @default 0.25 */
  refreshJitter?: number | undefined
  /**
   * A token is not handed out closer to its expiry than this, in ms, capped at a tenth of its
   * lifetime (a 60 s token stays usable for 54 s). The Azure pipeline's token cycler refreshes
   * 2 minutes ahead of expiry too.
   * @default 120000
   */
  expiryMarginMs?: number | undefined
  /**
   * How many distinct scopes (or scope sets) the provider keeps tokens for. Each Azure SDK client
   * asks for its own scope; a new scope beyond this many is refused with reason `too_many_scopes`.
   * A positive integer (0 would refuse every scope): RangeError otherwise.
   * @default 16
   */
  maxScopes?: number | undefined
  /**
   * What each deployment error tells the operator to check, replacing the default sentences (which
   * name AZURE_CLIENT_ID and IDENTITY_HEADER). Useful when the app reads other variables. A key
   * that is not a {@link FailureReason} is refused (TypeError).
   * @default the built-in hints ({@link defaultHints})
   */
  hints?: Partial<FailureHints> | undefined
  /** Log lines (pino-compatible), never with a token. @default silent */
  logger?: Logger | undefined
  /** Events for metrics; the Fastify plugin turns them into Prometheus series. @default none */
  observer?: TokenProviderObserver | undefined
}

export type { FailureHints, Logger, TokenProviderObserver }
