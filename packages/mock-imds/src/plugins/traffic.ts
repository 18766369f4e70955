import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { setTimeout as sleep } from 'node:timers/promises'
import { Counter } from 'prom-client'
import type { Endpoint, Fault, FaultBoard } from '../faults.ts'
import { sendJson } from '../routes/token-request.ts'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Marks a route as one of mock-imds's endpoints: counted, and open to injected faults. */
    mockImds?: { endpoint: Endpoint, version?: '1.0' | '2.0' }
  }
}

/** What tests read back through GET /admin/state: requests as they arrived, faulted or not. */
export interface RequestCounts {
  tokenRequests: number
  jwksRequests: number
  discoveryRequests: number
}

export interface TrafficOptions {
  faults: FaultBoard
  counts: RequestCounts
}

/**
 * Counts every request to the token endpoints and Entra documents (arrivals for the admin
 * state, answers by status for /metrics) and applies the faults tests have injected, before
 * the route sees the request: a real IMDS that is updating answers 404 whatever was asked.
 */
export const trafficPlugin = fp<TrafficOptions>(async (fastify, { faults, counts }) => {
  const tokenRequests = new Counter({
    name: 'mock_imds_token_requests_total',
    help: 'Token requests answered, by endpoint (imds: the VM endpoint; identity: the App Service / Container Apps endpoint) and HTTP status.',
    labelNames: ['endpoint', 'status'] as const,
    registers: [fastify.metrics]
  })
  const documentRequests = new Counter({
    name: 'mock_imds_jwks_requests_total',
    help: 'Entra discovery document and JWKS requests answered, by document, token version and HTTP status.',
    labelNames: ['document', 'version', 'status'] as const,
    registers: [fastify.metrics]
  })

  fastify.addHook('onRequest', async (request, reply) => {
    const route = request.routeOptions.config.mockImds
    if (!route) return
    if (route.endpoint === 'imds' || route.endpoint === 'identity') counts.tokenRequests++
    else if (route.endpoint === 'jwks') counts.jwksRequests++
    else counts.discoveryRequests++

    const fault = faults.take(route.endpoint)
    if (!fault) return
    request.log.info({ fault: { id: fault.id, mode: fault.mode, status: fault.status } }, 'injected fault')
    if (fault.latencyMs) await sleep(fault.latencyMs)
    if (fault.mode === 'hang') await faults.hang()
    if (fault.mode === 'status') return sendFaultStatus(request, reply, route.endpoint, fault)
    if (fault.mode === 'garbage') return reply.code(200).type('application/json; charset=utf-8').send(garbage[route.endpoint])
  })

  fastify.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.config.mockImds
    if (!route) return
    const status = String(reply.statusCode)
    if (route.endpoint === 'imds' || route.endpoint === 'identity') {
      tokenRequests.inc({ endpoint: route.endpoint, status })
    } else {
      documentRequests.inc({ document: route.endpoint, version: route.version ?? '1.0', status })
    }
  })

  // A hung request must not hold the server open: on close it goes on to its normal answer.
  fastify.addHook('preClose', async () => { faults.releaseHung() })
}, { name: 'mock-imds-traffic', dependencies: ['mock-imds-observability'], fastify: '5.x' })

/** Cut-off documents, as a broken proxy or a half-written cache would serve them. */
const garbage: Record<Endpoint, string> = {
  imds: '{"access_token":"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1',
  identity: '{"access_token":"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1',
  jwks: '{"keys":[{"kty":"RSA","use":"sig","kid":"',
  discovery: '{"token_endpoint":"https://login.microsoftonline.com/'
}

type Described = Record<number, [code: string, description: string]>

/** What the managed identity service says when it is updating, throttling or failing (IMDS's documented meanings). */
const tokenStatuses: Described = {
  404: ['not_found', 'IMDS is updating. Retry with exponential backoff.'],
  410: ['gone', 'IMDS is going through updates and will be available within 70 seconds.'],
  429: ['too_many_requests', 'Requests to the managed identity category are limited to 20 requests per second and 5 concurrent requests.'],
  500: ['unknown', 'Failed to retrieve token from the Active directory.'],
  503: ['service_unavailable', 'The service is temporarily unavailable.']
}

/** What a failing Entra document endpoint says, in OAuth's error codes. */
const documentStatuses: Described = {
  404: ['not_found', 'The requested document was not found.'],
  429: ['too_many_requests', 'Too many requests.'],
  500: ['server_error', 'An internal error occurred.'],
  503: ['temporarily_unavailable', 'The service is temporarily unavailable.']
}

function sendFaultStatus (request: FastifyRequest, reply: FastifyReply, endpoint: Endpoint, fault: Fault) {
  const status = fault.status ?? 500
  const known = endpoint === 'imds' || endpoint === 'identity' ? tokenStatuses : documentStatuses
  const [code, description] = known[status] ?? [status >= 500 ? 'server_error' : 'invalid_request', `HTTP ${status}`]
  if (fault.retryAfterSeconds !== undefined) reply.header('retry-after', String(fault.retryAfterSeconds))
  // Each endpoint fails in its own shape: App Service's {statusCode, message, correlationId},
  // IMDS's and Entra's {error, error_description}.
  const body = endpoint === 'identity'
    ? { statusCode: status, message: `${code}: ${description}`, correlationId: request.id }
    : { error: code, error_description: description }
  return sendJson(reply, status, body)
}
