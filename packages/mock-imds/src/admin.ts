import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { Type, type Static } from 'typebox'
import { Compile } from 'typebox/compile'
import type { FaultBoard, FaultSpec } from './faults.ts'
import type { Issuer } from './issuer.ts'
import type { RequestCounts } from './plugins/traffic.ts'

const FaultBody = Type.Object({
  target: Type.Enum(['token', 'imds', 'identity', 'jwks', 'discovery']),
  mode: Type.Enum(['status', 'hang', 'latency', 'garbage']),
  status: Type.Optional(Type.Integer({ minimum: 400, maximum: 599 })),
  retryAfterSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 86400 })),
  latencyMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 600_000 })),
  count: Type.Optional(Type.Integer({ minimum: 1 }))
}, { additionalProperties: false })

// Checked by hand rather than by the route schema, because no body at all is a valid request.
const RotateBody = Compile(Type.Object({
  keepPrevious: Type.Optional(Type.Boolean())
}, { additionalProperties: false }))

/** The fields of an Ajv error that the messages below use. */
interface AjvError {
  keyword: string
  instancePath: string
  params: Record<string, unknown>
  message?: string
}

/**
 * Ajv's own messages ("body must NOT have additional properties", "must be equal to one of the allowed
 * values") name neither the field nor the choices; a fault with a typo must say which field is wrong.
 */
function describeValidation (errors: readonly AjvError[], body: unknown): string {
  const first = errors[0]
  if (first === undefined) return 'the body is not valid'
  const field = first.instancePath.replace(/^\//, '').replaceAll('/', '.')
  const value = field === '' ? body : (body as Record<string, unknown> | undefined)?.[field]
  switch (first.keyword) {
    case 'additionalProperties':
      return `unknown field ${String(first.params.additionalProperty)}; known: ${Object.keys(FaultBody.properties).join(', ')}`
    case 'enum':
      return `${field} must be one of ${(first.params.allowedValues as unknown[]).map((allowed) => JSON.stringify(allowed)).join(', ')}, got ${JSON.stringify(value)}`
    case 'required':
      return `missing field ${String(first.params.missingProperty)}`
    case 'type':
      return field === '' ? 'the body must be a JSON object' : `${field} must be ${String(first.params.type)}, got ${JSON.stringify(value)}`
    default:
      return `${field === '' ? 'the body' : field} ${first.message ?? 'is not valid'}`
  }
}

export interface AdminState {
  issuer: Issuer
  faults: FaultBoard
  counts: RequestCounts
}

/**
 * The admin API: a Fastify instance of its own, so it only ever listens where
 * the admin host and port say and can never leak onto the public port.
 */
export function buildAdminApp ({ issuer, faults, counts }: AdminState, options: FastifyServerOptions = {}): FastifyInstance {
  // A typo in a fault ("stauts") must be an error, not a silently different fault.
  const admin = Fastify({ ajv: { customOptions: { removeAdditional: false } }, ...options })

  // An empty body with a JSON content type means "no options", as curl -X POST -H ... sends it.
  admin.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    if (body === '') return done(null, undefined)
    try {
      done(null, JSON.parse(body as string))
    } catch {
      done(Object.assign(new Error('the body is not valid JSON'), { statusCode: 400 }), undefined)
    }
  })

  admin.setErrorHandler((error: { statusCode?: number, message: string, validation?: readonly AjvError[] }, request, reply) => {
    const status = error.statusCode !== undefined && error.statusCode < 500 ? error.statusCode : 500
    if (status === 500) request.log.error({ err: error }, 'admin request failed')
    const message = error.validation === undefined ? error.message : describeValidation(error.validation, request.body)
    return reply.code(status).send({ error: status === 500 ? 'internal_error' : 'bad_request', message })
  })

  admin.post<{ Body: Static<typeof FaultBody> }>('/admin/faults', { schema: { body: FaultBody } }, async (request, reply) => {
    const spec = request.body as FaultSpec
    if (spec.mode === 'status' && spec.status === undefined) {
      return reply.code(400).send({ error: 'bad_request', message: 'mode "status" needs a status' })
    }
    if (spec.mode === 'latency' && spec.latencyMs === undefined) {
      return reply.code(400).send({ error: 'bad_request', message: 'mode "latency" needs latencyMs' })
    }
    if (spec.mode !== 'status' && spec.status !== undefined) {
      return reply.code(400).send({ error: 'bad_request', message: `status only goes with mode "status", not "${spec.mode}"` })
    }
    const fault = faults.add(spec)
    request.log.info({ fault }, 'fault added')
    return reply.code(201).send({ id: fault.id })
  })

  admin.delete('/admin/faults', async (_request, reply) => {
    faults.clear()
    return reply.code(204).send()
  })

  admin.delete<{ Params: { id: string } }>('/admin/faults/:id', async (request, reply) => {
    if (!faults.remove(request.params.id)) return reply.code(404).send({ error: 'not_found', message: `no fault ${request.params.id}` })
    return reply.code(204).send()
  })

  admin.post<{ Body: unknown }>('/admin/keys/rotate', async (request, reply) => {
    const body = request.body ?? {}
    if (!RotateBody.Check(body)) {
      const unknown = typeof body === 'object' && body !== null && !Array.isArray(body) ? Object.keys(body).filter((name) => name !== 'keepPrevious') : []
      const message = unknown.length > 0
        ? `unknown field ${unknown.join(', ')}; known: keepPrevious`
        : typeof body === 'object' && body !== null && !Array.isArray(body)
          ? `keepPrevious must be boolean, got ${JSON.stringify((body as { keepPrevious?: unknown }).keepPrevious)}`
          : 'the body may only be {"keepPrevious": boolean}'
      return reply.code(400).send({ error: 'bad_request', message })
    }
    const result = issuer.rotateKeys(body.keepPrevious ?? true)
    request.log.info(result, 'signing key rotated')
    return result
  })

  admin.delete<{ Params: { kid: string } }>('/admin/keys/:kid', async (request, reply) => {
    if (!issuer.unpublishKey(request.params.kid)) return reply.code(404).send({ error: 'not_found', message: `no key ${request.params.kid} in the JWKS` })
    return reply.code(204).send()
  })

  admin.get('/admin/state', async () => ({
    faults: faults.list(),
    kids: issuer.keys.map((key) => key.kid),
    signingKid: issuer.signingKey.kid,
    hungRequests: faults.hungRequests,
    ...counts
  }))

  admin.post('/admin/tokens/cache/clear', async (_request, reply) => {
    issuer.clearTokenCache()
    return reply.code(204).send()
  })

  return admin
}
