import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import { REASONS, type Reason } from './token-validation.ts'

/** The result label of auth_requests_total. */
export type AuthResult = 'accepted' | 'rejected' | 'forbidden' | 'unavailable'

export interface AuthMetrics {
  /** One authentication decision: its outcome, its reason and how long it took. */
  record: (result: AuthResult, reason: Reason, seconds: number, fromCache: boolean | undefined) => void
  jwksFetch: (tenant: string, result: 'success' | 'failure') => void
  /** Read at scrape time: keys per tenant and when each tenant's keys were last fetched (ms). */
  watchKeys: (source: { tenants: string[], keyCount: (tenant: string) => number, lastSuccess: (tenant: string) => number | undefined, tenantCount: () => number }) => void
}

/** Which result each reason can come with, so that every valid series exists from the first scrape. */
const RESULTS_BY_REASON: Record<Reason, AuthResult> = {
  none: 'accepted',
  missing_role: 'forbidden',
  delegated_token: 'forbidden',
  keys_unavailable: 'unavailable',
  missing_token: 'rejected',
  malformed: 'rejected',
  unsupported_alg: 'rejected',
  unknown_key: 'rejected',
  bad_signature: 'rejected',
  expired: 'rejected',
  not_yet_valid: 'rejected',
  wrong_audience: 'rejected',
  wrong_issuer: 'rejected',
  wrong_tenant: 'rejected',
  wrong_version: 'rejected',
  missing_claim: 'rejected',
  invalid_claim: 'rejected'
}

/**
 * Registers the authentication metrics on `registry` (names and labels are a fixed contract: see the
 * README, "Metrics"). Labels carry only fixed values and configured tenant ids: never a token, subject
 * or client id. Throws prom-client's "already registered" error if the registry has them already.
 */
export function createAuthMetrics (registry: Registry): AuthMetrics {
  const registers = [registry]
  const requests = new Counter({
    name: 'auth_requests_total',
    help: 'Authentication decisions on protected routes, by result and reason.',
    labelNames: ['result', 'reason'] as const,
    registers
  })
  for (const reason of REASONS) requests.inc({ result: RESULTS_BY_REASON[reason], reason }, 0)

  const duration = new Histogram({
    name: 'auth_validation_duration_seconds',
    help: 'Time to authenticate and authorize one request, JWKS waits included.',
    // Microseconds on a cache hit, tens of microseconds for an RSA verification, seconds only while fetching keys.
    buckets: [0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.025, 0.1, 0.5, 2.5],
    registers
  })

  const cache = new Counter({
    name: 'auth_verified_token_cache_total',
    help: 'Signature verifications answered from the verified-token cache (hit) or computed (miss).',
    labelNames: ['result'] as const,
    registers
  })
  cache.inc({ result: 'hit' }, 0)
  cache.inc({ result: 'miss' }, 0)

  const refreshes = new Counter({
    name: 'jwks_refresh_total',
    help: 'Fetches of a tenant\'s OpenID configuration and JWKS, by result.',
    labelNames: ['tenant', 'result'] as const,
    registers
  })

  let keySource: Parameters<AuthMetrics['watchKeys']>[0] | undefined
  // eslint-disable-next-line no-new
  new Gauge({
    name: 'jwks_keys',
    help: 'Signing keys a tenant\'s tokens are currently verified with.',
    labelNames: ['tenant'] as const,
    registers,
    collect () {
      this.reset()
      for (const tenant of keySource?.tenants ?? []) this.set({ tenant }, keySource?.keyCount(tenant) ?? 0)
    }
  })
  // eslint-disable-next-line no-new
  new Gauge({
    name: 'jwks_tenants',
    help: 'Tenants whose signing keys are held: the configured ones, or in multi-tenant mode those loaded on use (at most maxTenants).',
    registers,
    collect () {
      this.set(keySource?.tenantCount() ?? 0)
    }
  })
  // eslint-disable-next-line no-new
  new Gauge({
    name: 'jwks_last_success_timestamp_seconds',
    help: 'When every JWKS of the tenant was last fetched successfully (the oldest of its token versions). Absent until then.',
    labelNames: ['tenant'] as const,
    registers,
    collect () {
      this.reset()
      for (const tenant of keySource?.tenants ?? []) {
        const last = keySource?.lastSuccess(tenant)
        if (last !== undefined) this.set({ tenant }, last / 1000)
      }
    }
  })

  // prom-client hashes a labels object on every inc; a child from labels() has its series picked once.
  // The label sets are fixed (RESULTS_BY_REASON, and 403 for any reason a route's roles turn into one).
  const requestSeries: Record<AuthResult, Partial<Record<Reason, { inc: () => void }>>> = { accepted: {}, rejected: {}, forbidden: {}, unavailable: {} }
  function seriesOf (result: AuthResult, reason: Reason) {
    const byReason = requestSeries[result]
    return byReason[reason] ?? (byReason[reason] = requests.labels(result, reason))
  }
  const cacheHits = cache.labels('hit')
  const cacheMisses = cache.labels('miss')

  return {
    record (result, reason, seconds, fromCache) {
      seriesOf(result, reason).inc()
      duration.observe(seconds)
      if (fromCache !== undefined) (fromCache ? cacheHits : cacheMisses).inc()
    },
    jwksFetch (tenant, result) {
      refreshes.inc({ tenant, result })
    },
    watchKeys (source) {
      keySource = source
      for (const tenant of source.tenants) {
        refreshes.inc({ tenant, result: 'success' }, 0)
        refreshes.inc({ tenant, result: 'failure' }, 0)
      }
    }
  }
}
