import type { FastifyReply } from 'fastify'
import { TokenRequestError, type Selector } from '../issuer.ts'

/** A query string as Fastify parses it: a repeated name gives an array. */
export type Query = Record<string, string | string[] | undefined>

/** JSON exactly as Azure sends it, charset included; numbers are the caller's to stringify. */
export const sendJson = (reply: FastifyReply, status: number, body: unknown) =>
  reply.code(status).type('application/json; charset=utf-8').send(JSON.stringify(body))

/** IMDS's error shape: JSON with error and error_description, which MSAL turns into its message. */
export function sendTokenError (reply: FastifyReply, error: unknown) {
  if (!(error instanceof TokenRequestError)) throw error
  return sendJson(reply, error.status, { error: error.code, error_description: error.message })
}

/** IMDS refuses repeated query parameters rather than pick one of them. */
export function singleValued (query: Query): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {}
  for (const [name, value] of Object.entries(query)) {
    if (Array.isArray(value)) throw new TokenRequestError(400, 'invalid_request', `Duplicate query parameter '${name}'`)
    out[name] = value
  }
  return out
}

/** At most one selector per request; none means the system-assigned identity. */
export function selectorOf (query: Record<string, string | undefined>, names: Record<string, 'clientId' | 'principalId' | 'resourceId'>): Selector {
  const given = Object.entries(names).filter(([name]) => query[name] !== undefined && query[name] !== '')
  if (given.length > 1) {
    throw new TokenRequestError(400, 'invalid_request', `Only one of ${Object.keys(names).join(', ')} may be specified`)
  }
  const [entry] = given
  if (!entry) return { kind: 'system' }
  return { kind: entry[1], value: query[entry[0]] as string }
}
