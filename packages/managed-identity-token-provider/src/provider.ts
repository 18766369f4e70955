import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/core-auth'
import { CredentialEndpoint, ManagedIdentityEndpoint, type AttemptSource, type IdentitySelector } from './endpoint.ts'
import { TokenUnavailableError, type FailureHints } from './errors.ts'
import type { ManagedIdentityTokenProviderOptions } from './options.ts'
import { AttemptPace, ScopeTokens, type Logger, type ScopeSettings, type TokenProviderObserver } from './scope-tokens.ts'

/** getToken's options: the `TokenCredential` ones, plus `forceRefresh`. */
export interface ManagedIdentityGetTokenOptions extends GetTokenOptions {
  /**
   * Skip the held token and ask the credential again (say, after the target answered 401). The
   * SDK serves its own cache until its renewal point, so this may hand back the same token.
   * @default false
   */
  forceRefresh?: boolean
}

const silent: Logger = { debug () {}, info () {}, warn () {}, error () {} }

function positive (name: string, value: number | undefined, fallback: number): number {
  const result = value ?? fallback
  if (!Number.isFinite(result) || result <= 0) throw new RangeError(`ManagedIdentityTokenProvider: ${name} must be a positive number of ms, got ${value}`)
  return result
}

function fraction (name: string, value: number | undefined, fallback: number): number {
  const result = value ?? fallback
  if (!(result >= 0 && result <= 1)) throw new RangeError(`ManagedIdentityTokenProvider: ${name} must be within [0, 1], got ${value}`)
  return result
}

/**
 * A `TokenCredential` for managed identities that survives what the identity endpoint does in
 * production. It wraps `ManagedIdentityCredential` (or any `TokenCredential`) and adds, per
 * scope: single flight, a timeout per attempt and a deadline per acquisition, retries with
 * backoff and Retry-After, a background refresh ahead of expiry, and the last good token while
 * the endpoint is down.
 *
 * getToken never returns null: it resolves with an `AccessToken` (`expiresOnTimestamp` and
 * `refreshAfterTimestamp` in ms since the epoch) or throws a {@link TokenUnavailableError}
 * (`reason`, `hint`, `deploymentError`), or an `AbortError` when its `abortSignal` fires.
 *
 * @example
 * const credential = new ManagedIdentityTokenProvider({ clientId: process.env.AZURE_CLIENT_ID })
 * const { token } = await credential.getToken('api://my-api/.default')
 */
export class ManagedIdentityTokenProvider implements TokenCredential {
  readonly #source: AttemptSource
  readonly #settings: ScopeSettings
  readonly #observer: TokenProviderObserver
  readonly #log: Logger
  readonly #maxScopes: number
  readonly #managedIdentity: boolean
  readonly #scopes = new Map<string, ScopeTokens>()
  readonly #pace: AttemptPace
  #closed = false

  /** @throws TypeError for two identity selectors, or a selector next to `credential`; RangeError for a bad timing. */
  constructor (options: ManagedIdentityTokenProviderOptions = {}) {
    const selectors = (['clientId', 'resourceId', 'objectId'] as const).filter((name) => options[name] !== undefined)
    if (selectors.length > 1) throw new TypeError(`ManagedIdentityTokenProvider: ${selectors.join(' and ')} are both set; select the managed identity with at most one of them`)
    if (options.credential && selectors.length > 0) throw new TypeError(`ManagedIdentityTokenProvider: ${selectors[0]} has no effect with credential; select the identity in the credential itself`)
    const refreshFraction = fraction('refreshFraction', options.refreshFraction, 0.5)
    const refreshJitter = fraction('refreshJitter', options.refreshJitter, 0.25)
    if (refreshFraction + refreshJitter >= 1) throw new RangeError('ManagedIdentityTokenProvider: refreshFraction + refreshJitter must stay below 1 (a refresh after expiry is no refresh)')
    const hints: Partial<FailureHints> = { ...options.hints }
    this.#settings = {
      attemptTimeoutMs: positive('attemptTimeoutMs', options.attemptTimeoutMs, 5000),
      waitTimeoutMs: positive('waitTimeoutMs', options.waitTimeoutMs, 10_000),
      acquisitionDeadlineMs: positive('acquisitionDeadlineMs', options.acquisitionDeadlineMs, 60_000),
      retryBaseDelayMs: positive('retryBaseDelayMs', options.retryBaseDelayMs, 500),
      retryMaxDelayMs: positive('retryMaxDelayMs', options.retryMaxDelayMs, 15_000),
      fatalCooldownMs: positive('fatalCooldownMs', options.fatalCooldownMs, 30_000),
      refreshFraction,
      refreshJitter,
      expiryMarginMs: options.expiryMarginMs ?? 120_000,
      hints
    }
    if (!(this.#settings.expiryMarginMs >= 0)) throw new RangeError(`ManagedIdentityTokenProvider: expiryMarginMs must be >= 0, got ${options.expiryMarginMs}`)
    this.#pace = new AttemptPace(this.#settings.attemptTimeoutMs, this.#settings.acquisitionDeadlineMs)
    this.#maxScopes = options.maxScopes ?? 16
    this.#observer = options.observer ?? {}
    this.#log = options.logger ?? silent
    this.#managedIdentity = options.credential === undefined
    const selector: IdentitySelector = options.clientId !== undefined
      ? { kind: 'clientId', value: options.clientId }
      : options.resourceId !== undefined
        ? { kind: 'resourceId', value: options.resourceId }
        : options.objectId !== undefined ? { kind: 'objectId', value: options.objectId } : { kind: 'system' }
    this.#source = options.credential
      ? new CredentialEndpoint(options.credential, hints)
      : new ManagedIdentityEndpoint({ selector, hints, onExchange: (result) => this.#observer.exchange?.(result) })
  }

  /**
   * A token for `scopes` (one scope for a managed identity, e.g. `api://my-api/.default`).
   * Answered from the held token while it is fresh; otherwise waits for the acquisition in
   * progress up to `waitTimeoutMs` (or `requestOptions.timeout`, or until `abortSignal` fires).
   * @throws TokenUnavailableError with `reason` and `hint`; AbortError when aborted.
   */
  async getToken (scopes: string | string[], options: ManagedIdentityGetTokenOptions = {}): Promise<AccessToken> {
    return await this.#tokensFor(scopes).get({
      forceRefresh: options.forceRefresh,
      waitTimeoutMs: options.requestOptions?.timeout || undefined,
      abortSignal: options.abortSignal
    })
  }

  /**
   * Starts acquiring tokens for these scopes in the background, so that the first request finds
   * one held (call it when the app is ready; it never blocks).
   */
  warm (...scopes: Array<string | string[]>): void {
    for (const scope of scopes) this.#tokensFor(scope).warm()
  }

  /**
   * For a readiness probe: null when a fresh token is held for every scope asked for so far (or
   * warmed), else why not. Without any scope yet: "no token requested yet".
   */
  notReadyReason (): string | null {
    if (this.#scopes.size === 0) return 'no token requested yet'
    for (const [key, tokens] of this.#scopes) {
      const reason = tokens.notReadyReason()
      if (reason !== null) return this.#scopes.size === 1 ? reason : `${key}: ${reason}`
    }
    return null
  }

  /** Seconds until the soonest-expiring held token expires; 0 while any scope has none. */
  expiresInSeconds (): number {
    let soonest = Infinity
    for (const tokens of this.#scopes.values()) soonest = Math.min(soonest, tokens.expiresInSeconds())
    return soonest === Infinity ? 0 : soonest
  }

  /** Stops the background refreshes; getToken keeps serving held tokens. */
  close (): void {
    this.#closed = true
    for (const tokens of this.#scopes.values()) tokens.close()
  }

  #tokensFor (scopes: string | string[]): ScopeTokens {
    const list = (Array.isArray(scopes) ? scopes : [scopes]).map((scope) => scope.trim())
    if (list.length === 0 || list.some((scope) => scope === '')) {
      throw new TokenUnavailableError('no scope given', { reason: 'invalid_scope', hint: 'pass a scope such as api://my-api/.default', deploymentError: true })
    }
    if (this.#managedIdentity && list.length !== 1) {
      throw new TokenUnavailableError(`a managed identity token is for exactly one scope, got ${list.length}`, {
        reason: 'invalid_scope', hint: 'ask for one scope per token (the resource followed by /.default)', deploymentError: true
      })
    }
    const key = list.join(' ')
    let tokens = this.#scopes.get(key)
    if (!tokens) {
      if (this.#scopes.size >= this.#maxScopes) {
        throw new TokenUnavailableError(`tokens are already kept for ${this.#scopes.size} scopes (maxScopes)`, {
          reason: 'too_many_scopes', hint: 'raise maxScopes, or check that scopes are not built from request input', deploymentError: true
        })
      }
      tokens = new ScopeTokens({ scopes: list, source: this.#source, settings: this.#settings, pace: this.#pace, observer: this.#observer, log: this.#log })
      if (this.#closed) tokens.close()
      this.#scopes.set(key, tokens)
    }
    return tokens
  }
}
