import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { TokenVersion } from '../keys.ts'
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

  /**
   * The tenant segment of the path: this tenant's id, or one of Entra's multi-tenant names, whose
   * documents carry the {tenantid} issuer template. Anything else: AADSTS90002, as from Entra.
   */
  const issuerTenant = (segment: string, version: TokenVersion): string | null => {
    if (segment.toLowerCase() === tenantId.toLowerCase()) return tenantId
    if (segment === 'common' || (segment === 'organizations' && version === '2.0')) return '{tenantid}'
    return null
  }
  const tenantNotFound = (reply: FastifyReply, tenant: string) => sendJson(reply, 400, {
    error: 'invalid_tenant',
    error_description: `AADSTS90002: Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`
  })

  type TenantRequest = FastifyRequest<{ Params: { tenant: string } }>
  const documents = [
    { version: '2.0', discoveryPath: '/:tenant/v2.0/.well-known/openid-configuration', jwksPath: '/:tenant/discovery/v2.0/keys' },
    { version: '1.0', discoveryPath: '/:tenant/.well-known/openid-configuration', jwksPath: '/:tenant/discovery/keys' }
  ] as const

  for (const { version, discoveryPath, jwksPath } of documents) {
    fastify.get(discoveryPath, { config: { mockImds: { endpoint: 'discovery', version } } }, async (request: TenantRequest, reply) => {
      const { tenant } = request.params
      const forIssuer = issuerTenant(tenant, version)
      if (forIssuer === null) return tenantNotFound(reply, tenant)
      return sendJson(reply, 200, discovery(base(request), tenant, forIssuer, version))
    })

    fastify.get(jwksPath, { config: { mockImds: { endpoint: 'jwks', version } } }, async (request: TenantRequest, reply) => {
      const { tenant } = request.params
      if (issuerTenant(tenant, version) === null) return tenantNotFound(reply, tenant)
      // Entra's v2 keys carry their issuer, with {tenantid} left for the validator to fill in; v1 keys do not.
      const keys = issuer.keys.map((key) => version === '2.0' ? { ...key.jwk, issuer: issuerFor('2.0', '{tenantid}') } : key.jwk)
      return sendJson(reply, 200, { keys })
    })
  }
}

/** The OpenID configuration as Entra serves it; its endpoints point back at this host. */
function discovery (host: string, tenant: string, issuerTenant: string, version: TokenVersion) {
  const v2 = version === '2.0'
  // A tenant's documents name it by its id; the multi-tenant ones keep the name they were asked by.
  const segment = issuerTenant === '{tenantid}' ? tenant : issuerTenant
  return {
    token_endpoint: `${host}/${segment}/oauth2/${v2 ? 'v2.0/' : ''}token`,
    token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
    jwks_uri: `${host}/${segment}/discovery/${v2 ? 'v2.0/' : ''}keys`,
    response_modes_supported: ['query', 'fragment', 'form_post'],
    subject_types_supported: ['pairwise'],
    id_token_signing_alg_values_supported: ['RS256'],
    response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
    scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
    issuer: issuerFor(version, issuerTenant),
    request_uri_parameter_supported: false,
    authorization_endpoint: `${host}/${segment}/oauth2/${v2 ? 'v2.0/' : ''}authorize`,
    cloud_instance_name: 'microsoftonline.com'
  }
}
