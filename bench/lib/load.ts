import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import type { OpenLoopOptions, OpenLoopResult } from './open-loop.ts'

export interface LoadOptions {
  url: string
  path: string
  connections: number
  durationSeconds: number
  /** Stop after this many requests instead (a bound, never a target). */
  amount?: number
  /** A fixed request rate over all connections (the soak), instead of as fast as possible. */
  overallRate?: number
  headers?: Record<string, string>
  /** A JSON array of tokens; request n carries token (tokenOffset + n) mod length. */
  tokensFile?: string
  tokenOffset?: number
}

/** One fixed-rate stream of the soak: requests cycle through the mix's kinds by weight. */
export interface RateStream {
  name: string
  url: string
  path: string
  /** requests per second */
  rate: number
  connections: number
  mix: Array<{ kind: string, weight: number, tokensFile?: string }>
  /** Read exp from 200 bodies (the caller's /call answers with the api's claims). */
  readsExp?: boolean
  /** A token counts as in hand until this long before its exp (a caller rightly stops using it then). */
  expiryMarginMs?: number
}

/** What one stream saw since the previous sample. */
export interface RateSample {
  name: string
  answered: number
  /** Requests not sent because too many were already waiting. */
  dropped: number
  /** kind -> status (or 'no answer') -> count */
  byKind: Record<string, Record<string, number>>
  latencies: number[]
  /** The same latencies by status ('no answer' for requests given up or failed). */
  latenciesByStatus: Record<string, number[]>
  /** Non-200 answers while the stream had seen a token that had not expired yet. */
  nonOkWithToken: number
  validUntilMs: number
  /**
   * The generator's own lag: how much later than due (5 ms) its send timer fired at most, in ms. Seconds
   * here mean the generator, not the target, was the bottleneck, and latencies include its backlog.
   */
  generatorLagMaxMs?: number
}

export type LoadMessage =
  | ({ kind: 'load' } & LoadOptions)
  | { kind: 'burst', url: string, concurrency: number }
  | { kind: 'rate-start', streams: RateStream[] }
  | { kind: 'rate-sample' }
  | { kind: 'rate-stop' }
  | ({ kind: 'open-loop', tokensFile: string } & Omit<OpenLoopOptions, 'tokens'>)

export interface LoadResult {
  requests: number
  elapsedSeconds: number
  rps: number
  latencyMs: { p50: number, p99: number, max: number }
  /** Answers by HTTP status. */
  statusCounts: Record<string, number>
  /** Connection errors and timeouts (no HTTP answer at all). */
  errors: number
  timeouts: number
  tokensUsed: number
}

export interface BurstResult {
  statusCounts: Record<string, number>
  errors: number
  elapsedMs: number
}

/** One autocannon process for one row: warm-up and measurement run in it one after the other. */
export class LoadGenerator {
  private readonly child: ChildProcess
  private readonly ready: Promise<unknown>

  constructor () {
    this.child = fork(new URL('./load-worker.ts', import.meta.url), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    this.ready = once(this.child, 'message')
  }

  get pid (): number | undefined { return this.child.pid }

  async run (options: LoadOptions): Promise<LoadResult> {
    return await this.send({ kind: 'load', ...options }) as LoadResult
  }

  async burst (url: string, concurrency: number): Promise<BurstResult> {
    return await this.send({ kind: 'burst', url, concurrency }) as BurstResult
  }

  async startRate (streams: RateStream[]): Promise<void> {
    await this.send({ kind: 'rate-start', streams })
  }

  async sampleRate (): Promise<RateSample[]> {
    return await this.send({ kind: 'rate-sample' }) as RateSample[]
  }

  /** A fixed rate over raw sockets (open-loop.ts): the overload row. */
  async openLoop (options: Omit<OpenLoopOptions, 'tokens'> & { tokensFile: string }): Promise<OpenLoopResult> {
    return await this.send({ kind: 'open-loop', ...options }) as OpenLoopResult
  }

  async stopRate (): Promise<RateSample[]> {
    return await this.send({ kind: 'rate-stop' }) as RateSample[]
  }

  private async send (message: LoadMessage): Promise<unknown> {
    await this.ready
    // Both waits are dropped once either settles, so that many runs leave no listeners behind.
    const settled = new AbortController()
    const answer = once(this.child, 'message', { signal: settled.signal }) as Promise<[{ ok: boolean, result?: unknown, error?: string }]>
    const exited = once(this.child, 'exit', { signal: settled.signal }).then(([code]) => {
      throw new Error(`the load generator exited with code ${String(code)}`)
    })
    exited.catch(() => {})
    answer.catch(() => {})
    this.child.send(message)
    try {
      const [reply] = await Promise.race([answer, exited])
      if (!reply.ok) throw new Error(`load generator: ${reply.error ?? 'unknown error'}`)
      return reply.result
    } finally {
      settled.abort()
    }
  }

  async stop (): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = once(this.child, 'exit')
    this.child.kill('SIGTERM')
    await exited
  }
}
