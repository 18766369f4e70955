import { randomUUID } from 'node:crypto'
import { createSigningKey, type SigningKey } from './keys.ts'
import { mintToken, type IssuedToken } from './tokens.ts'
import type { ApplicationModel, ManagedIdentityModel, TenantModel } from './tenant.ts'

/** An error in the shape the identity endpoints answer with: HTTP status, OAuth error code, description. */
export class TokenRequestError extends Error {
  readonly status: number
  readonly code: string
  constructor (status: number, code: string, description: string) {
    super(description)
    this.status = status
    this.code = code
  }
}

/**
 * An error Entra raised behind the token endpoint: its AADSTS text plus the trailer Entra puts
 * on every error description.
 */
export function entraError (status: number, code: string, text: string): TokenRequestError {
  const timestamp = new Date().toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z')
  return new TokenRequestError(status, code,
    `${text}\r\nTrace ID: ${randomUUID()}\r\nCorrelation ID: ${randomUUID()}\r\nTimestamp: ${timestamp}`)
}

/** No identity fits the request: 400 invalid_request, in IMDS's words (shared/research/imds-and-azure-identity.md §1.3). */
export class IdentitySelectionError extends TokenRequestError {
  readonly reason: 'not_found' | 'several_user_assigned'
  constructor (reason: 'not_found' | 'several_user_assigned', description: string) {
    super(400, 'invalid_request', description)
    this.reason = reason
  }
}

export type Selector =
  | { kind: 'system' }
  | { kind: 'clientId' | 'principalId' | 'resourceId', value: string }

const lower = (value: string) => value.toLowerCase()

/**
 * What sits behind IMDS and the identity endpoint: picks the identity, finds the resource's app
 * registration, mints tokens and caches them per identity and resource as the real service does.
 */
export class Issuer {
  readonly tenant: TenantModel
  readonly lifetimeSeconds: number
  /** The key that signs new tokens. */
  signingKey: SigningKey
  /** The keys the JWKS publishes, newest first. Normally the signing key is among them. */
  keys: SigningKey[]
  private readonly cache = new Map<string, IssuedToken>()

  constructor (tenant: TenantModel, options: { lifetimeSeconds: number }) {
    this.tenant = tenant
    this.lifetimeSeconds = options.lifetimeSeconds
    this.signingKey = createSigningKey()
    this.keys = [this.signingKey]
  }

  /**
   * A new signing key, as in an Entra key roll. The old keys stay published unless told
   * otherwise, so tokens already out there keep validating; cached tokens stay cached, as the
   * managed identity service's do (signed by the old key).
   */
  rotateKeys (keepPrevious = true): { kid: string, previousKids: string[] } {
    const previousKids = this.keys.map((key) => key.kid)
    this.signingKey = createSigningKey()
    this.keys = keepPrevious ? [this.signingKey, ...this.keys] : [this.signingKey]
    return { kid: this.signingKey.kid, previousKids }
  }

  /**
   * Takes a key out of the JWKS. Removing the signing key is allowed on purpose: it keeps
   * signing, which is how a test gets validly signed tokens with a kid the JWKS does not know.
   */
  unpublishKey (kid: string): boolean {
    const before = this.keys.length
    this.keys = this.keys.filter((key) => key.kid !== kid)
    return this.keys.length < before
  }

  clearTokenCache (): void {
    this.cache.clear()
  }

  /**
   * The identity a request means. With no selector: the system-assigned identity, else (where the
   * platform does so) the only user-assigned one.
   * @throws IdentitySelectionError in IMDS's words; the identity endpoint rewords it.
   */
  selectIdentity (selector: Selector, { fallsBackToLoneUserAssigned = true } = {}): ManagedIdentityModel {
    const identities = this.tenant.managedIdentities
    if (selector.kind === 'system') {
      const system = identities.find((mi) => mi.type === 'SystemAssigned')
      if (system) return system
      const userAssigned = identities.filter((mi) => mi.type === 'UserAssigned')
      if (userAssigned.length === 1 && fallsBackToLoneUserAssigned) return userAssigned[0] as ManagedIdentityModel
      if (userAssigned.length > 1) {
        throw new IdentitySelectionError('several_user_assigned', 'Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request')
      }
      throw new IdentitySelectionError('not_found', 'Identity not found')
    }
    const wanted = lower(selector.value)
    const found = identities.find((mi) => lower(mi[selector.kind]) === wanted)
    if (!found) throw new IdentitySelectionError('not_found', 'Identity not found')
    return found
  }

  /** The app registration a resource names: one of its identifierUris, or its appId. */
  findApplication (resource: string): ApplicationModel {
    const app = this.tenant.applications.find((a) =>
      a.appId.toLowerCase() === resource.toLowerCase() || a.identifierUris.includes(resource))
    if (!app) {
      throw entraError(400, 'invalid_resource',
        `AADSTS500011: The resource principal named ${resource} was not found in the tenant named ${this.tenant.tenantId}. ` +
        'This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. ' +
        'You might have sent your authentication request to the wrong tenant.')
    }
    return app
  }

  issue (identity: ManagedIdentityModel, resource: string): IssuedToken {
    const app = this.findApplication(resource)
    const cacheKey = `${identity.principalId}\n${resource}`
    const now = Math.floor(Date.now() / 1000)
    const cached = this.cache.get(cacheKey)
    // The managed identity service hands out the same token until shortly before it expires.
    if (cached && cached.expiresOn - now > Math.min(300, this.lifetimeSeconds / 4)) return cached
    if (app.servicePrincipal.appRoleAssignmentRequired === true &&
        !this.tenant.appRoleAssignments.some((a) => a.principalId === identity.principalId && a.resourceId === app.servicePrincipal.id)) {
      throw entraError(400, 'invalid_grant',
        `AADSTS501051: Application '${identity.clientId}' is not assigned to a role for the application '${resource}'(${app.displayName}).`)
    }
    const token = mintToken({ tenant: this.tenant, identity, app, resource, key: this.signingKey, lifetimeSeconds: this.lifetimeSeconds, now })
    this.cache.set(cacheKey, token)
    return token
  }
}
