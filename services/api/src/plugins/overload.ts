import underPressure, { TYPE_EVENT_LOOP_DELAY, TYPE_EVENT_LOOP_UTILIZATION } from '@fastify/under-pressure'
import fp from 'fastify-plugin'
import { Counter } from 'prom-client'

export interface OverloadOptions {
  /** Refuse while the event loop's mean delay over the last sample exceeds this, in ms; 0 turns the check off. */
  maxEventLoopDelayMs: number
  /** Refuse while the event loop's utilization over the last sample exceeds this (0-1); 0 turns the check off. */
  maxEventLoopUtilization: number
  /** How often both are sampled, in ms: the shortest time a refusal or an acceptance phase lasts. */
  sampleIntervalMs: number
  /** The Retry-After of a refusal, in seconds. */
  retryAfterSeconds: number
}

/**
 * Past capacity the api refuses fast instead of queueing: while the event loop is saturated
 * (@fastify/under-pressure's delay and utilization checks, sampled every sampleIntervalMs), routes
 * that do work for a caller (those that declare config.auth) answer 503 with Retry-After at once,
 * before any token is looked at, so accepted requests keep a bounded latency and refused ones learn
 * it in microseconds. Health, readiness and metrics are never refused: a probe must not restart a
 * replica for being busy, and Prometheus must see the overload. Refusals are counted in
 * http_requests_shed_total{reason}.
 */
export const overloadPlugin = fp<OverloadOptions>(async (fastify, options) => {
  const shed = new Counter({
    name: 'http_requests_shed_total',
    help: 'Requests refused with 503 because the event loop was saturated, by the check that refused them.',
    labelNames: ['reason'] as const,
    registers: [fastify.metrics]
  })
  const reasons = { [TYPE_EVENT_LOOP_DELAY]: 'event_loop_delay', [TYPE_EVENT_LOOP_UTILIZATION]: 'event_loop_utilization' } as Record<string, string>
  for (const reason of Object.values(reasons)) shed.inc({ reason }, 0)
  const retryAfter = String(options.retryAfterSeconds)
  await fastify.register(underPressure, {
    maxEventLoopDelay: options.maxEventLoopDelayMs,
    maxEventLoopUtilization: options.maxEventLoopUtilization,
    // Over the last sample, not since start (under-pressure's default, 'cumulative').
    eventLoopUtilizationMode: 'interval',
    sampleInterval: options.sampleIntervalMs,
    // Refusals are answered here rather than through under-pressure's default, which throws an Error
    // into Fastify's error handler: a stack trace and an error log line per refused request, exactly
    // when the api has no time to spare.
    pressureHandler: (request, reply, type) => {
      if (request.routeOptions.config.auth === undefined) return undefined
      shed.inc({ reason: reasons[type] ?? 'other' })
      // Sent here, so under-pressure calls next() on a reply already sent and Fastify stops there.
      reply.code(503).header('retry-after', retryAfter).header('cache-control', 'no-store')
        .send({ error: 'overloaded', message: 'the api is at capacity; retry after the Retry-After delay' })
    }
  })
}, { name: 'overload', dependencies: ['metrics'] })
