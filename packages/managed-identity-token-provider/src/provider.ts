import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/core-auth'
import { CredentialEndpoint, ManagedIdentityEndpoint, type AttemptSource, type IdentitySelector } from './endpoint.ts'
import { TokenUnavailableError, defaultHints, type FailureHints } from './errors.ts'
import type { ManagedIdentityTokenProviderOptions } from './options.ts'
import { AbortError, AttemptPace, ScopeTokens, type Logger, type ScopeSettings, type TokenProviderObserver } from './scope-tokens.ts'

/** getToken's options: the `TokenCredential` ones, plus `forceRefresh`. */
export interface ManagedIdentityGetTokenOptions extends GetTokenOptions {
  /**
   * Skip the held token and ask the credential again (say, after the target answered 401). The
   * SDK serves its own cache until its renewal point, so this may hand back the same token.
   * @default false
   */
  forceRefresh?: boolean
  /**
   * For request paths: while the identity endpoint is failing (its last two answers were retryable
   * failures: a 429, a 5xx, IMDS's 404 or 410, an unreadable answer, a refused connection) and no
   * fresh token is held (or `forceRefresh` skips it), throw
   * {@link TokenUnavailableError} at once (with `retryAfterMs` until the next attempt, at least
   * 1000, and `fetching: true`) instead of waiting through the backoff or Retry-After. A call that is
   * waiting for an attempt in flight is released when that attempt's failure completes the two.
   * Past a failing dependency a service should refuse fast rather than hold every request for
   * `waitTimeoutMs`. Calls still wait,
   * up to `waitTimeoutMs`, before any failure (a cold start), through a single failure (a blip such
   * as IMDS's 404 while it updates: the retry comes within the backoff or Retry-After), and after an
   * attempt cut at `attemptTimeoutMs` (a slow endpoint is not a failing one; the next attempt may
   * wait longer).
   * @default false (wait up to `waitTimeoutMs`, through retries, as a TokenCredential's callers expect)
   */
  failFast?: boolean
}

const silent: Logger = { debug () {}, info () {}, warn () {}, error () {} }

const prefix = 'ManagedIdentityTokenProvider:'

/** Every option name: anything else is refused, so that a typo (clientID) never silently selects another identity. */
const optionNames: ReadonlyArray<keyof ManagedIdentityTokenProviderOptions> = [
  'clientId', 'resourceId', 'objectId', 'credential', 'attemptTimeoutMs', 'waitTimeoutMs', 'acquisitionDeadlineMs',
  'retryBaseDelayMs', 'retryMaxDelayMs', 'fatalCooldownMs', 'refreshFraction', 'refreshJitter', 'expiryMarginMs',
  'maxScopes', 'hints', 'logger', 'observer'
]

/** A value's type for a message: `string "5000"` says more than `5000`. */
const shown = (value: unknown): string => typeof value === 'string' ? `string ${JSON.stringify(value)}` : value === null ? 'null' : typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`

function number (name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number') throw new TypeError(`${prefix} ${name} must be a number, got ${shown(value)}`)
  return value
}

function positive (name: string, value: unknown, fallback: number): number {
  const result = number(name, value, fallback)
  if (!Number.isFinite(result) || result <= 0) throw new RangeError(`${prefix} ${name} must be a positive number of ms, got ${result}`)
  return result
}

function fraction (name: string, value: unknown, fallback: number): number {
  const result = number(name, value, fallback)
  if (!(result >= 0 && result <= 1)) throw new RangeError(`${prefix} ${name} must be within [0, 1], got ${result}`)
  return result
}

/** An identity selector: unset, or a non-empty string. */
function selector (name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string') throw new TypeError(`${prefix} ${name} must be a string, got ${shown(value)}`)
  // An empty AZURE_CLIENT_ID (a variable set to nothing) would otherwise select the system-assigned
  // identity: another principal, with other role assignments, without a word.
  if (value.trim() === '') throw new TypeError(`${prefix} ${name} is an empty string (an empty environment variable?); leave it undefined for the system-assigned identity`)
  return value
}

/** Refuses unknown option names (JS callers, typos), naming the closest known one. */
function checkNames (options: object): void {
  for (const name of Object.keys(options)) {
    if ((optionNames as readonly string[]).includes(name)) continue
    const near = optionNames.find((known) => known.toLowerCase() === name.toLowerCase())
    throw new TypeError(`${prefix} unknown option ${JSON.stringify(name)}${near ? ` (did you mean ${near}?)` : ''}; the options are ${optionNames.join(', ')}`)
  }
}

function checkHints (hints: unknown): Partial<FailureHints> {
  if (hints === undefined) return {}
  if (typeof hints !== 'object' || hints === null) throw new TypeError(`${prefix} hints must be an object of reason: sentence, got ${shown(hints)}`)
  for (const [reason, hint] of Object.entries(hints)) {
    if (!(reason in defaultHints)) throw new TypeError(`${prefix} hints has an unknown reason ${JSON.stringify(reason)}; the reasons are ${Object.keys(defaultHints).join(', ')}`)
    if (typeof hint !== 'string' && hint !== undefined) throw new TypeError(`${prefix} hints.${reason} must be a string, got ${shown(hint)}`)
  }
  return { ...hints }
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

  /**
   * @throws TypeError for an unknown option name (a typo such as `clientID` would otherwise select
   * the system-assigned identity), an empty identity selector (an empty `AZURE_CLIENT_ID`: same),
   * two selectors or a selector next to `credential`, or an option of the wrong type (`'5000'` for
   * a number); RangeError for a timing that is not a positive number, a `maxScopes` that is not a
   * positive integer, or a refresh window past expiry.
   */
  constructor (options: ManagedIdentityTokenProviderOptions = {}) {
    if (typeof options !== 'object' || options === null) throw new TypeError(`${prefix} options must be an object, got ${shown(options)}`)
    checkNames(options)
    const ids = { clientId: selector('clientId', options.clientId), resourceId: selector('resourceId', options.resourceId), objectId: selector('objectId', options.objectId) }
    const selectors = (['clientId', 'resourceId', 'objectId'] as const).filter((name) => ids[name] !== undefined)
    if (selectors.length > 1) throw new TypeError(`${prefix} ${selectors.join(' and ')} are both set; select the managed identity with at most one of them`)
    if (options.credential !== undefined && typeof (options.credential as Partial<TokenCredential> | null)?.getToken !== 'function') {
      throw new TypeError(`${prefix} credential must be a TokenCredential (an object with getToken), got ${shown(options.credential)}`)
    }
    if (options.credential && selectors.length > 0) throw new TypeError(`${prefix} ${selectors[0]} has no effect with credential; select the identity in the credential itself`)
    const refreshFraction = fraction('refreshFraction', options.refreshFraction, 0.5)
    const refreshJitter = fraction('refreshJitter', options.refreshJitter, 0.25)
    if (refreshFraction + refreshJitter >= 1) throw new RangeError(`${prefix} refreshFraction + refreshJitter must stay below 1 (a refresh after expiry is no refresh)`)
    const hints = checkHints(options.hints)
    this.#settings = {
      attemptTimeoutMs: positive('attemptTimeoutMs', options.attemptTimeoutMs, 5000),
      waitTimeoutMs: positive('waitTimeoutMs', options.waitTimeoutMs, 10_000),
      acquisitionDeadlineMs: positive('acquisitionDeadlineMs', options.acquisitionDeadlineMs, 60_000),
      retryBaseDelayMs: positive('retryBaseDelayMs', options.retryBaseDelayMs, 500),
      retryMaxDelayMs: positive('retryMaxDelayMs', options.retryMaxDelayMs, 15_000),
      fatalCooldownMs: positive('fatalCooldownMs', options.fatalCooldownMs, 30_000),
      refreshFraction,
      refreshJitter,
      expiryMarginMs: number('expiryMarginMs', options.expiryMarginMs, 120_000),
      hints
    }
    if (!(this.#settings.expiryMarginMs >= 0 && this.#settings.expiryMarginMs < Infinity)) throw new RangeError(`${prefix} expiryMarginMs must be a finite number >= 0, got ${this.#settings.expiryMarginMs}`)
    this.#pace = new AttemptPace(this.#settings.attemptTimeoutMs, this.#settings.acquisitionDeadlineMs)
    this.#maxScopes = number('maxScopes', options.maxScopes, 16)
    // 0 would refuse every scope: a provider that can never give a token.
    if (!Number.isSafeInteger(this.#maxScopes) || this.#maxScopes < 1) throw new RangeError(`${prefix} maxScopes must be a positive integer, got ${this.#maxScopes}`)
    for (const name of ['logger', 'observer'] as const) {
      if (options[name] !== undefined && (typeof options[name] !== 'object' || options[name] === null)) throw new TypeError(`${prefix} ${name} must be an object, got ${shown(options[name])}`)
    }
    this.#observer = options.observer ?? {}
    this.#log = options.logger ?? silent
    this.#managedIdentity = options.credential === undefined
    const identity: IdentitySelector = ids.clientId !== undefined
      ? { kind: 'clientId', value: ids.clientId }
      : ids.resourceId !== undefined
        ? { kind: 'resourceId', value: ids.resourceId }
        : ids.objectId !== undefined ? { kind: 'objectId', value: ids.objectId } : { kind: 'system' }
    this.#source = options.credential
      ? new CredentialEndpoint(options.credential, hints)
      : new ManagedIdentityEndpoint({ selector: identity, hints, onExchange: (result) => this.#observer.exchange?.(result) })
  }

  /**
   * A token for `scopes` (one scope for a managed identity, e.g. `api://my-api/.default`).
   * Answered from the held token while it is fresh; otherwise waits for the acquisition in
   * progress up to `waitTimeoutMs` (or `requestOptions.timeout`, or until `abortSignal` fires).
   * @throws TokenUnavailableError with `reason` and `hint`; AbortError when aborted.
   */
  async getToken (scopes: string | string[], options: ManagedIdentityGetTokenOptions = {}): Promise<AccessToken> {
    // Before the scope is registered: an aborted call starts nothing, so it must leave nothing behind.
    if (options.abortSignal?.aborted) throw new AbortError('getToken was aborted')
    return await this.#tokensFor(scopes).get({
      forceRefresh: options.forceRefresh,
      failFast: options.failFast,
      waitTimeoutMs: options.requestOptions?.timeout || undefined,
      abortSignal: options.abortSignal
    })
  }

  /**
   * Starts acquiring tokens for these scopes in the background, so that the first request finds
   * one held (call it when the app is ready; it never blocks). It also declares them needed:
   * notReadyReason and expiresInSeconds count them from now on, token or not.
   */
  warm (...scopes: Array<string | string[]>): void {
    for (const scope of scopes) this.#tokensFor(scope).warm()
  }

  /**
   * The scopes that readiness and expiresInSeconds are about: those the app declared it needs
   * (warmed: the Fastify plugin's `scopes`) and those that once held a token (the app uses them).
   * A scope that was only asked for and never served (an unknown resource, a typo, request input)
   * does not count, so that one bad call cannot take the service out of rotation.
   */
  #needed (): Array<[string, ScopeTokens]> {
    return [...this.#scopes].filter(([, tokens]) => tokens.counts)
  }

  /**
   * For a readiness probe: null when a fresh token is held for every scope that counts (warmed,
   * or that once held a token), else why not (`<scope>: <why>` when several count). Before any
   * scope counts, never null: "no token requested yet" without any scope, else why the scopes
   * asked for have no token yet (the first of them).
   */
  notReadyReason (): string | null {
    const needed = this.#needed()
    const scopes = needed.length > 0 ? needed : [...this.#scopes]
    if (scopes.length === 0) return 'no token requested yet'
    for (const [key, tokens] of scopes) {
      const reason = tokens.notReadyReason()
      if (reason !== null) return scopes.length === 1 ? reason : `${key}: ${reason}`
    }
    return null
  }

  /**
   * Seconds until the soonest-expiring token of the scopes that count (warmed, or that once held
   * a token) expires; 0 while one of them holds none, or before any counts.
   */
  expiresInSeconds (): number {
    let soonest = Infinity
    for (const [, tokens] of this.#needed()) soonest = Math.min(soonest, tokens.expiresInSeconds())
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
