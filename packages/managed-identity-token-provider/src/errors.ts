/**
 * Why an attempt at the identity endpoint failed, in the terms Azure's retry guidance uses.
 * Retryable: 404 (IMDS updating), 408, 410 (IMDS restarting, retry for up to 70 s), 429, 5xx,
 * timeouts and refused connections. Not retryable: every other 4xx, 400 above all: an identity
 * that is not assigned to this host, or an api that is not registered in the tenant, is a
 * deployment error that no retry fixes.
 */
export type FailureReason =
  | 'timeout' | 'unreachable' | 'not_found' | 'gone' | 'throttled' | 'server_error'
  | 'invalid_response' | 'stale_token' | 'unknown'
  | 'identity_not_found' | 'invalid_resource' | 'unauthorized' | 'bad_request'

/** The reasons that no retry fixes: the deployment (identity assignment, scope, platform secret) must change. */
export type DeploymentFailureReason = 'identity_not_found' | 'invalid_resource' | 'unauthorized' | 'bad_request'

/**
 * What to check for each deployment error. The defaults name the standard variables; an app that
 * reads other variables (say, MANAGED_IDENTITY_RESOURCE_ID or API_SCOPE) passes its own text.
 */
export type FailureHints = Record<DeploymentFailureReason, string>

export const defaultHints: FailureHints = {
  identity_not_found: 'the managed identity is not assigned to this host: check the selected identity (clientId / resourceId / objectId, AZURE_CLIENT_ID by convention) and its assignment',
  invalid_resource: 'the scope\'s resource is not known to the tenant: check the scope (an App ID URI or client ID, followed by /.default)',
  unauthorized: 'the identity endpoint refused the request: check IDENTITY_HEADER',
  bad_request: 'the identity endpoint rejected the request'
}

/** One failed attempt at the identity endpoint, classified. The `cause` of a {@link TokenUnavailableError}. */
export class IdentityEndpointError extends Error {
  override name = 'IdentityEndpointError'
  readonly reason: FailureReason
  readonly retryable: boolean
  /** The identity endpoint's HTTP status, when it answered. */
  readonly status: number | undefined
  /** What the endpoint asked for in Retry-After (or retry-after-ms), in ms. */
  readonly retryAfterMs: number | undefined
  /** What to check, for a deployment error. */
  readonly hint: string | undefined

  constructor (message: string, details: { reason: FailureReason, retryable: boolean, status?: number | undefined, retryAfterMs?: number | undefined, hint?: string | undefined, cause?: unknown }) {
    super(message, { cause: details.cause })
    this.reason = details.reason
    this.retryable = details.retryable
    this.status = details.status
    this.retryAfterMs = details.retryAfterMs
    this.hint = details.hint
  }
}

/**
 * What getToken throws when it has no token to give: why (`reason`), what to check (`hint`), and
 * whether only a change of deployment helps (`deploymentError`, e.g. identity_not_found) or a
 * later call may succeed (then `retryAfterMs` says when it is worth asking again).
 */
export class TokenUnavailableError extends Error {
  override name = 'TokenUnavailableError'
  /** A {@link FailureReason}, or 'too_many_scopes' / 'invalid_scope' for a misuse of the provider. */
  readonly reason: FailureReason | 'too_many_scopes' | 'invalid_scope'
  /** What to check or expect, in one sentence. */
  readonly hint: string
  /** True when retrying cannot help until the deployment changes (identity not found, ...). */
  readonly deploymentError: boolean
  /** The identity endpoint's HTTP status in the last failure, when it answered. */
  readonly status: number | undefined
  /** A hint for a Retry-After header: when asking again may help, in ms. */
  readonly retryAfterMs: number

  constructor (message: string, details: { reason: TokenUnavailableError['reason'], hint: string, deploymentError: boolean, status?: number | undefined, retryAfterMs?: number, cause?: unknown }) {
    super(message, { cause: details.cause })
    this.reason = details.reason
    this.hint = details.hint
    this.deploymentError = details.deploymentError
    this.status = details.status
    this.retryAfterMs = details.retryAfterMs ?? 1000
  }
}

const retryableByStatus: Record<number, FailureReason> = { 404: 'not_found', 408: 'timeout', 410: 'gone', 429: 'throttled' }

/**
 * Classifies an HTTP status the identity endpoint answered with. Retryable per Azure's guidance
 * (learn.microsoft.com, "How to use managed identities ... to acquire an access token", error
 * handling): 404, 408, 410, 429 and 5xx; every other 4xx is a deployment error.
 */
export function failureOfStatus (status: number, description: string, retryAfterMs?: number, cause?: unknown, hints: FailureHints = defaultHints): IdentityEndpointError {
  const retryableReason = retryableByStatus[status] ?? (status >= 500 ? 'server_error' : undefined)
  if (retryableReason) {
    return new IdentityEndpointError(`the identity endpoint answered ${status} (${retryableReason}): ${description}`,
      { reason: retryableReason, retryable: true, status, retryAfterMs, cause })
  }
  const reason: DeploymentFailureReason =
    /identity not found|multiple user assigned identities/i.test(description)
      ? 'identity_not_found'
      : /invalid_resource|AADSTS500011/i.test(description)
        ? 'invalid_resource'
        : status === 401 || status === 403 ? 'unauthorized' : 'bad_request'
  const hint = hints[reason]
  return new IdentityEndpointError(`deployment error, not retried: ${hint} (HTTP ${status}: ${description})`,
    { reason, retryable: false, status, hint, cause })
}

interface MsalLikeError { status?: unknown, errorCode?: unknown, errorMessage?: unknown, message?: unknown }

/**
 * Classifies what ManagedIdentityCredential.getToken threw. Measured against mock-imds and a raw
 * HTTP server with @azure/identity 4.14.1 (retries off), both flavours alike:
 * - any HTTP error status: CredentialUnavailableError("...Authentication failed. Message <error>: ...
 *   Description: <error_description> - Correlation ID ...") whose `cause` is MSAL's ServerError with
 *   `status` (the HTTP status, a number) and `errorCode` (the body's `error`; '' for App Service bodies);
 * - connection refused, and an attempt cut by our timeout: CredentialUnavailableError("...Network
 *   unreachable...") whose cause is MSAL's ClientAuthError with errorCode 'network_error';
 * - a 200 without access_token or expires_on: AuthenticationRequiredError;
 * - a 200 with a cut-off JSON body: the same network_error as a refused connection.
 */
export function classifyCredentialError (
  error: unknown,
  context: { timedOut: boolean, answeredStatus?: number | undefined, retryAfterMs?: number | undefined },
  hints: FailureHints = defaultHints
): IdentityEndpointError {
  if (error instanceof IdentityEndpointError) return error
  const cause = ((error as { cause?: unknown })?.cause ?? {}) as MsalLikeError
  if (typeof cause.status === 'number' && cause.status >= 400) {
    return failureOfStatus(cause.status, describe(cause), context.retryAfterMs, error, hints)
  }
  if (context.timedOut) {
    return new IdentityEndpointError('the identity endpoint did not answer in time', { reason: 'timeout', retryable: true, cause: error })
  }
  // A 200 whose body is not JSON also comes out as network_error; the exchange tells it apart.
  if (cause.errorCode === 'network_error' && context.answeredStatus !== undefined) {
    return new IdentityEndpointError(`the identity endpoint answered ${context.answeredStatus} with a body that is not a token response`,
      { reason: 'invalid_response', retryable: true, status: context.answeredStatus, cause: error })
  }
  if (cause.errorCode === 'network_error') {
    return new IdentityEndpointError('the identity endpoint is unreachable (connection refused or reset)', { reason: 'unreachable', retryable: true, cause: error })
  }
  if ((error as Error)?.name === 'AuthenticationRequiredError') {
    return new IdentityEndpointError(`the identity endpoint sent an unusable answer: ${(error as Error).message}`, { reason: 'invalid_response', retryable: true, cause: error })
  }
  // Unknown shapes are treated as transient: a retry costs little, a caller that gives up for good costs a lot.
  return new IdentityEndpointError(`token acquisition failed: ${(error as Error)?.message ?? String(error)}`, { reason: 'unknown', retryable: true, cause: error })
}

/** MSAL's message carries the endpoint's description between "Description: " and " - Correlation ID". */
function describe (cause: MsalLikeError): string {
  const text = typeof cause.errorMessage === 'string' ? cause.errorMessage : String(cause.message ?? '')
  const description = /Description: (.*?) - Correlation ID/s.exec(text)?.[1] ?? text
  const code = typeof cause.errorCode === 'string' && cause.errorCode !== '' ? `${cause.errorCode}: ` : ''
  return `${code}${description}`
}

/** Retry-After as seconds or an HTTP date, or retry-after-ms / x-ms-retry-after-ms, in ms. */
export function parseRetryAfter (headers: { get: (name: string) => string | undefined }, now = Date.now()): number | undefined {
  for (const name of ['retry-after-ms', 'x-ms-retry-after-ms']) {
    const value = Number(headers.get(name))
    if (headers.get(name) !== undefined && Number.isFinite(value) && value >= 0) return value
  }
  const value = headers.get('retry-after')
  if (value === undefined) return undefined
  if (/^\d+$/.test(value.trim())) return Number(value) * 1000
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}
