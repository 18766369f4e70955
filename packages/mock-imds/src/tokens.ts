import { randomBytes } from 'node:crypto'
import type { SigningKey, TokenVersion } from './keys.ts'
import type { ApplicationModel, ManagedIdentityModel, TenantModel } from './tenant.ts'

export const issuerFor = (version: TokenVersion, tenantId: string): string =>
  version === '2.0'
    ? `https://login.microsoftonline.com/${tenantId}/v2.0`
    : `https://sts.windows.net/${tenantId}/`

/** Entra: null or 1 means v1.0 tokens, 2 means v2.0, whatever endpoint the client used. */
export const tokenVersionOf = (app: ApplicationModel): TokenVersion =>
  app.api?.requestedAccessTokenVersion === 2 ? '2.0' : '1.0'

/** The values of the app roles assigned to this identity on this application. */
export function assignedRoles (tenant: TenantModel, identity: ManagedIdentityModel, app: ApplicationModel): string[] {
  const roleIds = new Set(tenant.appRoleAssignments
    .filter((a) => a.principalId === identity.principalId && a.resourceId === app.servicePrincipal.id)
    .map((a) => a.appRoleId))
  return app.appRoles
    .filter((role) => roleIds.has(role.id) && role.isEnabled !== false && role.allowedMemberTypes.includes('Application'))
    .map((role) => role.value)
}

export interface IssuedToken {
  accessToken: string
  issuedAt: number
  notBefore: number
  expiresOn: number
  claims: Record<string, unknown>
}

export interface MintRequest {
  tenant: TenantModel
  identity: ManagedIdentityModel
  app: ApplicationModel
  /** The resource exactly as asked: a v1 token's aud. */
  resource: string
  key: SigningKey
  lifetimeSeconds: number
  now?: number
}

/**
 * A managed identity's app-only access token, claim for claim as Entra issues it
 * (see shared/research/imds-and-azure-identity.md §5): nbf and iat five minutes back,
 * roles only when assigned, oid = sub = the identity's service principal.
 */
export function mintToken (request: MintRequest): IssuedToken {
  const { tenant, identity, app, resource, key, lifetimeSeconds } = request
  const now = request.now ?? Math.floor(Date.now() / 1000)
  const version = tokenVersionOf(app)
  const issuer = issuerFor(version, tenant.tenantId)
  const notBefore = now - 300
  const expiresOn = now + lifetimeSeconds
  const roles = assignedRoles(tenant, identity, app)
  const claims: Record<string, unknown> = {
    aud: version === '2.0' ? app.appId : resource,
    iss: issuer,
    iat: notBefore,
    nbf: notBefore,
    exp: expiresOn,
    aio: opaque(40),
    ...(version === '2.0'
      ? { azp: identity.clientId, azpacr: '2' }
      : { appid: identity.clientId, appidacr: '2', idp: issuer }),
    idtyp: 'app',
    oid: identity.principalId,
    rh: `0.${opaque(48)}.`,
    ...(roles.length > 0 ? { roles } : {}),
    sub: identity.principalId,
    tid: tenant.tenantId,
    uti: opaque(16),
    ver: version,
    xms_mirid: identity.resourceId
  }
  return { accessToken: key.sign(claims, version), issuedAt: now, notBefore, expiresOn, claims }
}

const opaque = (bytes: number): string => randomBytes(bytes).toString('base64url')
