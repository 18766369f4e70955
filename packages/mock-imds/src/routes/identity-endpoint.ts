import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { timingSafeEqual } from 'node:crypto'
import { IdentitySelectionError, TokenRequestError, type Issuer } from '../issuer.ts'
import { unableToLoadIdentity, type PlatformProfile } from '../profiles.ts'
import { selectorOf, sendJson, singleValued, type Query } from './token-request.ts'

const sameSecret = (given: string, expected: string) => {
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}

export interface IdentityEndpointOptions {
  issuer: Issuer
  identityHeader: string
  profile: PlatformProfile
}

/** App Service's and Container Apps' error shape (MSAL reads `message`); the id also goes out as X-CORRELATION-ID, as both send it. */
const sendError = (request: FastifyRequest, reply: FastifyReply, status: number, message: string) =>
  sendJson(reply, status, { statusCode: status, message, correlationId: request.id })

/**
 * The identity endpoint of App Service, Functions and Container Apps (IDENTITY_ENDPOINT +
 * IDENTITY_HEADER), api-version 2019-08-01, at /msi/token, answering as `profile` says.
 */
export const identityEndpointRoutes: FastifyPluginAsync<IdentityEndpointOptions> = async (fastify, { issuer, identityHeader, profile }) => {
  fastify.addHook('onRequest', async (request, reply) => { reply.header('x-correlation-id', request.id) })

  fastify.get<{ Querystring: Query }>('/msi/token', { config: { mockImds: { endpoint: 'identity' } } }, async (request, reply) => {
    const header = request.headers['x-identity-header']
    if (typeof header !== 'string' || !sameSecret(header, identityHeader)) {
      // Container Apps: 403, Content-Length 0 (see profiles.ts for the sources).
      if (profile.identityHeaderRejection === 'empty-403') return reply.code(403).send()
      return sendError(request, reply, 401, 'invalid_request: The X-IDENTITY-HEADER header is missing or does not match')
    }
    try {
      const query = singleValued(request.query)
      const apiVersion = query['api-version']
      if (apiVersion !== '2019-08-01') {
        if (profile.unsupportedApiVersion === 'aspnet' && apiVersion !== undefined && apiVersion !== '') {
          return sendJson(reply, 400, {
            error: {
              code: 'UnsupportedApiVersion',
              message: `The HTTP resource that matches the request URI '${request.protocol}://${request.host}/msi/token' does not support the API version '${apiVersion}'.`
            }
          })
        }
        throw new TokenRequestError(400, 'invalid_request', 'api-version must be 2019-08-01')
      }
      const resource = query.resource
      if (resource === undefined || resource === '') {
        throw new TokenRequestError(400, 'invalid_request', 'resource is required')
      }
      const identity = issuer.selectIdentity(selectorOf(query, {
        client_id: 'clientId', principal_id: 'principalId', object_id: 'principalId', mi_res_id: 'resourceId'
      }), profile)
      const token = issuer.issue(identity, resource)
      return sendJson(reply, 200, {
        access_token: token.accessToken,
        expires_on: String(token.expiresOn),
        not_before: String(token.notBefore),
        resource,
        token_type: 'Bearer',
        client_id: identity.clientId
      })
    } catch (error) {
      // Whatever identity it cannot pick, the platform says the same thing (profiles.ts).
      if (error instanceof IdentitySelectionError) return sendError(request, reply, 400, unableToLoadIdentity)
      if (!(error instanceof TokenRequestError)) throw error
      return sendError(request, reply, error.status, `${error.code}: ${error.message}`)
    }
  })

  fastify.route({
    method: ['POST', 'PUT', 'PATCH', 'DELETE'],
    url: '/msi/token',
    handler: async (request, reply) => sendError(request, reply.header('allow', 'GET'), 405, 'The requested method is not allowed. Only GET is supported.')
  })
}
