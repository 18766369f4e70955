import { setTimeout as sleep } from 'node:timers/promises'
import type { AccessToken, GetTokenOptions } from '@azure/core-auth'
import type { AttemptSource } from './endpoint.ts'
import { IdentityEndpointError, TokenUnavailableError, describeBody, failureOfStatus, hintFor, type FailureHints } from './errors.ts'

/** The resolved timings of a provider, all in ms except the fractions. */
export interface ScopeSettings {
  attemptTimeoutMs: number
  acquisitionDeadlineMs: number
  waitTimeoutMs: number
  retryBaseDelayMs: number
  retryMaxDelayMs: number
  fatalCooldownMs: number
  refreshFraction: number
  refreshJitter: number
  expiryMarginMs: number
  /** The app's own wording per reason (the built-in one otherwise). */
  hints: Partial<FailureHints>
}

/**
 * Events for metrics. The provider never hands a token to an observer. Every callback is optional.
 */
export interface TokenProviderObserver {
  /** A getToken was answered from the held token, without waiting. */
  servedFromCache?: () => void
  /** One HTTP exchange with the identity endpoint ended: `success` when it brought a usable answer. */
  exchange?: (result: 'success' | 'failure') => void
  /** One acquisition (attempts, backoff and Retry-After waits included) ended after `seconds`. */
  acquisitionFinished?: (result: 'success' | 'failure', seconds: number) => void
  /** An attempt failed while a valid token was held (the old token keeps being served). */
  refreshFailed?: () => void
}

/** A pino-compatible logger (fastify's `request.log` or `app.log` fit). Tokens are never logged. */
export interface Logger {
  debug: (object: object, message: string) => void
  info: (object: object, message: string) => void
  warn: (object: object, message: string) => void
  error: (object: object, message: string) => void
}

export interface GetOptions {
  forceRefresh?: boolean | undefined
  waitTimeoutMs?: number | undefined
  /** See ManagedIdentityGetTokenOptions.failFast. */
  failFast?: boolean | undefined
  abortSignal?: GetTokenOptions['abortSignal'] | undefined
}

interface HeldToken {
  token: string
  expiresOnMs: number
  /** When the SDK itself will refresh (its half-life point, only for tokens over 2 h). */
  sdkRefreshAfterMs: number | undefined
  /** Not handed out closer to expiry than this. */
  marginMs: number
}

const random = (min: number, max: number) => min + Math.random() * (max - min)

/** What getToken throws when its abortSignal fires, as @azure/abort-controller's AbortError. */
export class AbortError extends Error {
  override name = 'AbortError'
}

/**
 * How long an attempt may wait for the identity endpoint. A busy IMDS answers every request in
 * seconds (scale sets under load: 6 s and more), so a fixed per-attempt timeout shorter than that
 * would fail every attempt of an endpoint that works. Two rules keep the short timeout useful (a
 * hung connection is found quickly) without ever making a slow endpoint unusable:
 * - within an acquisition, an attempt that timed out is followed by one that may wait for the rest
 *   of the acquisition deadline;
 * - the short timeout holds only until a first success: from then on, a first attempt may wait
 *   twice as long as the last successful one took (Azure's Go SDK likewise imposes its short IMDS
 *   timeout only until IMDS has answered once: Azure/azure-sdk-for-go#22676, and then a 1-minute
 *   TryTimeout, sdk/azidentity/managed_identity_client.go).
 * One per provider: it is the endpoint that is slow, whichever scope asks.
 */
export class AttemptPace {
  readonly #baseMs: number
  readonly #maxMs: number
  #learnedMs: number | undefined

  constructor (baseMs: number, maxMs: number) {
    this.#baseMs = baseMs
    this.#maxMs = maxMs
  }

  /** The timeout of an acquisition's first attempt, in ms. */
  firstAttemptMs (): number {
    return this.#learnedMs ?? this.#baseMs
  }

  /** An attempt succeeded after `ms`. */
  succeeded (ms: number): void {
    this.#learnedMs = 2 * ms > this.#baseMs ? Math.min(this.#maxMs, 2 * ms) : undefined
  }
}

/**
 * How many failed answers in a row make the endpoint "failing" for failFast calls. One is a blip
 * (IMDS's 404 while it updates, one 429): a call waits through its backoff (a few hundred ms, or the
 * Retry-After) and is likely served. From the second on, calls are answered at once.
 */
const failFastStreak = 2

/**
 * Tokens for one scope (or one set of scopes), closing the SDK's gaps:
 * - single flight: one acquisition at a time, shared by every waiting request and the refresher;
 * - deadlines: a request waits at most waitTimeoutMs (then TokenUnavailableError), an acquisition
 *   runs at most acquisitionDeadlineMs, an attempt at most attemptTimeoutMs; once the endpoint has
 *   failed twice in a row, a failFast request never waits through a backoff;
 * - retries with full-jitter backoff (or Retry-After) for what Azure calls retryable, none for a
 *   deployment error, which also holds back new attempts for fatalCooldownMs;
 * - our own copy of the last good token, served while it is fresh; a background refresh at a
 *   jittered point of its lifetime, never on the request path, and while refreshes fail the last
 *   good token keeps being served until it comes within its margin of expiry.
 */
export class ScopeTokens {
  readonly #scopes: string[]
  readonly #source: AttemptSource
  readonly #settings: ScopeSettings
  readonly #observer: TokenProviderObserver
  readonly #log: Logger
  readonly #closing = new AbortController()
  #held: HeldToken | undefined
  #inflight: Promise<HeldToken> | undefined
  #lastFailure: IdentityEndpointError | undefined
  #fatalUntilMs = 0
  /** Honours a Retry-After beyond the acquisition that received it. */
  #retryNotBeforeMs = 0
  #refreshTimer: NodeJS.Timeout | undefined
  #refreshAtMs: number | undefined
  /** Warmed: the app declared it needs this scope. */
  #declared = false

  readonly #pace: AttemptPace
  /** The attempt in flight, for the message of a request that stops waiting for it. */
  #current: { attempt: number, startedAtMs: number, timeoutMs: number, nextAtMs?: number } | undefined
  /**
   * When the running acquisition's next attempt starts, while it waits out a backoff or a Retry-After
   * and the endpoint is failing: its answers failed twice in a row (failFastStreak).
   */
  #retryingAtMs: number | undefined
  /** Failed answers since the last token (attempts cut for slowness not counted). */
  #failedAnswers = 0
  /** Rejects each failFast waiter when an attempt fails: it is not kept waiting through the backoff. */
  readonly #failFastWaiters = new Set<(error: TokenUnavailableError) => void>()

  constructor (options: { scopes: string[], source: AttemptSource, settings: ScopeSettings, pace: AttemptPace, observer: TokenProviderObserver, log: Logger }) {
    this.#scopes = options.scopes
    this.#pace = options.pace
    this.#source = options.source
    this.#settings = options.settings
    this.#observer = options.observer
    this.#log = options.log
  }

  /** Starts an acquisition in the background unless a token is held or one runs; never blocks. */
  warm (): void {
    this.#declared = true
    if (!this.#held && !this.#inflight && this.#refreshTimer === undefined) this.#scheduleRefresh(0)
  }

  close (): void {
    clearTimeout(this.#refreshTimer)
    this.#closing.abort()
  }

  /**
   * The held token while it is fresh; else waits for the acquisition in progress (or starts one)
   * up to the wait timeout or the abort signal. forceRefresh skips the held token (after a 401):
   * what comes back is what the SDK holds, and the SDK serves its own cache until its renewal point.
   */
  async get (options: GetOptions = {}): Promise<AccessToken> {
    if (options.abortSignal?.aborted) throw new AbortError('getToken was aborted')
    const held = this.#held
    if (!options.forceRefresh && held && this.#isFresh(held)) {
      this.#observer.servedFromCache?.()
      return this.#accessToken(held)
    }
    const last = this.#lastFailure
    if (last && !last.retryable && Date.now() < this.#fatalUntilMs) {
      throw this.#unavailable(last.message, last)
    }
    const acquisition = this.#acquire()
    // #acquire has run the acquisition up to its first wait, so #retryingAtMs is current.
    const retryingAtMs = this.#retryingAtMs
    // The acquisition's own rejection is handled by #acquire (it schedules the next one).
    if (options.failFast && last !== undefined && retryingAtMs !== undefined) throw this.#failing(last, retryingAtMs)
    return this.#accessToken(await this.#waitFor(acquisition, options))
  }

  /**
   * Whether readiness and expiresInSeconds count this scope: the app declared it (warm), or it once
   * held a token (the app uses it). A scope only ever asked for, and never served, does not count:
   * one bad call (an unknown resource, a typo) must not take the service out of rotation.
   */
  get counts (): boolean {
    return this.#declared || this.#held !== undefined
  }

  /** null when a fresh token is held (readiness), else why not. */
  notReadyReason (): string | null {
    const held = this.#held
    if (held && this.#isFresh(held)) return null
    const why = this.#lastFailure ? `: ${this.#lastFailure.message}` : ''
    if (!held) return `no token yet${why}`
    return `the token expires in ${Math.round((held.expiresOnMs - Date.now()) / 1000)} s and is not renewed yet${why}`
  }

  /** Seconds until the held token expires; 0 without one. */
  expiresInSeconds (): number {
    return this.#held ? Math.max(0, (this.#held.expiresOnMs - Date.now()) / 1000) : 0
  }

  #accessToken (held: HeldToken): AccessToken {
    // The next background refresh, so that the Azure pipeline's token cycler asks again then (and
    // is answered from the held token until the refresh has renewed it).
    const refreshAfter = Math.min(this.#refreshAtMs ?? Infinity, held.expiresOnMs - held.marginMs)
    return { token: held.token, expiresOnTimestamp: held.expiresOnMs, refreshAfterTimestamp: Math.max(Date.now(), refreshAfter), tokenType: 'Bearer' }
  }

  #isFresh (held: Pick<HeldToken, 'expiresOnMs' | 'marginMs'>, now = Date.now()): boolean {
    return now < held.expiresOnMs - held.marginMs
  }

  #unavailable (message: string, failure: IdentityEndpointError | undefined, retryAfterMs?: number, fetching = false): TokenUnavailableError {
    const deploymentError = failure !== undefined && !failure.retryable
    // After a deployment error calls fail at once until the cooldown ends: that is when asking
    // again can first reach the endpoint (and help, if the deployment was fixed meanwhile).
    const cooldownMs = deploymentError ? this.#fatalUntilMs - Date.now() : 0
    return new TokenUnavailableError(message, {
      reason: failure?.reason ?? 'timeout',
      // What the last failure says is the most useful hint; without one, that the fetch goes on.
      hint: failure?.hint ?? 'the token is still being fetched: the acquisition goes on in the background, ask again later',
      deploymentError,
      fetching,
      endpointStatus: failure?.status,
      retryAfterMs: retryAfterMs ?? (cooldownMs > 0 ? cooldownMs : Math.max(1000, this.#retryNotBeforeMs - Date.now())),
      cause: failure
    })
  }

  /** A failFast call's answer while the endpoint is failing and the next attempt is not yet due. */
  #failing (last: IdentityEndpointError, nextAtMs: number): TokenUnavailableError {
    const inMs = Math.max(0, nextAtMs - Date.now())
    // retryAfterMs at least 1 s, as for every transient failure (TokenUnavailableError's contract).
    return this.#unavailable(`the identity endpoint is failing, the next attempt is in ${(inMs / 1000).toFixed(1)} s; last failure: ${last.message}`, last, Math.max(1000, inMs), true)
  }

  async #waitFor (acquisition: Promise<HeldToken>, options: GetOptions): Promise<HeldToken> {
    const waitTimeoutMs = options.waitTimeoutMs ?? this.#settings.waitTimeoutMs
    const signal = options.abortSignal
    let timer: NodeJS.Timeout | undefined
    let onAbort: (() => void) | undefined
    let onFailure: ((error: TokenUnavailableError) => void) | undefined
    const deadline = new Promise<never>((_resolve, reject) => {
      if (options.failFast) {
        onFailure = reject
        this.#failFastWaiters.add(onFailure)
      }
      timer = setTimeout(() => {
        const last = this.#lastFailure
        const current = this.#current
        const seconds = (ms: number) => Math.max(0, Math.round(ms / 1000))
        const progress = current === undefined
          ? ''
          : current.nextAtMs === undefined
            ? ` (attempt ${current.attempt} has waited ${seconds(Date.now() - current.startedAtMs)} s of up to ${seconds(current.timeoutMs)} s for the identity endpoint)`
            : ` (attempt ${current.attempt + 1} starts in ${seconds(current.nextAtMs - Date.now())} s)`
        reject(this.#unavailable(
          `the token is still being fetched: no token from the identity endpoint within ${waitTimeoutMs} ms${progress}${last ? `; last failure: ${last.message}` : ''}`,
          last, undefined, this.#inflight !== undefined))
      }, waitTimeoutMs)
      onAbort = () => { reject(new AbortError('getToken was aborted')) }
      signal?.addEventListener('abort', onAbort)
    })
    try {
      return await Promise.race([acquisition, deadline])
    } catch (error) {
      if (error instanceof TokenUnavailableError || error instanceof AbortError) throw error
      const failure = error as IdentityEndpointError
      throw this.#unavailable(failure.message, failure)
    } finally {
      clearTimeout(timer)
      if (onAbort) signal?.removeEventListener('abort', onAbort)
      if (onFailure) this.#failFastWaiters.delete(onFailure)
    }
  }

  /** Single flight: every caller shares the acquisition in progress. */
  #acquire (): Promise<HeldToken> {
    if (!this.#inflight) {
      const acquisition = this.#runAcquisition().finally(() => { this.#inflight = undefined; this.#current = undefined; this.#retryingAtMs = undefined })
      // Waiters may all have timed out: the outcome is still recorded, and a failure schedules the
      // next acquisition in the background, so that a token is eventually held without a request.
      acquisition.catch((error: unknown) => { this.#scheduleAfterFailure(error) })
      this.#inflight = acquisition
    }
    return this.#inflight
  }

  async #runAcquisition (): Promise<HeldToken> {
    const started = performance.now()
    const finished = (result: 'success' | 'failure') => this.#observer.acquisitionFinished?.(result, (performance.now() - started) / 1000)
    const deadlineMs = Date.now() + this.#settings.acquisitionDeadlineMs
    const throttledForMs = this.#retryNotBeforeMs - Date.now()
    if (throttledForMs > 0 && this.#lastFailure) {
      if (Date.now() + throttledForMs >= deadlineMs) {
        finished('failure')
        throw this.#lastFailure
      }
      if (this.#failedAnswers >= failFastStreak) this.#retryingAtMs = this.#retryNotBeforeMs
      await sleep(throttledForMs, undefined, { signal: this.#closing.signal, ref: false }).catch(() => {})
      this.#retryingAtMs = undefined
    }
    let timeoutMs = this.#pace.firstAttemptMs()
    for (let attempt = 0; ; attempt++) {
      const attemptStarted = performance.now()
      const attemptTimeoutMs = Math.max(1, Math.min(timeoutMs, deadlineMs - Date.now()))
      this.#current = { attempt: attempt + 1, startedAtMs: Date.now(), timeoutMs: attemptTimeoutMs }
      try {
        const held = this.#adopt(await this.#attemptOnce(attemptTimeoutMs))
        // Any answer with a usable token ends the streak, the held token handed back again included.
        this.#failedAnswers = 0
        this.#pace.succeeded(performance.now() - attemptStarted)
        finished('success')
        return held
      } catch (error) {
        const failure = error instanceof IdentityEndpointError
          ? error
          : new IdentityEndpointError((error as Error).message, { reason: 'unknown', retryable: true, hint: hintFor('unknown', this.#settings.hints), cause: error })
        this.#lastFailure = failure
        const refreshing = this.#held !== undefined && Date.now() < this.#held.expiresOnMs
        if (refreshing) this.#observer.refreshFailed?.()
        const fields = { scopes: this.#scopes, reason: failure.reason, status: failure.status, attempt: attempt + 1, refreshing }
        if (!failure.retryable) {
          // A deployment error is no streak of transient failures: failFast starts counting afresh after it.
          this.#failedAnswers = 0
          this.#fatalUntilMs = Date.now() + this.#settings.fatalCooldownMs
          this.#log.error({ ...fields, err: failure }, 'managed identity token: deployment error, not retried')
          finished('failure')
          throw failure
        }
        const delayMs = failure.retryAfterMs ?? Math.random() * Math.min(this.#settings.retryMaxDelayMs, this.#settings.retryBaseDelayMs * 2 ** attempt)
        if (failure.retryAfterMs !== undefined) this.#retryNotBeforeMs = Date.now() + failure.retryAfterMs
        // An attempt we cut: the endpoint may be slow rather than gone, so the next one may wait
        // for the rest of the deadline (a 408 is the endpoint's own answer, not a cut).
        const cut = failure.reason === 'timeout' && failure.status === undefined
        if (cut) timeoutMs = Math.max(timeoutMs, deadlineMs - Date.now() - delayMs)
        // Counted before the deadline check: the failure that ends an acquisition is part of the streak too.
        // A cut attempt says the endpoint is slow, not failing: failFast calls wait for the next one.
        if (!cut) this.#failedAnswers++
        if (Date.now() + delayMs >= deadlineMs || this.#closing.signal.aborted) {
          this.#log.warn({ ...fields, err: failure }, 'managed identity token: acquisition gave up at its deadline')
          finished('failure')
          throw failure
        }
        this.#current = { ...this.#current!, nextAtMs: Date.now() + delayMs }
        if (!cut && this.#failedAnswers >= failFastStreak) {
          this.#retryingAtMs = Date.now() + delayMs
          for (const reject of this.#failFastWaiters) reject(this.#failing(failure, this.#retryingAtMs))
          this.#failFastWaiters.clear()
        }
        // Expected while the endpoint recovers: the message, without a stack per attempt.
        this.#log.warn({ ...fields, retryInMs: Math.round(delayMs), error: failure.message }, 'managed identity token: attempt failed, retrying')
        await sleep(delayMs, undefined, { signal: this.#closing.signal, ref: false }).catch(() => {})
        this.#retryingAtMs = undefined
        if (this.#closing.signal.aborted) throw failure
      }
    }
  }

  /** One attempt, judged: a fresh token, or an IdentityEndpointError. */
  async #attemptOnce (timeoutMs: number): Promise<AccessToken> {
    let { token, exchanges } = await this.#source.attempt(this.#scopes, timeoutMs)
    // During its own proactive refresh (tokens over 2 h, past their half-life) MSAL swallows an
    // HTTP error and hands back its cached token; the exchange shows what really happened.
    const failed = exchanges.find((e) => e.status === 'timeout' || e.status === 'unreachable' || e.status >= 400)
    if (failed) {
      if (typeof failed.status === 'number') throw failureOfStatus(failed.status, `${describeBody(failed.body ?? '')} (during the SDK's own refresh)`, failed.retryAfterMs, undefined, this.#settings.hints)
      throw new IdentityEndpointError(`the identity endpoint is ${failed.status === 'timeout' ? 'not answering' : 'unreachable'}`,
        { reason: failed.status, retryable: true, hint: hintFor(failed.status, this.#settings.hints) })
    }
    // ...and when that refresh succeeds it still returns the old token, keeping the new one in its
    // cache: read it from there (no request).
    const held = this.#held
    if (held && exchanges.length > 0 && token.expiresOnTimestamp <= held.expiresOnMs &&
        held.sdkRefreshAfterMs !== undefined && Date.now() >= held.sdkRefreshAfterMs) {
      ({ token } = await this.#source.attempt(this.#scopes, timeoutMs))
    }
    const margin = this.#marginFor(token.expiresOnTimestamp - Date.now())
    if (!this.#isFresh({ expiresOnMs: token.expiresOnTimestamp, marginMs: margin })) {
      throw new IdentityEndpointError(`the identity endpoint handed out a token that expires in ${Math.round((token.expiresOnTimestamp - Date.now()) / 1000)} s`,
        { reason: 'stale_token', retryable: true, hint: hintFor('stale_token', this.#settings.hints) })
    }
    return token
  }

  #marginFor (lifetimeMs: number): number {
    // A tenth of the lifetime for short-lived tokens, so that a 60 s test token is usable for 54 s.
    return Math.min(this.#settings.expiryMarginMs, lifetimeMs / 10)
  }

  /** Keeps a token newer than the one held, and plans its refresh. */
  #adopt (token: AccessToken): HeldToken {
    const held = this.#held
    if (held && token.expiresOnTimestamp <= held.expiresOnMs) return held
    const now = Date.now()
    const lifetimeMs = token.expiresOnTimestamp - now
    const next: HeldToken = {
      token: token.token,
      expiresOnMs: token.expiresOnTimestamp,
      sdkRefreshAfterMs: token.refreshAfterTimestamp,
      marginMs: this.#marginFor(lifetimeMs)
    }
    this.#held = next
    this.#lastFailure = undefined
    this.#failedAnswers = 0
    this.#fatalUntilMs = 0
    // Jittered, so that a scale set's instances, which all started together, do not refresh together.
    const { refreshFraction, refreshJitter } = this.#settings
    const refreshInMs = lifetimeMs * (refreshFraction + Math.random() * refreshJitter)
    this.#log.info({ scopes: this.#scopes, expiresInSeconds: Math.round(lifetimeMs / 1000), refreshInSeconds: Math.round(refreshInMs / 1000) }, 'managed identity token: acquired')
    this.#scheduleRefresh(refreshInMs)
    return next
  }

  #scheduleRefresh (delayMs: number): void {
    if (this.#closing.signal.aborted) return
    clearTimeout(this.#refreshTimer)
    this.#refreshAtMs = Date.now() + Math.max(0, delayMs)
    this.#refreshTimer = setTimeout(() => { this.#refresh().catch(() => {}) }, Math.max(0, delayMs))
    this.#refreshTimer.unref()
  }

  /** After a failed acquisition (deadline or deployment error): the next one, in the background. */
  #scheduleAfterFailure (error: unknown): void {
    const fatal = error instanceof IdentityEndpointError && !error.retryable
    const retryAfterMs = this.#retryNotBeforeMs - Date.now()
    this.#scheduleRefresh(fatal ? this.#settings.fatalCooldownMs : Math.max(retryAfterMs, random(0.5, 1) * this.#settings.retryMaxDelayMs))
  }

  async #refresh (): Promise<void> {
    const before = this.#held
    const after = await this.#acquire()
    if (before && after === before) {
      // Not renewed: the SDK (or the endpoint, which caches too) handed back the token we hold.
      // The SDK renews a token of up to 2 h only in its last 5 minutes, so look again at a
      // fraction of the time left until our margin, which converges into that window before
      // the margin is reached.
      const untilMarginMs = before.expiresOnMs - before.marginMs - Date.now()
      const nextInMs = Math.max(1000, untilMarginMs * random(0.25, 0.5))
      this.#log.debug({ scopes: this.#scopes, expiresInSeconds: Math.round((before.expiresOnMs - Date.now()) / 1000), nextCheckInSeconds: Math.round(nextInMs / 1000) },
        'managed identity token: not renewed yet (the SDK or the endpoint served its cached token)')
      this.#scheduleRefresh(nextInMs)
    }
  }
}
