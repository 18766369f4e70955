import { ManagedIdentityCredential, type TokenCredentialOptions } from '@azure/identity'
import type { AccessToken, TokenCredential } from '@azure/core-auth'
import { createDefaultHttpClient, type HttpClient, type PipelineRequest } from '@azure/core-rest-pipeline'
import { classifyCredentialError, parseRetryAfter, type FailureHints } from './errors.ts'

/** One HTTP exchange with the identity endpoint: its status, or why none came back. */
export type Exchange =
  | { status: number, retryAfterMs: number | undefined, body?: string | undefined }
  | { status: 'timeout' | 'unreachable' }

/** One call of the SDK's getToken and the HTTP exchanges it made (none when the SDK answered from its cache). */
export interface Attempt {
  token: AccessToken
  exchanges: Exchange[]
}

/** Single attempts at a token for some scopes, each bounded by its own timeout. */
export interface AttemptSource {
  /**
   * One getToken: at most one HTTP request for a managed identity, given up after timeoutMs. Throws
   * an IdentityEndpointError that says whether a retry may help.
   */
  attempt: (scopes: string[], timeoutMs: number) => Promise<Attempt>
}

/** Which managed identity: the system-assigned one, or a user-assigned one by one of its IDs. */
export type IdentitySelector =
  | { kind: 'system' }
  | { kind: 'clientId' | 'resourceId' | 'objectId', value: string }

interface PendingAttempt {
  /** resource + identity, as they appear in the token request's query. */
  key: string
  timeoutMs: number
  exchanges: Exchange[]
}

/**
 * The attempts in flight in this process, by what their token request will carry. MSAL keeps the
 * endpoint it picked in a static together with the HTTP client of the credential that made the
 * process's first token request (measured: a second credential's requests go through the first
 * one's client). So there is one client per process, shared by every credential this package
 * builds, and it finds the attempt a request belongs to from the request itself.
 */
const pending = new Set<PendingAttempt>()
const innerClient = createDefaultHttpClient()

const identityParams = ['client_id', 'msi_res_id', 'mi_res_id', 'object_id', 'principal_id']

function keyOf (resource: string, identity: string | undefined): string {
  return `${resource}\n${identity?.toLowerCase() ?? ''}`
}

function attemptOf (request: PipelineRequest): PendingAttempt | undefined {
  let url: URL
  try { url = new URL(request.url) } catch { return undefined }
  const resource = url.searchParams.get('resource')
  if (resource !== null) {
    const identity = identityParams.map((name) => url.searchParams.get(name)).find((value) => value !== null) ?? undefined
    const key = keyOf(resource, identity)
    for (const attempt of pending) if (attempt.key === key) return attempt
  }
  // A request of another shape (the AKS token exchange posts to Entra): only unambiguous when alone.
  return pending.size === 1 ? pending.values().next().value : undefined
}

const sharedHttpClient: HttpClient = {
  async sendRequest (request: PipelineRequest) {
    const attempt = attemptOf(request)
    if (attempt) request.timeout = attempt.timeoutMs
    // Exchanges belong to the attempt that was current when they were sent.
    const exchanges = attempt?.exchanges ?? []
    let exchange: Exchange = { status: 'unreachable' }
    try {
      const response = await innerClient.sendRequest(request)
      // An error body is kept (its first 4 KiB) so that it is classified by what it says, not by
      // what MSAL made of it.
      exchange = {
        status: response.status,
        retryAfterMs: parseRetryAfter(response.headers),
        body: response.status >= 400 ? response.bodyAsText?.slice(0, 4096) ?? '' : undefined
      }
      return response
    } catch (error) {
      // The SDK's client ends a request past its timeout with an AbortError; MSAL then reports
      // it as network_error, the same as a refused connection, so tell them apart here.
      exchange = { status: (error as Error).name === 'AbortError' ? 'timeout' : 'unreachable' }
      throw error
    } finally {
      exchanges.push(exchange)
    }
  }
}

/** The resource MSAL asks IMDS for: the scope without "/.default" (as @azure/identity maps it). */
const resourceOf = (scope: string) => scope.replace(/\/\.default$/, '')

/**
 * ManagedIdentityCredential (never the DefaultAzureCredential chain, which spawns developer CLIs),
 * turned into single HTTP attempts whose retry policy the token provider owns:
 * - retryOptions.maxRetries 0: the SDK's own retries are long and uneven (404 ~20 s, 410 ~70 s,
 *   5xx ~6 s, 429 without Retry-After never) and it never gives up on a hung endpoint;
 * - our own HttpClient (the SDK's default one, wrapped) sets a timeout on each request, because
 *   getToken ignores abortSignal and requestOptions.timeout on this path, and it reads each
 *   response's status and Retry-After, which the SDK's errors do not carry.
 * The SDK still builds the requests (IMDS, the identity endpoint of Container Apps and App Service,
 * or AKS workload identity), parses the answers and caches tokens.
 */
export class ManagedIdentityEndpoint implements AttemptSource {
  readonly #credential: ManagedIdentityCredential
  readonly #identity: string | undefined
  readonly #hints: Partial<FailureHints>
  readonly #onExchange: (result: 'success' | 'failure') => void

  constructor (options: { selector: IdentitySelector, hints?: Partial<FailureHints> | undefined, onExchange?: ((result: 'success' | 'failure') => void) | undefined }) {
    this.#hints = options.hints ?? {}
    this.#onExchange = options.onExchange ?? (() => {})
    const common: TokenCredentialOptions = { retryOptions: { maxRetries: 0 }, httpClient: sharedHttpClient }
    const { selector } = options
    this.#identity = selector.kind === 'system' ? undefined : selector.value
    this.#credential = selector.kind === 'clientId'
      ? new ManagedIdentityCredential({ ...common, clientId: selector.value })
      : selector.kind === 'resourceId'
        ? new ManagedIdentityCredential({ ...common, resourceId: selector.value })
        : selector.kind === 'objectId'
          ? new ManagedIdentityCredential({ ...common, objectId: selector.value })
          : new ManagedIdentityCredential(common)
  }

  async attempt (scopes: string[], timeoutMs: number): Promise<Attempt> {
    const record: PendingAttempt = { key: keyOf(resourceOf(scopes[0] ?? ''), this.#identity), timeoutMs, exchanges: [] }
    pending.add(record)
    const { exchanges } = record
    let timedOut = false
    let timer: NodeJS.Timeout | undefined
    // The request timeout above normally ends a hung request; this race is the backstop for any
    // path where the SDK would still not settle. Such an attempt is abandoned, not cancelled
    // (the SDK offers no way to cancel it): it ends with its socket, or never.
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { timedOut = true; reject(new Error('attempt timed out')) }, timeoutMs + 250)
    })
    try {
      const token = await Promise.race([this.#credential.getToken(scopes), timeout])
      if (!token) throw new Error('the credential returned no token')
      for (const e of exchanges) this.#onExchange(typeof e.status === 'number' && e.status < 400 ? 'success' : 'failure')
      return { token, exchanges }
    } catch (error) {
      exchanges.forEach(() => this.#onExchange('failure'))
      const last = exchanges.at(-1)
      throw classifyCredentialError(error, {
        timedOut: timedOut || last?.status === 'timeout',
        answeredStatus: typeof last?.status === 'number' ? last.status : undefined,
        answeredBody: last && 'body' in last ? last.body : undefined,
        retryAfterMs: last && 'retryAfterMs' in last ? last.retryAfterMs : undefined
      }, this.#hints)
    } finally {
      clearTimeout(timer)
      pending.delete(record)
    }
  }
}

/**
 * Any TokenCredential as a source of attempts. Its HTTP exchanges are out of sight, so each
 * attempt is bounded by an abort signal (for credentials that honour it) and a timer (for those
 * that do not), and its errors are classified from what they carry.
 */
export class CredentialEndpoint implements AttemptSource {
  readonly #credential: TokenCredential
  readonly #hints: Partial<FailureHints>

  constructor (credential: TokenCredential, hints: Partial<FailureHints> = {}) {
    this.#credential = credential
    this.#hints = hints
  }

  async attempt (scopes: string[], timeoutMs: number): Promise<Attempt> {
    const controller = new AbortController()
    let timedOut = false
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { timedOut = true; controller.abort(); reject(new Error('attempt timed out')) }, timeoutMs)
    })
    try {
      const token = await Promise.race([
        this.#credential.getToken(scopes, { abortSignal: controller.signal, requestOptions: { timeout: timeoutMs } }),
        timeout
      ])
      if (!token) throw new Error('the credential returned no token')
      return { token, exchanges: [] }
    } catch (error) {
      throw classifyCredentialError(error, { timedOut }, this.#hints)
    } finally {
      clearTimeout(timer)
    }
  }
}
