import type { KeyObject } from 'node:crypto'
import { Worker } from 'node:worker_threads'

/** Messages to the worker thread: a key (sent once per KeyObject), a key to drop, or a batch to check. */
export type ToWorker =
  | { id: number, key: KeyObject }
  | { forget: number }
  | { keyIds: number[], tokens: string[] }

/**
 * Checks per message at most. A round of I/O under a flood can read thousands of tokens (256 pipelining
 * sockets, 64 KiB each: about 11,000 of 1.5 KB), and one message of them all would land 16 MB of strings
 * in a thread whose heap is capped at 4 MB young and 32 MB old. 512 tokens are about 0.8 MB.
 */
export const MAX_BATCH = 512

interface Pending {
  resolve: (valid: boolean) => void
  /** The same check on this thread: what a pending token gets if the worker is gone. */
  inline: () => boolean
}

/**
 * RS256 checks on one worker thread, sent in batches: every check asked for while the event loop handles
 * one round of I/O goes in one message, sent from setImmediate, and comes back as one message of one byte
 * per token. Why not crypto.verify's callback form (signatureChecks 'thread-pool'): it costs a libuv job,
 * a thread hand-off and a wake-up of the event loop per token, about 15 µs of CPU on top of the 21 µs
 * check (bench/micro/validate.ts: 45.6 against 29.9 µs per distinct token); a batch of tens of tokens
 * shares one of each.
 *
 * Keys stay with the key store on the main thread; the worker holds a copy of each KeyObject it was sent,
 * dropped when the main thread's KeyObject is garbage-collected. If the worker fails, the checks it held
 * and every later one are done on the event loop, and onError is told once: a fault here costs speed,
 * never an answer.
 */
export class SignatureWorker {
  private worker: Worker | undefined
  private readonly keyIds = new WeakMap<KeyObject, number>()
  private nextKeyId = 1
  private batch: { keyIds: number[], tokens: string[], pending: Pending[] } | undefined
  /** Batches the thread owes answers for, oldest first, each with when it was posted (performance.now()). */
  private readonly inFlight: Array<{ pending: Pending[], postedAt: number }> = []
  private readonly forget = new FinalizationRegistry<number>((id) => { this.worker?.postMessage({ forget: id } satisfies ToWorker) })
  private readonly onError: (error: Error) => void

  constructor (options: { onError: (error: Error) => void }) {
    this.onError = options.onError
    // From src/ (type stripping, the tests) or dist/ (compiled): the thread's file sits next to this one.
    const file = import.meta.url.endsWith('.ts') ? './signature-worker-thread.ts' : './signature-worker-thread.js'
    // execArgv []: the thread needs none of the app's Node flags, and some refuse to start it (--input-type
    // of a script run with -e). Small heap limits: it holds a few keys and one batch at a time.
    const worker = new Worker(new URL(file, import.meta.url), { execArgv: [], resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 32 } })
    worker.on('message', (results: Uint8Array) => {
      const pending = this.inFlight.shift()?.pending ?? []
      if (this.inFlight.length === 0) worker.unref()
      for (let i = 0; i < pending.length; i++) (pending[i] as Pending).resolve(results[i] === 1)
    })
    worker.on('error', (error) => { this.fail(error) })
    worker.on('exit', (code) => { if (this.worker !== undefined) this.fail(new Error(`the signature worker exited with code ${code}`)) })
    // An app that is never closed must still be able to exit: the thread alone keeps nothing alive.
    worker.unref()
    this.worker = worker
  }

  /** Whether the signature over token's signing input is publicKey's RS256 signature; never rejects. */
  check (publicKey: KeyObject, token: string, inline: () => boolean): Promise<boolean> {
    const worker = this.worker
    if (worker === undefined) return Promise.resolve(inline())
    let keyId = this.keyIds.get(publicKey)
    if (keyId === undefined) {
      keyId = this.nextKeyId++
      this.keyIds.set(publicKey, keyId)
      this.forget.register(publicKey, keyId)
      worker.postMessage({ id: keyId, key: publicKey } satisfies ToWorker)
    }
    if (this.batch === undefined) {
      this.batch = { keyIds: [], tokens: [], pending: [] }
      setImmediate(() => { this.flush() })
    }
    const batch = this.batch
    batch.keyIds.push(keyId)
    batch.tokens.push(token)
    const answer = new Promise<boolean>((resolve) => { batch.pending.push({ resolve, inline }) })
    // Full: sent now; the next check starts another batch (and setImmediate flushes whichever is open).
    if (batch.tokens.length >= MAX_BATCH) this.flush()
    return answer
  }

  private flush (): void {
    const batch = this.batch
    this.batch = undefined
    if (batch === undefined) return
    if (this.worker === undefined) {
      for (const pending of batch.pending) pending.resolve(pending.inline())
      return
    }
    // Referenced only while it owes answers: a process waiting for one does not exit under it.
    if (this.inFlight.length === 0) this.worker.ref()
    this.inFlight.push({ pending: batch.pending, postedAt: performance.now() })
    this.worker.postMessage({ keyIds: batch.keyIds, tokens: batch.tokens } satisfies ToWorker)
  }

  /**
   * How long the oldest batch the thread has not answered yet has waited, in ms; 0 when none is owed.
   * The queue the event loop's delay cannot show: the main thread stays responsive while checks pile
   * up here, so a load shedder that reads only the loop keeps accepting work that will be answered
   * seconds late (bench overload row: 76,266 of 177,432 answers after the 2 s deadline without it).
   */
  delayMs (): number {
    const oldest = this.inFlight[0]
    return oldest === undefined ? 0 : performance.now() - oldest.postedAt
  }

  private fail (error: Error): void {
    if (this.worker === undefined) return
    this.worker = undefined
    this.onError(error)
    for (const batch of this.inFlight.splice(0)) for (const pending of batch.pending) pending.resolve(pending.inline())
  }

  /** Stops the thread; checks asked for afterwards are done on the event loop. */
  async close (): Promise<void> {
    const worker = this.worker
    this.worker = undefined
    for (const batch of this.inFlight.splice(0)) for (const pending of batch.pending) pending.resolve(pending.inline())
    await worker?.terminate()
  }
}
