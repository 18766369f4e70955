import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { Issuer } from '../issuer.ts'
import { issuerFor } from '../tokens.ts'
import { sendJson } from './token-request.ts'

/**
 * Entra's discovery documents and JWKS at the paths Entra serves them, so that a validator
 * configured with this host as its authority works as it would against login.microsoftonline.com.
 */
export const entraRoutes: FastifyPluginAsync<{ issuer: Issuer }> = async (fastify, { issuer }) => {
  const tenantId = issuer.tenant.tenantId
  const base = (request: FastifyRequest) => `${request.protocol}://${request.host}`

  const knownTenant = (tenant: string) => tenant.toLowerCase() === tenantId.toLowerCase()
  const tenantNotFound = (tenant: string) => ({
    error: 'invalid_tenant',
    error_description: `AADSTS90002: Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`
  })

  fastify.get<{ Params: { tenant: string } }>('/:tenant/v2.0/.well-known/openid-configuration', { config: { mockImds: { endpoint: 'discovery', version: '2.0' } } }, async (request, reply) => {
    if (!knownTenant(request.params.tenant)) return sendJson(reply, 400, tenantNotFound(request.params.tenant))
    const host = base(request)
    return sendJson(reply, 200, discovery(host, tenantId, '2.0'))
  })

  fastify.get<{ Params: { tenant: string } }>('/:tenant/.well-known/openid-configuration', { config: { mockImds: { endpoint: 'discovery', version: '1.0' } } }, async (request, reply) => {
    if (!knownTenant(request.params.tenant)) return sendJson(reply, 400, tenantNotFound(request.params.tenant))
    return sendJson(reply, 200, discovery(base(request), tenantId, '1.0'))
  })

  fastify.get<{ Params: { tenant: string } }>('/:tenant/discovery/v2.0/keys', { config: { mockImds: { endpoint: 'jwks', version: '2.0' } } }, async (request, reply) => {
    if (!knownTenant(request.params.tenant)) return sendJson(reply, 400, tenantNotFound(request.params.tenant))
    // Entra's v2 keys carry their issuer, with {tenantid} left for the validator to fill in.
    return sendJson(reply, 200, {
      keys: issuer.keys.map((key) => ({ ...key.jwk, issuer: 'https://login.microsoftonline.com/{tenantid}/v2.0' }))
    })
  })

  fastify.get<{ Params: { tenant: string } }>('/:tenant/discovery/keys', { config: { mockImds: { endpoint: 'jwks', version: '1.0' } } }, async (request, reply) => {
    if (!knownTenant(request.params.tenant)) return sendJson(reply, 400, tenantNotFound(request.params.tenant))
    return sendJson(reply, 200, { keys: issuer.keys.map((key) => key.jwk) })
  })
}

function discovery (host: string, tenantId: string, version: '1.0' | '2.0') {
  const v2 = version === '2.0'
  return {
    token_endpoint: `${host}/${tenantId}/oauth2/${v2 ? 'v2.0/' : ''}token`,
    token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
    jwks_uri: `${host}/${tenantId}/discovery/${v2 ? 'v2.0/' : ''}keys`,
    response_modes_supported: ['query', 'fragment', 'form_post'],
    subject_types_supported: ['pairwise'],
    id_token_signing_alg_values_supported: ['RS256'],
    response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
    scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
    issuer: issuerFor(version, tenantId),
    request_uri_parameter_supported: false,
    authorization_endpoint: `${host}/${tenantId}/oauth2/${v2 ? 'v2.0/' : ''}authorize`,
    tenant_region_scope: 'EU',
    cloud_instance_name: 'microsoftonline.com'
  }
}
