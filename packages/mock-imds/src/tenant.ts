import { readFileSync } from 'node:fs'
import { extname } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { Type, type Static } from 'typebox'
import { Compile } from 'typebox/compile'
// Imported rather than read from disk, so that tsc emits it next to the compiled code in dist/.
import defaultTenantDocument from './default-tenant.json' with { type: 'json' }

/*
 * The tenant as an administrator sees it, in the field names of Microsoft Graph and the portal:
 * app registrations, managed identities and app role assignments.
 */

const Guid = Type.String({ pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' })

export const AppRole = Type.Object({
  id: Guid,
  value: Type.String({ minLength: 1 }),
  displayName: Type.Optional(Type.String()),
  description: Type.Optional(Type.String()),
  allowedMemberTypes: Type.Array(Type.Union([Type.Literal('Application'), Type.Literal('User')]), { minItems: 1 }),
  isEnabled: Type.Optional(Type.Boolean({ default: true }))
}, { additionalProperties: false })

export const Application = Type.Object({
  appId: Guid,
  displayName: Type.String({ minLength: 1 }),
  identifierUris: Type.Array(Type.String({ minLength: 1 }), { default: [] }),
  appRoles: Type.Array(AppRole, { default: [] }),
  api: Type.Optional(Type.Object({
    /** null or 1: v1.0 tokens (Entra's default for a new registration); 2: v2.0 tokens. */
    requestedAccessTokenVersion: Type.Optional(Type.Union([Type.Literal(1), Type.Literal(2), Type.Null()]))
  }, { additionalProperties: false })),
  servicePrincipal: Type.Object({
    /** The object id of the enterprise application (service principal): appRoleAssignment.resourceId. */
    id: Guid,
    appRoleAssignmentRequired: Type.Optional(Type.Boolean({ default: false }))
  }, { additionalProperties: false })
}, { additionalProperties: false })

export const ManagedIdentity = Type.Object({
  type: Type.Union([Type.Literal('SystemAssigned'), Type.Literal('UserAssigned')]),
  /** The client (application) id: appid/azp in the tokens, client_id in requests. */
  clientId: Guid,
  /** The object id of its service principal: oid/sub in the tokens, object_id/principal_id in requests. */
  principalId: Guid,
  /** The ARM resource id: msi_res_id/mi_res_id in requests, xms_mirid in the tokens. */
  resourceId: Type.String({ pattern: '^/subscriptions/' })
}, { additionalProperties: false })

export const AppRoleAssignment = Type.Object({
  /** The managed identity's principalId. */
  principalId: Guid,
  /** The api's servicePrincipal.id. */
  resourceId: Guid,
  appRoleId: Guid
}, { additionalProperties: false })

export const Tenant = Type.Object({
  tenantId: Guid,
  applications: Type.Array(Application),
  managedIdentities: Type.Array(ManagedIdentity),
  appRoleAssignments: Type.Array(AppRoleAssignment, { default: [] })
}, { additionalProperties: false })

export type TenantModel = Static<typeof Tenant>
export type ApplicationModel = Static<typeof Application>
export type ManagedIdentityModel = Static<typeof ManagedIdentity>

const TenantValidator = Compile(Tenant)

export class TenantFileError extends Error {
  override name = 'TenantFileError'
}

/** Checks a tenant document, failing with the JSON path of the first bad field. */
export function parseTenant (document: unknown, source = 'tenant'): TenantModel {
  const value = TenantValidator.Default(structuredClone(document))
  const errors = [...TenantValidator.Errors(value)]
  const first = errors[0]
  if (first) {
    throw new TenantFileError(`${source}: ${first.instancePath || '/'} ${first.message}`)
  }
  return checkReferences(value as TenantModel, source)
}

function checkReferences (tenant: TenantModel, source: string): TenantModel {
  tenant.appRoleAssignments.forEach((assignment, index) => {
    const at = `${source}: /appRoleAssignments/${index}`
    const app = tenant.applications.find((a) => a.servicePrincipal.id === assignment.resourceId)
    if (!app) throw new TenantFileError(`${at}/resourceId matches no application's servicePrincipal.id`)
    if (!app.appRoles.some((role) => role.id === assignment.appRoleId)) {
      throw new TenantFileError(`${at}/appRoleId matches no appRole of ${app.displayName}`)
    }
    if (!tenant.managedIdentities.some((mi) => mi.principalId === assignment.principalId)) {
      throw new TenantFileError(`${at}/principalId matches no managed identity`)
    }
  })
  if (tenant.managedIdentities.filter((mi) => mi.type === 'SystemAssigned').length > 1) {
    throw new TenantFileError(`${source}: /managedIdentities has more than one SystemAssigned identity`)
  }
  return tenant
}

/** Reads a tenant file: YAML when it is named .yaml or .yml, JSON otherwise. */
export function loadTenantFile (path: string): TenantModel {
  let document: unknown
  try {
    const text = readFileSync(path, 'utf8')
    document = ['.yaml', '.yml'].includes(extname(path).toLowerCase()) ? parseYaml(text) : JSON.parse(text)
  } catch (error) {
    throw new TenantFileError(`${path}: ${(error as Error).message}`)
  }
  return parseTenant(document, path)
}

/** The built-in tenant: the api registration with DoAll assigned to the system-assigned identity. */
export const defaultTenant = (): TenantModel => parseTenant(defaultTenantDocument, 'default-tenant.json')
