import type { FastifyReply } from 'fastify'
import { TokenRequestError } from '../issuer.ts'

/** IMDS's error shape: JSON with error and error_description, which MSAL turns into its message. */
export function sendTokenError (reply: FastifyReply, error: unknown) {
  if (!(error instanceof TokenRequestError)) throw error
  return reply.code(error.status).type('application/json; charset=utf-8')
    .send(JSON.stringify({ error: error.code, error_description: error.message }))
}
