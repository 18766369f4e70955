import { ManagedIdentityCredential, type AccessToken, type TokenCredentialOptions } from '@azure/identity'
import { createDefaultHttpClient, type HttpClient, type PipelineRequest } from '@azure/core-rest-pipeline'
import type { IdentitySelector } from '../config.ts'
import { classifyCredentialError, parseRetryAfter } from './errors.ts'

/** One HTTP exchange with the identity endpoint: its status, or why none came back. */
export type Exchange =
  | { status: number, retryAfterMs: number | undefined }
  | { status: 'timeout' | 'unreachable' }

/** One call of the SDK's getToken and the HTTP exchanges it made (none when the SDK answered from its cache). */
export interface Attempt {
  token: AccessToken
  exchanges: Exchange[]
}

export interface IdentityEndpointOptions {
  scope: string
  selector: IdentitySelector
  attemptTimeoutMs: number
  /**
   * Called once per HTTP exchange with the identity endpoint when its attempt ends, for metrics:
   * success when it brought a usable answer (a 200 that is not a token response is a failure).
   */
  onExchange?: (result: 'success' | 'failure') => void
}

/**
 * ManagedIdentityCredential (never the DefaultAzureCredential chain, which spawns developer CLIs),
 * turned into single HTTP attempts that the token provider owns the retry policy of:
 * - retryOptions.maxRetries 0: the SDK's own retries are long and uneven (404 ~20 s, 410 ~70 s,
 *   5xx ~6 s, 429 without Retry-After never) and it never gives up on a hung endpoint;
 * - our own HttpClient (the SDK's default one, wrapped) sets a timeout on each request, because
 *   getToken ignores abortSignal and requestOptions.timeout on this path, and it reads each
 *   response's status and Retry-After, which the SDK's errors do not carry.
 * The SDK still builds the requests (IMDS, the identity endpoint of Container Apps and App Service,
 * or AKS workload identity), parses the answers and caches tokens.
 *
 * One per process: MSAL keeps the endpoint it picked in a static, together with the HTTP client
 * of the credential that made the process's first token request, so a second credential's
 * requests would go through the first one's client (measured), timeout and bookkeeping included.
 */
export class IdentityEndpoint {
  readonly #credential: ManagedIdentityCredential
  readonly #scope: string
  readonly #attemptTimeoutMs: number
  readonly #onExchange: (result: 'success' | 'failure') => void
  #exchanges: Attempt['exchanges'] = []

  constructor (options: IdentityEndpointOptions) {
    this.#scope = options.scope
    this.#attemptTimeoutMs = options.attemptTimeoutMs
    const inner = createDefaultHttpClient()
    this.#onExchange = options.onExchange ?? (() => {})
    const httpClient: HttpClient = {
      sendRequest: async (request: PipelineRequest) => {
        request.timeout = this.#attemptTimeoutMs
        // Exchanges belong to the attempt that was current when they were sent.
        const exchanges = this.#exchanges
        let exchange: Exchange = { status: 'unreachable' }
        try {
          const response = await inner.sendRequest(request)
          exchange = { status: response.status, retryAfterMs: parseRetryAfter(response.headers) }
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
    const common: TokenCredentialOptions = { retryOptions: { maxRetries: 0 }, httpClient }
    const { selector } = options
    this.#credential = selector.kind === 'clientId'
      ? new ManagedIdentityCredential({ ...common, clientId: selector.value })
      : selector.kind === 'resourceId'
        ? new ManagedIdentityCredential({ ...common, resourceId: selector.value })
        : selector.kind === 'objectId'
          ? new ManagedIdentityCredential({ ...common, objectId: selector.value })
          : new ManagedIdentityCredential(common)
  }

  /**
   * One getToken: at most one HTTP request, bounded by the attempt timeout. Throws an
   * IdentityEndpointError that says whether a retry may help.
   */
  async attempt (): Promise<Attempt> {
    const exchanges: Attempt['exchanges'] = []
    this.#exchanges = exchanges
    let timedOut = false
    let timer: NodeJS.Timeout | undefined
    // The request timeout above normally ends a hung request; this race is the backstop for any
    // path where the SDK would still not settle. Such an attempt is abandoned, not cancelled
    // (the SDK offers no way to cancel it): it ends with its socket, or never.
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { timedOut = true; reject(new Error('attempt timed out')) }, this.#attemptTimeoutMs + 250)
    })
    try {
      const token = await Promise.race([this.#credential.getToken(this.#scope), timeout])
      if (!token) throw new Error('the credential returned no token')
      for (const e of exchanges) this.#onExchange(typeof e.status === 'number' && e.status < 400 ? 'success' : 'failure')
      return { token, exchanges }
    } catch (error) {
      exchanges.forEach(() => this.#onExchange('failure'))
      const last = exchanges.at(-1)
      throw classifyCredentialError(error, {
        timedOut: timedOut || last?.status === 'timeout',
        answeredStatus: typeof last?.status === 'number' ? last.status : undefined,
        retryAfterMs: last && 'retryAfterMs' in last ? last.retryAfterMs : undefined
      })
    } finally {
      clearTimeout(timer)
    }
  }
}
