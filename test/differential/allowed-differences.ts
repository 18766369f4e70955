import type { Case } from './tokens.ts'
import type { Decision } from './compare.ts'

/** A difference between the api and Microsoft's validator that the api makes on purpose. */
export interface AllowedDifference {
  id: string
  /** Why the api decides otherwise, with the rule's source. */
  reason: string
  /** True for the cases this difference explains, given both decisions. */
  applies: (testCase: Case, api: Decision, oracle: Decision) => boolean
}

export const ALLOWED_DIFFERENCES: AllowedDifference[] = []
