import underPressure, { TYPE_EVENT_LOOP_DELAY, TYPE_EVENT_LOOP_UTILIZATION, TYPE_HEALTH_CHECK } from '@fastify/under-pressure'
import type { FastifyServerFactory, FastifyServerOptions } from 'fastify'
import fp from 'fastify-plugin'
import { createServer, type IncomingMessage, type ServerOptions, type ServerResponse } from 'node:http'
import { Counter } from 'prom-client'

export interface OverloadOptions {
  /** Refuse while the event loop's mean delay over the last sample exceeds this, in ms; 0 turns the check off. */
  maxEventLoopDelayMs: number
  /** Refuse while the event loop's utilization over the last sample exceeds this (0-1); 0 turns the check off. */
  maxEventLoopUtilization: number
  /**
   * Refuse while the oldest signature check waiting on the worker thread has waited longer than this, in
   * ms, as `signatureCheckDelayMs` reads it at each sample; 0 (or no source) turns the check off.
   */
  maxSignatureCheckDelayMs: number
  /** The source of that delay: fastify-entra-auth's `entraAuth.signatureCheckDelayMs`, read at each sample. */
  signatureCheckDelayMs?: () => number
  /** How often every check is sampled, in ms: the shortest time a refusal or an acceptance phase lasts. */
  sampleIntervalMs: number
  /** The Retry-After of a refusal, in seconds. */
  retryAfterSeconds: number
  /** The gate in front of Fastify, when the app's server was made by its serverFactory (see OverloadGate). */
  gate?: OverloadGate
}

/** The labels of http_requests_shed_total{reason}. */
type ShedReason = 'event_loop_delay' | 'event_loop_utilization' | 'signature_check_delay'

const REFUSAL_BODY = JSON.stringify({ error: 'overloaded', message: 'the api is at capacity; retry after the Retry-After delay' })

/**
 * The api's HTTP server (Fastify's `serverFactory`) with a refusal in front of Fastify. Past capacity a
 * refusal must cost far less than the request it refuses, or refusing becomes the overload. Answered
 * through Fastify (request and reply objects, a child logger, the hooks, serialization, the HTTP
 * metrics), a 503 cost about what a whole bench row-1 request costs. At twice row 3's rate the api then
 * fell behind on its refusals alone: 44,286 of 197,968 answers came after the client's 2 s deadline
 * (bench/results of 14:23 UTC, before this gate). Here it is Node's parser and one writeHead, and at the
 * same rate none came late (bench/README.md, "What the committed run says").
 *
 * The decision stays @fastify/under-pressure's (`isUnderPressure()`, set by overloadPlugin through
 * `check`). The gate answers only routes it knows to be protected (static paths of routes with
 * config.auth); everything else, light-my-request's inject included, goes to Fastify, where the plugin's
 * pressureHandler refuses the same way. Gate refusals are counted in http_requests_shed_total but not in
 * http_request_duration_seconds, and are not logged.
 */
export class OverloadGate {
  /** Set by overloadPlugin: the reason to refuse this request now, or undefined to let it through. */
  check: ((method: string, url: string) => ShedReason | undefined) | undefined
  private headers: Record<string, string> = {}

  /** Pass as Fastify's `serverFactory`; builds the server as Fastify's own factory does (lib/server.js), plus the gate. */
  readonly serverFactory: FastifyServerFactory = (handler, options: FastifyServerOptions) => {
    const server = createServer((options as { http?: ServerOptions }).http ?? {}, (request: IncomingMessage, response: ServerResponse) => {
      const reason = this.check?.(request.method ?? '', request.url ?? '')
      if (reason === undefined) { handler(request, response); return }
      this.onRefusal?.(reason)
      response.writeHead(503, this.headers).end(REFUSAL_BODY)
    })
    if (options.keepAliveTimeout !== undefined) server.keepAliveTimeout = options.keepAliveTimeout
    if (options.requestTimeout !== undefined) server.requestTimeout = options.requestTimeout
    if (options.connectionTimeout !== undefined) server.setTimeout(options.connectionTimeout)
    if (options.maxRequestsPerSocket !== undefined && options.maxRequestsPerSocket > 0) server.maxRequestsPerSocket = options.maxRequestsPerSocket
    return server
  }

  /** Set by overloadPlugin: counts a gate refusal. */
  onRefusal: ((reason: ShedReason) => void) | undefined

  /** The refusal's headers, the same as the in-Fastify one's. */
  setRetryAfter (seconds: number): void {
    this.headers = {
      'content-type': 'application/json; charset=utf-8',
      'content-length': String(Buffer.byteLength(REFUSAL_BODY)),
      'retry-after': String(seconds),
      'cache-control': 'no-store'
    }
  }
}

/**
 * Past capacity the api refuses fast instead of queueing: while the event loop is saturated
 * (@fastify/under-pressure's delay and utilization checks, sampled every sampleIntervalMs) or signature
 * checks queue on the worker thread (under-pressure's healthCheck, fed by signatureCheckDelayMs), routes
 * that do work for a caller (those that declare config.auth) answer 503 with Retry-After at once,
 * before any token is looked at, so accepted requests keep a bounded latency and refused ones learn it
 * in microseconds. Health, readiness and metrics are never refused: a probe must not restart a replica
 * for being busy, and Prometheus must see the overload. Refusals are counted in
 * http_requests_shed_total{reason}. With `gate`, protected routes are refused before Fastify (see
 * OverloadGate).
 */
export const overloadPlugin = fp<OverloadOptions>(async (fastify, options) => {
  const shed = new Counter({
    name: 'http_requests_shed_total',
    help: 'Requests refused with 503 because the api was past capacity, by the check that refused them.',
    labelNames: ['reason'] as const,
    registers: [fastify.metrics]
  })
  const series = {
    event_loop_delay: shed.labels('event_loop_delay'),
    event_loop_utilization: shed.labels('event_loop_utilization'),
    signature_check_delay: shed.labels('signature_check_delay')
  } satisfies Record<ShedReason, unknown>
  for (const child of Object.values(series)) child.inc(0)
  const reasons: Record<string, ShedReason> = {
    [TYPE_EVENT_LOOP_DELAY]: 'event_loop_delay',
    [TYPE_EVENT_LOOP_UTILIZATION]: 'event_loop_utilization',
    [TYPE_HEALTH_CHECK]: 'signature_check_delay'
  }
  const retryAfter = String(options.retryAfterSeconds)

  // under-pressure's own hook for any further signal is its healthCheck: sampled on its own timer,
  // unhealthy (refusing) while it returns false.
  const signatureDelay = options.signatureCheckDelayMs
  const checkSignatures = options.maxSignatureCheckDelayMs > 0 && signatureDelay !== undefined
  let signaturesBacklogged = false
  await fastify.register(underPressure, {
    maxEventLoopDelay: options.maxEventLoopDelayMs,
    maxEventLoopUtilization: options.maxEventLoopUtilization,
    // Over the last sample, not since start (under-pressure's default, 'cumulative').
    eventLoopUtilizationMode: 'interval',
    sampleInterval: options.sampleIntervalMs,
    ...(checkSignatures
      ? {
          healthCheck: async () => {
            signaturesBacklogged = signatureDelay() > options.maxSignatureCheckDelayMs
            return !signaturesBacklogged
          },
          healthCheckInterval: options.sampleIntervalMs
        }
      : {}),
    // Refusals are answered here rather than through under-pressure's default, which throws an Error
    // into Fastify's error handler: a stack trace and an error log line per refused request, exactly
    // when the api has no time to spare.
    pressureHandler: (request, reply, type) => {
      if (request.routeOptions.config.auth === undefined) return undefined
      series[reasons[type] ?? 'event_loop_delay'].inc()
      // Sent here, so under-pressure calls next() on a reply already sent and Fastify stops there.
      reply.code(503).header('retry-after', retryAfter).header('cache-control', 'no-store').type('application/json; charset=utf-8').send(REFUSAL_BODY)
    }
  })

  const gate = options.gate
  if (gate === undefined) return
  // Static paths of protected routes, as "METHOD /path"; parametric ones are left to the Fastify path.
  const guarded = new Set<string>()
  fastify.addHook('onRoute', (route) => {
    if (route.config?.auth === undefined || /[:*(]/.test(route.url)) return
    for (const method of ([] as string[]).concat(route.method)) guarded.add(`${method} ${route.url}`)
  })
  const { maxEventLoopDelayMs, maxEventLoopUtilization } = options
  // under-pressure's order of checks, for the reason label only.
  const reasonNow = (): ShedReason => {
    const { eventLoopDelay, eventLoopUtilized } = fastify.memoryUsage()
    if (maxEventLoopDelayMs > 0 && eventLoopDelay > maxEventLoopDelayMs) return 'event_loop_delay'
    if (signaturesBacklogged) return 'signature_check_delay'
    return maxEventLoopUtilization > 0 && eventLoopUtilized > maxEventLoopUtilization ? 'event_loop_utilization' : 'event_loop_delay'
  }
  gate.setRetryAfter(options.retryAfterSeconds)
  gate.onRefusal = (reason) => { series[reason].inc() }
  gate.check = (method, url) => {
    if (!fastify.isUnderPressure()) return undefined
    const query = url.indexOf('?')
    return guarded.has(`${method} ${query < 0 ? url : url.slice(0, query)}`) ? reasonNow() : undefined
  }
  fastify.addHook('onClose', async () => { gate.check = undefined })
}, { name: 'overload', dependencies: ['metrics'] })
