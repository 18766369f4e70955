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
 * What each failure tells the operator to check or expect, by reason. The defaults name the
 * standard variables; an app that reads other variables (say, MANAGED_IDENTITY_RESOURCE_ID or
 * API_SCOPE) passes its own text for the reasons it wants to word.
 */
export type FailureHints = Record<FailureReason, string>

export const defaultHints: FailureHints = {
  identity_not_found: 'the managed identity is not assigned to this host, or several user-assigned identities are and none is selected: select one that is assigned (clientId / resourceId / objectId; AZURE_CLIENT_ID by convention)',
  invalid_resource: 'the scope\'s resource is not known to the tenant: check the scope (an App ID URI or client ID, followed by /.default)',
  unauthorized: 'the identity endpoint refused the request: check IDENTITY_HEADER (the platform sets it; a stale copy in the environment is refused)',
  bad_request: 'the identity endpoint rejected the request as malformed',
  timeout: 'the identity endpoint did not answer in time; each retry waits longer, and the acquisition goes on in the background',
  unreachable: 'nothing answers at the identity endpoint: not on Azure, or the endpoint is blocked (check AZURE_POD_IDENTITY_AUTHORITY_HOST / IDENTITY_ENDPOINT and NO_PROXY)',
  not_found: 'IMDS is updating (404): retried with backoff',
  gone: 'IMDS is restarting (410, available again within 70 s): retried with backoff',
  throttled: 'the identity endpoint is throttling (429; IMDS allows 20 token requests per second and 5 at once per VM): retried after its Retry-After or with backoff',
  server_error: 'the identity endpoint or Entra failed (5xx): retried with backoff; on App Service, a lasting 500 "An unexpected error occured while fetching the AAD Token" usually means the scope\'s resource is not in the tenant',
  invalid_response: 'the identity endpoint answered with something that is not a token response (a proxy in between?): retried',
  stale_token: 'the identity endpoint handed out a token that is about to expire: retried',
  unknown: 'an unexpected error from the credential: retried'
}

/**
 * The error answers of the platforms' identity endpoints, by what they mean. The documentation
 * warns that descriptions change ("Do not write code that branches based on values in the error
 * description", learn.microsoft.com: "How to use managed identities ... to acquire an access
 * token"), so the status decides first (Azure's retry guidance), and the wording only refines a
 * 4xx or a 403 into the meaning each platform gives it. Each entry names where its wording is seen.
 */
const meanings: ReadonlyArray<{ reason: FailureReason, status: (status: number) => boolean, text: RegExp, hint?: string, source: string }> = [
  {
    reason: 'identity_not_found',
    status: (s) => s >= 400 && s < 500,
    text: /identity not found/i,
    source: 'IMDS 400 invalid_request "Identity not found" (learn.microsoft.com, AKS Key Vault CSI troubleshooting)'
  },
  {
    reason: 'identity_not_found',
    status: (s) => s >= 400 && s < 500,
    text: /multiple user assigned identities/i,
    source: 'IMDS 400 invalid_request "Multiple user assigned identities exist, please specify the clientId / resourceId ..."'
  },
  {
    reason: 'identity_not_found',
    status: (s) => s >= 400 && s < 500,
    text: /unable to load the proper managed identity/i,
    source: 'App Service, Functions, Container Apps 400 {"statusCode":400,"message":"Unable to load the proper Managed Identity."} (Azure/azure-sdk-for-net#43691, microsoft/azure-container-apps#442)'
  },
  {
    reason: 'invalid_resource',
    status: (s) => s >= 400 && s < 500,
    text: /invalid_resource|AADSTS500011|AADSTS50001\b|resource principal named .* was not found/i,
    source: 'IMDS 400 invalid_resource "AADSTS500011: The resource principal named ... was not found" (AzureAD/microsoft-authentication-library-for-dotnet#3979)'
  },
  {
    reason: 'bad_request',
    status: (s) => s === 400,
    text: /metadata header not specified/i,
    hint: 'the request reached IMDS without its Metadata header: a proxy in between drops it (IMDS must not be used through a proxy: add 169.254.169.254 to NO_PROXY)',
    source: 'IMDS 400 "Required metadata header not specified" (learn.microsoft.com, IMDS errors: bad_request_102)'
  },
  {
    reason: 'unreachable',
    status: (s) => s === 403,
    text: /unreachable/i,
    hint: 'no IMDS here: Docker Desktop answers 403 "...unreachable..." for 169.254.169.254 (Azure/azure-sdk-for-js#26898); run on Azure or point AZURE_POD_IDENTITY_AUTHORITY_HOST at a mock',
    source: 'Docker Desktop 403 "connecting to 169.254.169.254:80: ... unreachable network" (Azure/azure-sdk-for-js#26898, PR #27050)'
  }
]

const retryableByStatus: Record<number, FailureReason> = { 404: 'not_found', 408: 'timeout', 410: 'gone', 429: 'throttled' }

/** The hint for a reason: the app's wording, else the built-in one. */
export const hintFor = (reason: FailureReason, hints: Partial<FailureHints> = {}): string => hints[reason] ?? defaultHints[reason]

/** Whether a retry can help with this reason (Azure's retry guidance: 404, 408, 410, 429, 5xx; never another 4xx). */
export const isRetryable = (reason: FailureReason): boolean =>
  !['identity_not_found', 'invalid_resource', 'unauthorized', 'bad_request'].includes(reason)

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
 *
 * For the app's own client it is a 503 with Retry-After (`statusCode`, `headers`): a token that
 * cannot be had is a fault at Azure, whatever the identity endpoint answered. Fastify's default
 * error handler (and others) read `status`/`statusCode` as the response status, so the identity
 * endpoint's status is `endpointStatus`, never `status`: a 400 from IMDS must not become the
 * app's 400. The message carries the endpoint's own text (AADSTS codes, tenant, trace ids): log
 * it, do not send it (the Fastify plugin's error handler sends a fixed body).
 */
export class TokenUnavailableError extends Error {
  override name = 'TokenUnavailableError'
  /** A {@link FailureReason}, or 'too_many_scopes' / 'invalid_scope' for a misuse of the provider. */
  readonly reason: FailureReason | 'too_many_scopes' | 'invalid_scope'
  /** What to check or expect, in one sentence. */
  readonly hint: string
  /** True when retrying cannot help until the deployment changes (identity not found, ...). */
  readonly deploymentError: boolean
  /** The identity endpoint's HTTP status in the last failure, when it answered (not the app's status: see `statusCode`). */
  readonly endpointStatus: number | undefined
  /**
   * When asking again may help, in ms (a value for a Retry-After header): for a transient fault,
   * at least 1000 or what the endpoint asked for (Retry-After); for a deployment error, the rest of
   * the `fatalCooldownMs` during which calls fail at once without asking the endpoint (asking
   * again helps only once the deployment is fixed); undefined when asking again never helps
   * (`invalid_scope`, `too_many_scopes`: a change of code or options is needed).
   */
  readonly retryAfterMs: number | undefined
  /** True when an acquisition is still running: the token is still being fetched, in the background. */
  readonly fetching: boolean
  /** The status for the app's own client: always 503 (Service Unavailable, RFC 9110 §15.6.4). */
  readonly statusCode = 503
  /** Response headers for the app's own client: `retry-after` in whole seconds when `retryAfterMs` is known. */
  readonly headers: Readonly<Record<string, string>>

  constructor (message: string, details: { reason: TokenUnavailableError['reason'], hint: string, deploymentError: boolean, fetching?: boolean, endpointStatus?: number | undefined, retryAfterMs?: number | undefined, cause?: unknown }) {
    super(message, { cause: details.cause })
    this.reason = details.reason
    this.hint = details.hint
    this.deploymentError = details.deploymentError
    this.fetching = details.fetching ?? false
    this.endpointStatus = details.endpointStatus
    this.retryAfterMs = details.retryAfterMs
    this.headers = details.retryAfterMs === undefined ? {} : { 'retry-after': String(Math.max(1, Math.ceil(details.retryAfterMs / 1000))) }
  }
}

/**
 * Classifies an answer of the identity endpoint: its HTTP status and what its body says. Retryable
 * per Azure's guidance (learn.microsoft.com, "How to use managed identities ... to acquire an
 * access token", error handling): 404, 408, 410, 429 and 5xx; every other 4xx is a deployment
 * error, refined by the meaning of its body ({@link meanings}).
 * @param description what the body says, for the message and the meaning (error, error_description, message)
 * @param hints the app's own wording per reason, which wins over the built-in one
 */
export function failureOfStatus (status: number, description: string, retryAfterMs?: number, cause?: unknown, hints: Partial<FailureHints> = {}): IdentityEndpointError {
  const meaning = meanings.find((m) => m.status(status) && m.text.test(description))
  const reason: FailureReason = meaning?.reason ??
    retryableByStatus[status] ??
    (status >= 500 ? 'server_error' : status === 401 || status === 403 ? 'unauthorized' : 'bad_request')
  const hint = hints[reason] ?? meaning?.hint ?? defaultHints[reason]
  const retryable = isRetryable(reason)
  const message = retryable
    ? `the identity endpoint answered ${status} (${reason}): ${description}`
    : `deployment error, not retried: ${hint} (HTTP ${status}: ${description})`
  return new IdentityEndpointError(message, { reason, retryable, status, retryAfterMs, hint, cause })
}

/**
 * What an error body says, in one line: `error: error_description` (IMDS, Entra), `message`
 * (App Service, Functions, Container Apps), `ErrorCode` (the legacy 2017-09-01 API), or the text
 * itself; "(empty body)" for none.
 */
export function describeBody (body: string): string {
  const text = body.trim()
  if (text === '') return '(empty body)'
  try {
    const json = JSON.parse(text) as Record<string, unknown>
    const pick = (...names: string[]) => names.map((name) => json[name]).find((v): v is string => typeof v === 'string' && v !== '')
    const error = pick('error', 'ErrorCode')
    const description = pick('error_description', 'message', 'Message', 'ExceptionMessage')
    if (error !== undefined || description !== undefined) return [error, description].filter(Boolean).join(': ')
  } catch { /* not JSON: the text itself */ }
  return text.length > 300 ? `${text.slice(0, 300)}…` : text
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
  context: { timedOut: boolean, answeredStatus?: number | undefined, answeredBody?: string | undefined, retryAfterMs?: number | undefined },
  hints: Partial<FailureHints> = {}
): IdentityEndpointError {
  if (error instanceof IdentityEndpointError) return error
  // The answer itself, as the wrapped HTTP client recorded it, is the best evidence: MSAL reads an
  // error body without `error` (App Service's legacy 503 {"ErrorCode":...}) as a 200 lacking
  // expires_on, and rewrites an empty one into "A client error occured".
  if (context.answeredStatus !== undefined && context.answeredStatus >= 400) {
    return failureOfStatus(context.answeredStatus, describeBody(context.answeredBody ?? ''), context.retryAfterMs, error, hints)
  }
  const cause = ((error as { cause?: unknown })?.cause ?? {}) as MsalLikeError
  if (typeof cause.status === 'number' && cause.status >= 400) {
    return failureOfStatus(cause.status, describe(cause), context.retryAfterMs, error, hints)
  }
  if (context.timedOut) {
    return new IdentityEndpointError('the identity endpoint did not answer in time', { reason: 'timeout', retryable: true, hint: hints.timeout ?? defaultHints.timeout, cause: error })
  }
  // A 200 whose body is not JSON also comes out as network_error; the exchange tells it apart.
  if (cause.errorCode === 'network_error' && context.answeredStatus !== undefined) {
    return new IdentityEndpointError(`the identity endpoint answered ${context.answeredStatus} with a body that is not a token response`,
      { reason: 'invalid_response', retryable: true, status: context.answeredStatus, hint: hints.invalid_response ?? defaultHints.invalid_response, cause: error })
  }
  if (cause.errorCode === 'network_error') {
    return new IdentityEndpointError('the identity endpoint is unreachable (connection refused or reset)', { reason: 'unreachable', retryable: true, hint: hints.unreachable ?? defaultHints.unreachable, cause: error })
  }
  if ((error as Error)?.name === 'AuthenticationRequiredError') {
    return new IdentityEndpointError(`the identity endpoint sent an unusable answer: ${(error as Error).message}`, { reason: 'invalid_response', retryable: true, hint: hints.invalid_response ?? defaultHints.invalid_response, cause: error })
  }
  // Unknown shapes are treated as transient: a retry costs little, a caller that gives up for good costs a lot.
  return new IdentityEndpointError(`token acquisition failed: ${(error as Error)?.message ?? String(error)}`, { reason: 'unknown', retryable: true, hint: hints.unknown ?? defaultHints.unknown, cause: error })
}

/**
 * MSAL's message carries the endpoint's description between "Description: " and " - Correlation
 * ID" (only its first line: @azure/identity 4.14 appends the headers to a body it synthesized).
 */
function describe (cause: MsalLikeError): string {
  const text = typeof cause.errorMessage === 'string' ? cause.errorMessage : String(cause.message ?? '')
  const description = (/Description: (.*?)(?: - Correlation ID|$)/s.exec(text)?.[1] ?? text).split('\n')[0] ?? ''
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
