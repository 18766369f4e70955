import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { TokenRequestError, type Issuer } from '../issuer.ts'
import { selectorOf, sendJson, sendTokenError, singleValued, type Query } from './token-request.ts'

/** IMDS's own api-versions for the identity category start at 2018-02-01. */
const supportedApiVersion = (value: string) => /^\d{4}-\d{2}-\d{2}$/.test(value) && value >= '2018-02-01'

/**
 * The IMDS managed identity token endpoint of VMs and VM Scale Sets, as
 * GET /metadata/identity/oauth2/token (the SDK adds a trailing slash; the app's router ignores it).
 */
export const imdsRoutes: FastifyPluginAsync<{ issuer: Issuer }> = async (fastify, { issuer }) => {
  fastify.get<{ Querystring: Query }>('/metadata/identity/oauth2/token', { config: { mockImds: { endpoint: 'imds' } } }, async (request, reply) => {
    try {
      if (request.headers['x-forwarded-for'] !== undefined) {
        throw new TokenRequestError(400, 'invalid_request', 'Request with X-Forwarded-For header is not allowed')
      }
      if (request.headers.metadata !== 'true') {
        throw new TokenRequestError(400, 'invalid_request', 'Required metadata header not specified')
      }
      const query = singleValued(request.query)
      const apiVersion = query['api-version']
      if (apiVersion === undefined || !supportedApiVersion(apiVersion)) {
        throw new TokenRequestError(400, 'invalid_request', 'Bad request. api-version is invalid or was not specified in the request. For more information refer to aka.ms/azureimds')
      }
      const resource = query.resource
      if (resource === undefined || resource === '') {
        throw new TokenRequestError(400, 'invalid_request', 'Required query variable \'resource\' is missing')
      }
      const identity = issuer.selectIdentity(selectorOf(query, { client_id: 'clientId', object_id: 'principalId', msi_res_id: 'resourceId' }))
      const token = issuer.issue(identity, resource)
      const now = Math.floor(Date.now() / 1000)
      // Every value a string, as IMDS sends them; resource echoed exactly, or the SDK's cache never hits.
      return sendJson(reply, 200, {
        access_token: token.accessToken,
        client_id: identity.clientId,
        expires_in: String(token.expiresOn - now),
        expires_on: String(token.expiresOn),
        // The lifetime at issue, where expires_in is what is left of it.
        ext_expires_in: String(token.expiresOn - token.issuedAt),
        not_before: String(token.notBefore),
        resource,
        token_type: 'Bearer'
      })
    } catch (error) {
      return sendTokenError(reply, error)
    }
  })

  fastify.route({ method: ['POST', 'PUT', 'PATCH', 'DELETE'], url: '/metadata/identity/oauth2/token', handler: methodNotAllowed })
}

/** IMDS serves GET only. */
async function methodNotAllowed (_request: FastifyRequest, reply: FastifyReply) {
  return sendJson(reply.header('allow', 'GET'), 405, { error: 'invalid_request', error_description: 'The requested method is not allowed. Only GET is supported.' })
}
