import { randomUUID } from 'node:crypto'

/** Where a request landed: the two token endpoints and the two kinds of Entra document. */
export type Endpoint = 'imds' | 'identity' | 'jwks' | 'discovery'

/** What a fault names: one endpoint, or "token" for both token endpoints. */
export type FaultTarget = Endpoint | 'token'

export type FaultMode = 'status' | 'hang' | 'latency' | 'garbage'

export interface FaultSpec {
  target: FaultTarget
  mode: FaultMode
  status?: number
  retryAfterSeconds?: number
  latencyMs?: number
  /** How many matching requests it hits; absent: every one until cleared. */
  count?: number
}

export interface Fault extends FaultSpec {
  id: string
  /** Matching requests it will still hit; null: until cleared. */
  remaining: number | null
  /** Requests it has hit so far. */
  hits: number
}

const matches = (target: FaultTarget, endpoint: Endpoint) =>
  target === endpoint || (target === 'token' && (endpoint === 'imds' || endpoint === 'identity'))

/**
 * The misbehaviour tests have asked for, in the order they asked. A request takes the oldest
 * fault that matches its endpoint and uses up one of its count, so "two 500s, then a 429"
 * is two POSTs.
 */
export class FaultBoard {
  private faults: Fault[] = []
  /** Requests held by a "hang" fault, each waiting for its release. */
  private readonly hung = new Set<() => void>()

  add (spec: FaultSpec): Fault {
    const fault: Fault = { ...spec, id: randomUUID(), remaining: spec.count ?? null, hits: 0 }
    this.faults.push(fault)
    return fault
  }

  /** The fault this request suffers, if any, counting it as used. */
  take (endpoint: Endpoint): Fault | undefined {
    const fault = this.faults.find((f) => matches(f.target, endpoint))
    if (!fault) return undefined
    fault.hits++
    if (fault.remaining !== null && --fault.remaining === 0) {
      this.faults = this.faults.filter((f) => f !== fault)
    }
    return { ...fault }
  }

  list (): Fault[] {
    return this.faults.map((fault) => ({ ...fault }))
  }

  remove (id: string): boolean {
    const before = this.faults.length
    this.faults = this.faults.filter((f) => f.id !== id)
    return this.faults.length < before
  }

  /** Forgets every fault and lets every hung request go on to its normal answer. */
  clear (): void {
    this.faults = []
    this.releaseHung()
  }

  /** Resolves when the hang ends: on clear, or when the server closes. */
  hang (): Promise<void> {
    return new Promise((resolve) => { this.hung.add(resolve) })
  }

  get hungRequests (): number {
    return this.hung.size
  }

  releaseHung (): void {
    for (const release of this.hung) release()
    this.hung.clear()
  }
}
