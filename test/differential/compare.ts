import type { Case, Mutation } from './tokens.ts'
import type { OracleAnswer } from './oracle.ts'

/** A decision both sides can be put in. */
export type Decision = 'accept' | 'reject' | 'forbid' | 'bad-request' | 'unavailable' | 'error'

export interface ApiAnswer {
  status: number
  /**
   * The api's reason code for a refusal (fastify-entra-auth's REASONS, the reason label of
   * auth_requests_total), read from its "request not authorized" log line of this very request.
   */
  reason?: string
  /** The fixed error_description the api sent (it tells apart the rules one reason code covers). */
  description?: string
  /** The body's error member (RFC 6750 code, or e.g. "overloaded" from load shedding). */
  error?: string
}

export const apiDecision = (answer: ApiAnswer): Decision =>
  answer.status === 200 ? 'accept' : answer.status === 401 ? 'reject' : answer.status === 403 ? 'forbid' : answer.status === 400 ? 'bad-request' : answer.status === 503 ? 'unavailable' : 'error'

export const oracleDecision = (answer: OracleAnswer): Decision =>
  answer.status === 200 ? 'accept' : answer.status === 403 ? 'forbid' : 'reject'

export interface Observation {
  testCase: Case
  api: ApiAnswer
  oracle: OracleAnswer
}

/**
 * The api refused for this reason code and, when descriptions are given (for the codes that cover several
 * rules: malformed, invalid_claim), with one of these error_descriptions.
 */
export const because = (o: Observation, reasons: readonly string[], descriptions?: readonly string[]) =>
  reasons.includes(o.api.reason ?? '') && (descriptions === undefined || descriptions.includes(o.api.description ?? ''))

/** Helpers for predicates over a generated case. */
export const has = (c: Case, test: (m: Mutation) => boolean) => c.spec.mutations.some(test)
export const claimOp = (c: Case, name: string, ops: Array<'absent' | 'set' | 'duplicate'> = ['absent', 'set', 'duplicate']) =>
  has(c, (m) => m.kind === 'claim' && m.name === name && ops.includes(m.op))
export const claimSet = (c: Case, name: string, labels: string[]) =>
  has(c, (m) => m.kind === 'claim' && m.name === name && m.op === 'set' && labels.includes(m.label))
export const headerOp = (c: Case, name: string, ops: Array<'absent' | 'set' | 'duplicate'> = ['absent', 'set', 'duplicate']) =>
  has(c, (m) => m.kind === 'header' && m.name === name && ops.includes(m.op))

/** The same mutation with its random numbers put in buckets, to group disagreements into classes. */
export function mutationClass (m: Mutation): string {
  if (m.kind === 'time') {
    const s = m.offsetSeconds
    const side = m.name === 'exp'
      ? (s < -300 ? 'past beyond skew' : s < 0 ? 'past within skew' : 'future')
      : m.name === 'nbf'
        ? (s > 300 ? 'future beyond skew' : s > 0 ? 'future within skew' : 'past')
        : (s > 0 ? 'future' : 'past')
    return `${m.name} ${side}${Number.isInteger(s) ? '' : ' (fractional)'}`
  }
  switch (m.kind) {
    case 'claim': return m.op === 'absent' ? `claim ${m.name} absent` : m.op === 'set' ? `claim ${m.name} = ${m.label}` : `claim ${m.name} duplicated as ${m.label}`
    case 'header': return m.op === 'absent' ? `header ${m.name} absent` : m.op === 'set' ? `header ${m.name} = ${m.label}` : `header ${m.name} duplicated as ${m.label}`
    case 'signer': return `signed by ${m.key}`
    case 'tenant': return `${m.part} of the ${m.tenant} tenant`
    case 'alg': return `alg ${m.alg}`
    case 'encoding': return `${m.segment} ${m.op}`
    case 'signature': return `signature ${m.op}`
    case 'payload-text': return `payload ${m.op}`
  }
}
