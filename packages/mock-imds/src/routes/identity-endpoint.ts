import type { FastifyPluginAsync } from 'fastify'
import { timingSafeEqual } from 'node:crypto'
import { TokenRequestError, type Issuer } from '../issuer.ts'
import { selectorOf, sendJson, singleValued, type Query } from './token-request.ts'

const sameSecret = (given: string, expected: string) => {
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}

/**
 * The identity endpoint of Container Apps and App Service (IDENTITY_ENDPOINT + IDENTITY_HEADER),
 * api-version 2019-08-01, at /msi/token.
 */
export const identityEndpointRoutes: FastifyPluginAsync<{ issuer: Issuer, identityHeader: string }> = async (fastify, { issuer, identityHeader }) => {
  fastify.get<{ Querystring: Query }>('/msi/token', { config: { mockImds: { endpoint: 'identity' } } }, async (request, reply) => {
    try {
      const header = request.headers['x-identity-header']
      if (typeof header !== 'string' || !sameSecret(header, identityHeader)) {
        throw new TokenRequestError(401, 'invalid_request', 'The X-IDENTITY-HEADER header is missing or does not match')
      }
      const query = singleValued(request.query)
      if (query['api-version'] !== '2019-08-01') {
        throw new TokenRequestError(400, 'invalid_request', 'api-version must be 2019-08-01')
      }
      const resource = query.resource
      if (resource === undefined || resource === '') {
        throw new TokenRequestError(400, 'invalid_request', 'resource is required')
      }
      const identity = issuer.selectIdentity(selectorOf(query, {
        client_id: 'clientId', principal_id: 'principalId', object_id: 'principalId', mi_res_id: 'resourceId'
      }))
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
      if (!(error instanceof TokenRequestError)) throw error
      // App Service's shape: statusCode, message, correlationId (MSAL reads message).
      return sendJson(reply, error.status, {
        statusCode: error.status,
        message: `${error.code}: ${error.message}`,
        correlationId: request.id
      })
    }
  })

  fastify.route({
    method: ['POST', 'PUT', 'PATCH', 'DELETE'],
    url: '/msi/token',
    handler: async (request, reply) => sendJson(reply.header('allow', 'GET'), 405, {
      statusCode: 405, message: 'The requested method is not allowed. Only GET is supported.', correlationId: request.id
    })
  })
}
