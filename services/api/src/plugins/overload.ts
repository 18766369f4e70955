import underPressure from '@fastify/under-pressure'
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
  /**
   * Whether a request's token needs no signature check (fastify-entra-auth's `entraAuth.holdsToken`, given
   * the raw headers): while only the signature-check delay is over its limit, such requests are served.
   */
  holdsToken?: (rawHeaders: string[]) => boolean
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

/** The refusal's headers, one object for both ways of answering it (the gate's writeHead and Fastify's reply). */
function refusalHeaders (retryAfterSeconds: number): Record<string, string> {
  return {
    'retry-after': String(retryAfterSeconds),
    'cache-control': 'no-store',
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(REFUSAL_BODY))
  }
}

/**
 * The api's HTTP server (Fastify's `serverFactory`) with a refusal in front of Fastify. Past capacity a
 * refusal must cost as little as it can, or refusing becomes the overload. Answered through Fastify
 * (request and reply objects, a child logger, the hooks, serialization, the HTTP metrics) a 503 cost
 * 43 µs of the api's CPU at 25,000 req/s, more than a whole bench row-1 request (33 µs); here it is
 * Node's parser and one writeHead, 36 µs (one throwaway run each, bench/README.md). At twice row 3's rate
 * the committed run of 14:23 UTC, before this gate, had 44,286 of 197,968 answers after the client's
 * 2 s deadline; with it, none at that rate in a run against one api.
 *
 * The decision stays @fastify/under-pressure's (`isUnderPressure()`, set by overloadPlugin through
 * `check`). The gate answers only routes it knows to be protected (static paths of routes with
 * config.auth); everything else, light-my-request's inject included, goes to Fastify, where the plugin's
 * pressureHandler refuses the same way. Gate refusals are counted in http_requests_shed_total but not in
 * http_request_duration_seconds, and are not logged.
 */
export class OverloadGate {
  /** Set by overloadPlugin: the reason to refuse this request now, or undefined to let it through. */
  check: ((request: IncomingMessage) => ShedReason | undefined) | undefined
  /** Set by overloadPlugin: the refusal's headers (refusalHeaders). */
  headers: Record<string, string> = {}

  /** Pass as Fastify's `serverFactory`; builds the server as Fastify's own factory does (lib/server.js), plus the gate. */
  readonly serverFactory: FastifyServerFactory = (handler, options: FastifyServerOptions) => {
    const { http, https, http2 } = options as { http?: ServerOptions, https?: unknown, http2?: boolean }
    // TLS ends at the ingress (Container Apps) or the load balancer (VM Scale Sets); failing here beats a
    // plain-HTTP server that Fastify would announce as https.
    if (https !== undefined || http2 === true) throw new TypeError('OverloadGate.serverFactory builds an HTTP/1.1 server: the https and http2 options are not supported')
    const server = createServer(http ?? {}, (request: IncomingMessage, response: ServerResponse) => {
      const reason = this.check?.(request)
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
}

/**
 * Past capacity the api refuses fast instead of queueing: while the event loop is saturated
 * (@fastify/under-pressure's delay and utilization checks, sampled every sampleIntervalMs) or signature
 * checks queue on the worker thread (under-pressure's healthCheck, fed by signatureCheckDelayMs), routes
 * that do work for a caller (those that declare config.auth) answer 503 with Retry-After at once,
 * before any token is verified, so accepted requests keep a bounded latency and refused ones learn it
 * in microseconds (while only signature checks queue, callers whose token is held are still served:
 * reasonFor). Health, readiness and metrics are never refused: a probe must not restart a replica
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
  const headers = refusalHeaders(options.retryAfterSeconds)
  const { maxEventLoopDelayMs, maxEventLoopUtilization, maxSignatureCheckDelayMs } = options

  // under-pressure's hook for any further signal is its healthCheck: sampled on its own timer, the api
  // under pressure while it returns false. Which requests that refuses is decided below (reasonFor).
  const signatureDelay = options.signatureCheckDelayMs
  const checkSignatures = maxSignatureCheckDelayMs > 0 && signatureDelay !== undefined
  let signaturesBacklogged = false
  let reportedFailure = false
  await fastify.register(underPressure, {
    maxEventLoopDelay: maxEventLoopDelayMs,
    maxEventLoopUtilization,
    // Over the last sample, not since start (under-pressure's default, 'cumulative').
    eventLoopUtilizationMode: 'interval',
    sampleInterval: options.sampleIntervalMs,
    ...(checkSignatures
      ? {
          healthCheck: async () => {
            try {
              signaturesBacklogged = signatureDelay() > maxSignatureCheckDelayMs
            } catch (error) {
              // Fails open: a broken signal must not refuse every request.
              signaturesBacklogged = false
              if (!reportedFailure) fastify.log.error({ err: error }, 'the signature-check delay could not be read: that shedding check is off')
              reportedFailure = true
            }
            return !signaturesBacklogged
          },
          healthCheckInterval: options.sampleIntervalMs
        }
      : {}),
    // Refusals are answered here rather than through under-pressure's default, which throws an Error
    // into Fastify's error handler: a stack trace and an error log line per refused request, exactly
    // when the api has no time to spare.
    pressureHandler: (request, reply) => {
      if (request.routeOptions.config.auth === undefined) return undefined
      const reason = reasonFor(request.raw.rawHeaders)
      if (reason === undefined) return undefined
      series[reason].inc()
      // Sent here, so under-pressure calls next() on a reply already sent and Fastify stops there.
      reply.code(503).headers(headers).send(REFUSAL_BODY)
    }
  })

  /**
   * Why a protected request is refused now, or undefined to serve it; read only while under-pressure
   * says the api is past capacity. The event loop's checks refuse everything. The signature-check delay
   * refuses only what would queue on the worker: a caller whose token is held costs no signature check,
   * and refusing it would let a flood of forged signatures turn away every known caller.
   */
  function reasonFor (rawHeaders: string[]): ShedReason | undefined {
    const { eventLoopDelay, eventLoopUtilized } = fastify.memoryUsage()
    if (maxEventLoopDelayMs > 0 && eventLoopDelay > maxEventLoopDelayMs) return 'event_loop_delay'
    if (maxEventLoopUtilization > 0 && eventLoopUtilized > maxEventLoopUtilization) return 'event_loop_utilization'
    if (signaturesBacklogged && options.holdsToken?.(rawHeaders) !== true) return 'signature_check_delay'
    return undefined
  }

  const gate = options.gate
  if (gate === undefined) return
  // Static paths of protected routes, as "METHOD /path"; parametric ones are left to the Fastify path.
  const guarded = new Set<string>()
  fastify.addHook('onRoute', (route) => {
    if (route.config?.auth === undefined || /[:*(]/.test(route.url)) return
    for (const method of ([] as string[]).concat(route.method)) guarded.add(`${method} ${route.url}`)
  })
  gate.headers = headers
  gate.onRefusal = (reason) => { series[reason].inc() }
  gate.check = (request) => {
    if (!fastify.isUnderPressure()) return undefined
    const url = request.url ?? ''
    const query = url.indexOf('?')
    return guarded.has(`${request.method ?? ''} ${query < 0 ? url : url.slice(0, query)}`) ? reasonFor(request.rawHeaders) : undefined
  }
  // preClose, not onClose: Fastify answers with Connection: close once it is closing, and its server
  // waits for every connection to end before onClose. A gate still refusing (with keep-alive) would
  // hold a draining api open until close-with-grace's deadline cut its accepted requests off.
  fastify.addHook('preClose', (done) => { gate.check = undefined; done() })
}, { name: 'overload', dependencies: ['metrics'] })
