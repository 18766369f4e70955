// Stand-in for the Azure CLI, put on PATH as `az` by entra-script.test.ts. It understands only
// `az rest` against Microsoft Graph v1.0 (the calls deploy/entra/register-api.sh makes), records
// every call as a JSON line in $FAKE_AZ_LOG, keeps the directory in $FAKE_AZ_STATE, and answers the
// way Graph does: 201 bodies on create, empty 204 on PATCH, `az rest`'s "Bad Request({...})" on
// stderr with exit 1 on errors, including "Permission being assigned already exists on the object".
// Anything it does not understand exits 2, so the script cannot silently rely on an unknown form.
import { randomUUID } from 'node:crypto'
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs'

interface AppRole { id: string, value: string, allowedMemberTypes: string[], isEnabled: boolean, [k: string]: unknown }
interface Application {
  id: string
  appId: string
  uniqueName: string
  displayName?: string
  identifierUris: string[]
  appRoles: AppRole[]
  api: Record<string, unknown>
  [k: string]: unknown
}
interface ServicePrincipal { id: string, appId: string, appRoleAssignmentRequired: boolean }
interface Assignment { id: string, principalId: string, resourceId: string, appRoleId: string }
export interface FakeGraphState {
  applications: Application[]
  servicePrincipals: ServicePrincipal[]
  assignments: Assignment[]
  /** Replication lag: assignments exist but list calls do not return them yet. */
  hideAssignmentsFromList?: boolean
  /** Answer this many assignment POSTs with "does not exist" (a fresh identity not replicated). */
  principalNotReplicatedFor?: number
  /** Answer assignment POSTs with 403 Insufficient privileges (a caller without the admin role). */
  denyAssignments?: boolean
}
export interface RecordedCall { method: string, url: string, headers: string[], body?: unknown }

const graph = 'https://graph.microsoft.com/v1.0'
const statePath = process.env.FAKE_AZ_STATE ?? ''
const logPath = process.env.FAKE_AZ_LOG ?? ''

function fail (code: number, message: string): never {
  process.stderr.write(`ERROR: ${message}\n`)
  process.exit(code)
}

function graphError (status: string, code: string, message: string): never {
  fail(1, `${status}(${JSON.stringify({ error: { code, message, innerError: { date: '2026-01-01T00:00:00' } } })})`)
}

const argv = process.argv.slice(2)
if (argv[0] !== 'rest') fail(2, `fake az: unsupported command: ${argv.join(' ')}`)
let method = 'GET'
let url = ''
let body: string | undefined
const headers: string[] = []
const args = argv.slice(1)
const next = (flag: string): string => args.shift() ?? fail(2, `fake az: ${flag} needs a value`)
while (args.length > 0) {
  const a = next('')
  if (a === '--method' || a === '-m') method = next(a).toUpperCase()
  else if (a === '--url' || a === '--uri' || a === '-u') url = next(a)
  else if (a === '--body' || a === '-b') body = next(a)
  else if (a === '--headers') {
    while (args.length > 0 && !(args[0] ?? '').startsWith('--')) headers.push(next(a))
  } else if (a === '--only-show-errors') { /* accepted */ } else fail(2, `fake az: unsupported argument ${a}`)
}
if (!url.startsWith(`${graph}/`)) fail(2, `fake az: not a Graph v1.0 URL: ${url}`)
let parsedBody: unknown
if (body !== undefined) {
  try { parsedBody = JSON.parse(body) } catch { graphError('Bad Request', 'BadRequest', 'Unable to read JSON request payload.') }
}
appendFileSync(logPath, JSON.stringify({ method, url, headers, body: parsedBody } satisfies RecordedCall) + '\n')

const state: FakeGraphState = existsSync(statePath)
  ? JSON.parse(readFileSync(statePath, 'utf8')) as FakeGraphState
  : { applications: [], servicePrincipals: [], assignments: [] }
const save = (): void => writeFileSync(statePath, JSON.stringify(state, null, 2))
const print = (o: unknown): void => { process.stdout.write(JSON.stringify(o) + '\n') }
const b = (parsedBody ?? {}) as Record<string, unknown>

const target = decodeURIComponent(url.slice(graph.length))
const [route = '', query = ''] = target.split('?')
const filter = /\$filter=([^&]+)/.exec(query)?.[1]
const eqFilter = (field: string): string | undefined => {
  if (filter === undefined) return undefined
  const m = new RegExp(`^${field} eq '([^']*)'$`).exec(filter)
  if (m === null) graphError('Bad Request', 'Request_UnsupportedQuery', `Unsupported filter: ${filter}`)
  return m[1] ?? ''
}

// Graph adds server-side fields: idempotence must not depend on echoing bodies back verbatim.
function normalizeRoles (roles: unknown): AppRole[] {
  return ((roles ?? []) as AppRole[]).map((r) => ({ origin: 'Application', ...r }))
}
function fullApi (api: unknown): Record<string, unknown> {
  return { acceptMappedClaims: null, knownClientApplications: [], oauth2PermissionScopes: [], preAuthorizedApplications: [], requestedAccessTokenVersion: null, ...(api as Record<string, unknown> ?? {}) }
}
function checkRoles (roles: AppRole[]): void {
  for (const r of roles) {
    if (!/^[0-9a-f-]{36}$/.test(r.id)) graphError('Bad Request', 'Request_BadRequest', `Invalid app role id ${r.id}`)
    if (!Array.isArray(r.allowedMemberTypes) || r.allowedMemberTypes.length === 0) graphError('Bad Request', 'Request_BadRequest', 'allowedMemberTypes required')
  }
}
function updateApp (app: Application, patch: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(patch)) {
    if (k === 'appRoles') {
      const roles = normalizeRoles(v)
      checkRoles(roles)
      // Graph refuses to drop an enabled role; it must be disabled first.
      for (const old of app.appRoles) {
        if (old.isEnabled && !roles.some((r) => r.id === old.id)) graphError('Bad Request', 'CannotDeleteOrUpdateEnabledEntitlement', 'Property value cannot be deleted or updated unless it is disabled first.')
      }
      app.appRoles = roles
    } else if (k === 'api') app.api = fullApi(v)
    else app[k] = v
  }
}

/** The first capture of re against the route, or undefined. */
const match = (re: RegExp): string | undefined => re.exec(route)?.[1]
let key: string | undefined
if (method === 'GET' && route === '/applications') {
  // Graph documents uniqueName as an alternate key (GET /applications(uniqueName='...')), not as a
  // $filter property: the stand-in refuses the filter so that the script cannot rely on it.
  if (filter !== undefined) graphError('Bad Request', 'Request_UnsupportedQuery', `Unsupported or invalid query filter clause specified for property of resource 'Application': ${filter}`)
  print({ value: state.applications })
} else if ((key = match(/^\/applications\(uniqueName='([^']+)'\)$/)) !== undefined) {
  const app = state.applications.find((a) => a.uniqueName === key)
  if (method === 'GET') {
    if (app === undefined) graphError('Not Found', 'Request_ResourceNotFound', `Resource '${key}' does not exist.`)
    print(app)
  } else if (method === 'PATCH') {
    if (app !== undefined) { updateApp(app, b); save() } else {
      if (!headers.includes('Prefer=create-if-missing')) graphError('Not Found', 'Request_ResourceNotFound', `Resource '${key}' does not exist.`)
      const created: Application = { id: randomUUID(), appId: randomUUID(), uniqueName: key, identifierUris: [], appRoles: [], api: fullApi({}) }
      updateApp(created, b)
      state.applications.push(created)
      save()
      print(created)
    }
  } else fail(2, `fake az: ${method} ${route}`)
} else if (method === 'PATCH' && (key = match(/^\/applications\/([0-9a-f-]{36})$/)) !== undefined) {
  const app = state.applications.find((a) => a.id === key)
  if (app === undefined) graphError('Not Found', 'Request_ResourceNotFound', `Resource '${key}' does not exist.`)
  updateApp(app, b)
  save()
} else if (method === 'GET' && route === '/servicePrincipals') {
  const appId = eqFilter('appId')
  print({ value: state.servicePrincipals.filter((s) => appId === undefined || s.appId === appId) })
} else if (method === 'POST' && route === '/servicePrincipals') {
  if (!state.applications.some((a) => a.appId === b.appId)) graphError('Bad Request', 'Request_BadRequest', 'The appId of the service principal does not reference a valid application object.')
  if (state.servicePrincipals.some((s) => s.appId === b.appId)) graphError('Conflict', 'Request_MultipleObjectsWithSameKeyValue', 'Another object with the same value for property servicePrincipalNames already exists.')
  const sp = { id: randomUUID(), appId: String(b.appId), appRoleAssignmentRequired: b.appRoleAssignmentRequired === true }
  state.servicePrincipals.push(sp)
  save()
  print(sp)
} else if (method === 'PATCH' && (key = match(/^\/servicePrincipals\/([0-9a-f-]{36})$/)) !== undefined) {
  const sp = state.servicePrincipals.find((s) => s.id === key)
  if (sp === undefined) graphError('Not Found', 'Request_ResourceNotFound', `Resource '${key}' does not exist.`)
  Object.assign(sp, b)
  save()
} else if ((key = match(/^\/servicePrincipals\/([0-9a-f-]{36})\/appRoleAssignedTo$/)) !== undefined) {
  const sp = state.servicePrincipals.find((s) => s.id === key)
  if (sp === undefined) graphError('Not Found', 'Request_ResourceNotFound', `Resource '${key}' does not exist.`)
  if (method === 'GET') {
    print({ value: state.hideAssignmentsFromList === true ? [] : state.assignments.filter((a) => a.resourceId === sp.id) })
  } else if (method === 'POST') {
    if ((state.principalNotReplicatedFor ?? 0) > 0) {
      state.principalNotReplicatedFor = (state.principalNotReplicatedFor ?? 0) - 1
      save()
      graphError('Not Found', 'Request_ResourceNotFound', `Resource '${String(b.principalId)}' does not exist or one of its queried reference-property objects are not present.`)
    }
    if (state.denyAssignments === true) graphError('Forbidden', 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.')
    if (b.resourceId !== sp.id) graphError('Bad Request', 'Request_BadRequest', 'resourceId must be the service principal in the URL')
    const app = state.applications.find((a) => a.appId === sp.appId)
    const role = app?.appRoles.find((r) => r.id === b.appRoleId)
    if (role === undefined || !role.allowedMemberTypes.includes('Application')) graphError('Bad Request', 'Request_BadRequest', 'Permission being assigned was not found on application')
    if (state.assignments.some((a) => a.resourceId === sp.id && a.principalId === b.principalId && a.appRoleId === b.appRoleId)) {
      graphError('Bad Request', 'Request_BadRequest', 'Permission being assigned already exists on the object')
    }
    const assignment = { id: randomUUID(), principalId: String(b.principalId), resourceId: sp.id, appRoleId: String(b.appRoleId) }
    state.assignments.push(assignment)
    save()
    print(assignment)
  } else fail(2, `fake az: ${method} ${route}`)
} else {
  fail(2, `fake az: unsupported request ${method} ${target}`)
}
