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

interface SchemaError {
  keyword: string
  schemaPath: string
  instancePath: string
  params: Record<string, unknown>
  message: string
}

/** The subschema a JSON pointer (`#/properties/applications/items`) names in the Tenant schema. */
function subschema (schemaPath: string): Record<string, unknown> | undefined {
  let node: unknown = Tenant
  for (const segment of schemaPath.replace(/^#\/?/, '').split('/').filter((part) => part !== '')) {
    node = (node as Record<string, unknown> | undefined)?.[segment.replaceAll('~1', '/').replaceAll('~0', '~')]
  }
  return node as Record<string, unknown> | undefined
}

/** The value at a JSON pointer in the document. */
function valueAt (document: unknown, pointer: string): unknown {
  let node = document
  for (const segment of pointer.split('/').slice(1)) node = (node as Record<string, unknown> | undefined)?.[segment]
  return node
}

/**
 * Turns the validator's errors into one sentence about the first bad place. TypeBox reports an unknown
 * key as "schema is false" on the key and a bad enum value as one "must be equal to constant" per
 * allowed value; a user needs the key's name, the known keys and the allowed values instead.
 */
function describeErrors (errors: readonly SchemaError[], document: unknown): string {
  const useful = errors.filter((error) => !(error.keyword === 'boolean' && error.message === 'schema is false'))
  const first = useful[0] ?? errors[0] as SchemaError
  const at = first.instancePath || '/'
  const here = useful.filter((error) => error.instancePath === first.instancePath)
  if (first.keyword === 'required' || first.keyword === 'additionalProperties') {
    const missing = here.flatMap((error) => error.keyword === 'required' ? error.params.requiredProperties as string[] : [])
    const unknown = here.flatMap((error) => error.keyword === 'additionalProperties' ? error.params.additionalProperties as string[] : [])
    const schema = subschema((here.find((error) => error.keyword === 'additionalProperties') ?? first).schemaPath)
    const known = Object.keys((schema?.properties ?? {}) as object)
    const near = (name: string) => known.find((candidate) => candidate.toLowerCase() === name.toLowerCase() || editDistance(candidate, name) <= 2)
    const parts = [
      ...missing.map((name) => `missing required property ${name}`),
      ...unknown.map((name) => `unknown property ${name}${near(name) === undefined ? '' : ` (did you mean ${near(name)}?)`}`)
    ]
    return `${at}: ${parts.join('; ')}${unknown.length > 0 && known.length > 0 ? `; known properties: ${known.join(', ')}` : ''}`
  }
  const allowed = here.filter((error) => error.keyword === 'const').map((error) => error.params.allowedValue)
  if (allowed.length > 0) {
    return `${at} must be one of ${allowed.map((value) => JSON.stringify(value)).join(', ')}, got ${JSON.stringify(valueAt(document, first.instancePath))}`
  }
  return `${at} ${first.message}`
}

/** Levenshtein distance, for "did you mean" on short property names. */
function editDistance (a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = current
  }
  return previous[b.length] as number
}

/** Checks a tenant document, failing with the JSON path of the first bad field. */
export function parseTenant (document: unknown, source = 'tenant'): TenantModel {
  const value = TenantValidator.Default(structuredClone(document))
  const errors = [...TenantValidator.Errors(value)] as SchemaError[]
  if (errors.length > 0) throw new TenantFileError(`${source}: ${describeErrors(errors, value)}`)
  return checkReferences(value as TenantModel, source)
}

/** Ids that name one thing in a tenant: a second holder would make tokens or lookups ambiguous. */
function checkUnique (tenant: TenantModel, source: string): void {
  const seen = new Map<string, string>()
  const claim = (kind: string, value: string, where: string) => {
    const key = `${kind}\u0000${value.toLowerCase()}`
    const other = seen.get(key)
    if (other !== undefined) throw new TenantFileError(`${source}: ${where} duplicates ${other} (${kind} ${JSON.stringify(value)}); each must be unique in the tenant`)
    seen.set(key, where)
  }
  tenant.applications.forEach((app, index) => {
    const at = `/applications/${index}`
    claim('appId', app.appId, `${at}/appId`)
    claim('servicePrincipal.id', app.servicePrincipal.id, `${at}/servicePrincipal/id`)
    // Entra refuses an identifier URI already used in the tenant ("Another object with the same value
    // for property identifierUris already exists"); with two, a token's audience would be ambiguous.
    app.identifierUris.forEach((uri, uriIndex) => claim('identifierUri', uri.replace(/\/+$/, ''), `${at}/identifierUris/${uriIndex}`))
  })
  tenant.managedIdentities.forEach((mi, index) => {
    const at = `/managedIdentities/${index}`
    claim('clientId', mi.clientId, `${at}/clientId`)
    claim('principalId', mi.principalId, `${at}/principalId`)
    claim('resourceId', mi.resourceId, `${at}/resourceId`)
  })
}

function checkReferences (tenant: TenantModel, source: string): TenantModel {
  checkUnique(tenant, source)
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
