import type { Reason, TokenVersion } from '../token-validation.ts'
import type { Check } from './checks.ts'
import { cloudOfAuthority, cloudOfIssuer } from './clouds.ts'

/*
 * For each failed check: what to change and where (an api setting, or the Entra change with the exact
 * command), and the gotchas that apply. Pure functions of the checks, the claims and the settings.
 */

/** Where each api setting comes from: environment variable (the msi-pair api's), explain flag, plugin option. */
export const SETTING_NAMES = Object.freeze({
  tenants: { env: 'AUTH_TENANT_ID', flag: '--tenant', option: 'tenants' },
  audiences: { env: 'AUTH_AUDIENCE', flag: '--audience', option: 'audiences' },
  tokenVersions: { env: 'AUTH_ACCEPTED_TOKEN_VERSIONS', flag: '--token-versions', option: 'tokenVersions' },
  requiredRoles: { env: 'AUTH_REQUIRED_ROLES', flag: '--roles', option: 'route config.auth.roles' },
  authorityHost: { env: 'AUTH_AUTHORITY_HOST', flag: '--authority-host', option: 'authorityHost' },
  signingKeysAppId: { env: 'AUTH_SIGNING_KEYS_APP_ID', flag: '--signing-keys-app-id', option: 'signingKeysAppId' },
  maxTokenBytes: { env: 'AUTH_MAX_TOKEN_BYTES', flag: '--max-token-bytes', option: 'maxTokenBytes' },
  apiServicePrincipalId: { env: 'API_SP_ID', flag: '--api-sp-id', option: '' },
  appRoleId: { env: 'APP_ROLE_ID', flag: '--app-role-id', option: '' }
})
type SettingName = keyof typeof SETTING_NAMES
/** "AUTH_AUDIENCE (--audience; plugin option audiences)" */
const setting = (name: SettingName) => `${SETTING_NAMES[name].env} (${via(name)})`
/** "flag --audience; plugin option audiences": for after an ENV=value already written out. */
const via = (name: SettingName) => {
  const s = SETTING_NAMES[name]
  return `flag ${s.flag}${s.option ? `; plugin option ${s.option}` : ''}`
}

/** Microsoft Learn pages the fixes cite. */
export const SOURCES = Object.freeze({
  miTokenCache: 'https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/managed-identity-best-practice-recommendations#limitation-of-using-managed-identities-for-authorization',
  tokenVersion: 'https://learn.microsoft.com/entra/identity-platform/access-tokens#token-formats',
  manifest: 'https://learn.microsoft.com/entra/identity-platform/reference-microsoft-graph-app-manifest#apirequestedaccesstokenversion-attribute',
  assignment: 'https://learn.microsoft.com/graph/api/serviceprincipal-post-approleassignedto',
  appSpecificKeys: 'https://learn.microsoft.com/entra/identity-platform/access-tokens#validate-the-signature',
  nationalClouds: 'https://learn.microsoft.com/entra/identity-platform/authentication-national-cloud',
  appOnly: 'https://learn.microsoft.com/entra/identity-platform/claims-validation#validate-the-subject'
})

export interface Fix {
  /** The reason this fix answers. */
  readonly reason: Exclude<Reason, 'none'>
  readonly title: string
  /** Lines of advice; commands start with "$ ". */
  readonly steps: readonly string[]
}

/** The api's settings that decide a verdict, as explain resolved them (the plugin's options and the route's roles). */
export interface ApiSettings {
  tenants: string[]
  audiences: string[]
  tokenVersions: TokenVersion[]
  authorityHost: string
  requiredRoles: string[]
  /** Allowed clock difference for exp and nbf, in milliseconds. */
  clockSkewMs: number
  /** Longest token accepted, in bytes. */
  maxTokenBytes: number
}

export interface FixContext {
  claims: Record<string, unknown>
  settings: ApiSettings & {
    apiServicePrincipalId?: string | undefined
    appRoleId?: string | undefined
    roleAssignedAt?: Date | undefined
    expectedCallerId?: string | undefined
  }
  now: number
  /** --keys diagnostics: the kid was found under the discovery document read with ?appid=<this>. */
  appSpecificKeysOf?: string | undefined
  /** --keys: why the keys did not load. */
  keyErrors?: readonly string[]
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const iso = (seconds: unknown) => typeof seconds === 'number' && Number.isFinite(seconds) && Math.abs(seconds) < 8.64e12 ? new Date(seconds * 1000).toISOString().replace('.000Z', 'Z') : String(seconds)
/** A shell word: double quotes when nothing in it is special there (JMESPath's '...' then reads as is), else single quotes. */
const q = (value: string) => /^[^"$`\\!]*$/.test(value) ? `"${value}"` : `'${value.replaceAll("'", "'\\''")}'`

/** Audiences of well-known Azure resources: a token for one of them is a token for another resource. */
const KNOWN_RESOURCES: Record<string, string> = {
  'https://management.azure.com': 'Azure Resource Manager',
  'https://management.core.windows.net': 'Azure Resource Manager (classic)',
  'https://graph.microsoft.com': 'Microsoft Graph',
  '00000003-0000-0000-c000-000000000000': 'Microsoft Graph',
  'https://vault.azure.net': 'Azure Key Vault',
  'https://storage.azure.com': 'Azure Storage',
  'https://database.windows.net': 'Azure SQL',
  'https://ossrdbms-aad.database.windows.net': 'Azure Database for PostgreSQL/MySQL',
  'https://servicebus.azure.net': 'Service Bus',
  'https://eventhubs.azure.net': 'Event Hubs',
  'https://cognitiveservices.azure.com': 'Azure AI services'
}

/** The api's client id, as far as the settings or a v2 token say. */
function apiClientId (context: FixContext): string | undefined {
  const fromSettings = context.settings.audiences.find((audience) => GUID.test(audience))
  if (fromSettings) return fromSettings
  const aud = context.claims.aud
  return context.claims.ver === '2.0' && typeof aud === 'string' && GUID.test(aud) && context.settings.audiences.length === 0 ? aud : undefined
}
/** The identifier a caller should request: the api's App ID URI if configured, else its client id. */
function apiIdentifier (context: FixContext): string {
  return context.settings.audiences.find((audience) => !GUID.test(audience))?.replace(/\/+$/, '') ?? apiClientId(context) ?? '<api App ID URI>'
}

/** The caller, as the token names it. */
export function callerOf (claims: Record<string, unknown>) {
  const clientId = claims.ver === '1.0' ? claims.appid : claims.azp ?? claims.appid
  return {
    clientId: typeof clientId === 'string' ? clientId : undefined,
    objectId: typeof claims.oid === 'string' ? claims.oid : undefined,
    tenantId: typeof claims.tid === 'string' ? claims.tid : undefined,
    resourceId: typeof claims.xms_mirid === 'string' ? claims.xms_mirid : undefined
  }
}

function missingRole (context: FixContext, check: Check): Fix {
  const { claims, settings } = context
  const oid = typeof claims.oid === 'string' ? claims.oid : '<caller principal id>'
  const role = settings.requiredRoles[0] ?? '<role>'
  const clientId = apiClientId(context) ?? '<api client id>'
  const iat = typeof claims.iat === 'number' ? claims.iat : undefined
  const steps: string[] = [`${check.detail}; the route requires one of: ${settings.requiredRoles.join(', ')}.`]
  const assignedAt = settings.roleAssignedAt
  if (assignedAt !== undefined && iat !== undefined && assignedAt.getTime() > iat * 1000) {
    steps.push(
      `The role was assigned at ${assignedAt.toISOString()}, after this token was issued (iat ${iso(iat)}): the assignment is fine, the token predates it.`,
      `Renew the token. Azure caches a managed identity's tokens per resource for up to 24 h and cannot be made to refresh early (${SOURCES.miTokenCache}): the next token carries the role, at the latest once this one expires (exp ${iso(claims.exp)}).`,
      'Restarting the caller does not help on Azure (the platform holds the cache); a token requested for another identifier of the api (its client id instead of its App ID URI) is not cached yet.'
    )
    return { reason: 'missing_role', title: 'The role was assigned after this token was issued: renew the token', steps }
  }
  steps.push(`Assign the app role to the caller's identity (principal id ${oid}, the token's oid) on the api's service principal:`)
  const sp = settings.apiServicePrincipalId ?? '$API_SP_ID'
  const roleId = settings.appRoleId ?? '$APP_ROLE_ID'
  if (settings.apiServicePrincipalId === undefined) steps.push(`$ API_SP_ID=$(az ad sp show --id ${clientId} --query id -o tsv)`)
  if (settings.appRoleId === undefined) steps.push(`$ APP_ROLE_ID=$(az ad sp show --id ${clientId} --query ${q(`appRoles[?value=='${role}'].id`)} -o tsv)`)
  steps.push(
    `$ az rest --method post --uri https://graph.microsoft.com/v1.0/servicePrincipals/${sp}/appRoleAssignedTo --headers Content-Type=application/json --body "{\\"principalId\\":\\"${oid}\\",\\"resourceId\\":\\"${sp}\\",\\"appRoleId\\":\\"${roleId}\\"}"`,
    `(Graph appRoleAssignment, ${SOURCES.assignment}; needs Application Administrator or Cloud Application Administrator.)`,
    'Already assigned? List the caller\'s assignments and when they were made:',
    `$ az rest --method get --uri https://graph.microsoft.com/v1.0/servicePrincipals/${oid}/appRoleAssignments --query ${q('value[].{role:appRoleId, api:resourceId, created:createdDateTime}')} -o table`,
    `If the role was assigned after ${iso(iat)} (this token's iat), the token predates it: renew the token. Azure caches managed identity tokens per resource for up to 24 h and cannot be forced to refresh (${SOURCES.miTokenCache}); this one expires at ${iso(claims.exp)}. Rerun explain with --role-assigned-at <time> to have it compare.`
  )
  if (cloudOfAuthority(settings.authorityHost) === undefined) {
    steps.push(`(${settings.authorityHost} is not an Entra login host: on a local mock make the same assignment in its tenant model, e.g. mock-imds: {"principalId":"${oid}","resourceId":"${settings.apiServicePrincipalId ?? '<api service principal id>'}","appRoleId":"${settings.appRoleId ?? '<app role id>'}"} in appRoleAssignments of its --tenant file.)`)
  }
  return { reason: 'missing_role', title: 'The caller\'s identity does not hold the app role', steps }
}

function wrongAudience (context: FixContext, check: Check): Fix {
  const { claims, settings } = context
  const aud = claims.aud
  const steps: string[] = [`${check.detail}; the api accepts: ${settings.audiences.join(', ')}.`]
  if (Array.isArray(aud)) {
    steps.push('aud is an array: Entra never issues a token with several audiences; this one was not made by Entra.')
    return { reason: 'wrong_audience', title: 'The token names several audiences', steps }
  }
  const known = typeof aud === 'string' ? KNOWN_RESOURCES[aud.replace(/\/+$/, '').toLowerCase()] : undefined
  const identifier = apiIdentifier(context)
  if (known) steps.push(`This is a token for ${known}, not for this api: the caller requested the wrong resource.`)
  else if (typeof aud === 'string' && GUID.test(aud)) steps.push(`Which app is ${aud}? $ az ad sp show --id ${aud} --query "{name:displayName, identifiers:servicePrincipalNames}"`)
  steps.push(
    `If the caller requested the wrong resource: request ${identifier}/.default (MSAL/azure-identity scope) or resource=${identifier} (IMDS, identity endpoint). In msi-pair's caller: API_SCOPE=${identifier}/.default.`,
    `If ${String(aud)} does identify this api (another App ID URI of it, or its client id): add it: ${SETTING_NAMES.audiences.env}=${[...settings.audiences, String(aud)].join(',')} (${via('audiences')}).`,
    `v2 tokens always carry the api's client id as aud; v1 tokens carry exactly the identifier the caller requested (${SOURCES.tokenVersion}).`
  )
  return { reason: 'wrong_audience', title: 'The token is for another audience', steps }
}

function wrongVersion (context: FixContext, check: Check): Fix {
  const { claims, settings } = context
  const ver = String(claims.ver)
  const clientId = apiClientId(context) ?? '<api client id>'
  const wanted = settings.tokenVersions.includes('2.0') ? 2 : 1
  const steps = [
    `${check.detail}; the api accepts ${settings.tokenVersions.join(', ')}. The version is chosen by the api's app registration, not by the caller or the endpoint it used (${SOURCES.tokenVersion}).`,
    `Either make Entra issue v${wanted}.0 tokens for the api: set api.requestedAccessTokenVersion to ${wanted} in its manifest (Microsoft Graph app manifest; accessTokenAcceptedVersion in the older Azure AD Graph manifest; null or 1 means v1.0, ${SOURCES.manifest}):`,
    `$ az rest --method patch --uri "https://graph.microsoft.com/v1.0/applications(appId='${clientId}')" --headers Content-Type=application/json --body '{"api":{"requestedAccessTokenVersion":${wanted}}}'`,
    `Or accept v${ver} tokens too: ${SETTING_NAMES.tokenVersions.env}=${[...new Set([...settings.tokenVersions, ver])].sort().join(',')} (${via('tokenVersions')}).` +
      (ver === '1.0' ? ` A v1.0 token's aud is the identifier the caller requested (e.g. ${apiIdentifier(context)}): ${SETTING_NAMES.audiences.env} must list it.` : ' A v2.0 token\'s aud is the api\'s client id: AUTH_AUDIENCE must list it.'),
    `After a manifest change, a managed identity keeps presenting its cached v${ver} token for up to 24 h (${SOURCES.miTokenCache}).`
  ]
  return { reason: 'wrong_version', title: `A v${ver} token where the api accepts ${settings.tokenVersions.map((v) => `v${v}`).join(' and ')}`, steps }
}

function wrongTenant (context: FixContext, check: Check): Fix {
  const tid = String(context.claims.tid)
  return {
    reason: 'wrong_tenant',
    title: 'The token comes from another tenant',
    steps: [
      `${check.detail}; the api accepts ${context.settings.tenants.join(', ')}.`,
      `If ${tid} is the api's own tenant, the setting is wrong: ${SETTING_NAMES.tenants.env}=${tid} (${via('tenants')}). Your tenant id: $ az account show --query tenantId -o tsv`,
      `Otherwise the caller's identity lives in tenant ${tid}: a managed identity gets tokens only from the tenant of its subscription. An api serving another tenant must be a multi-tenant app with a service principal there, and list that tenant: ${SETTING_NAMES.tenants.env}=${[...context.settings.tenants, tid].join(',')}.`
    ]
  }
}

function wrongIssuer (context: FixContext, check: Check): Fix {
  const { claims, settings } = context
  const steps = [check.detail + '.']
  const tokenCloud = cloudOfIssuer(claims.iss)
  const apiCloud = cloudOfAuthority(settings.authorityHost)
  if (check.id === 'key-issuer') {
    steps.push('The key that signed the token is published for another issuer only (signing-key issuer validation, IDX40005): a token of another tenant or app signed with a key it may not use here.')
  } else if (tokenCloud !== undefined && tokenCloud !== apiCloud) {
    steps.push(`The token was issued in ${tokenCloud.name}; the api reads its keys from ${settings.authorityHost}. Set ${SETTING_NAMES.authorityHost.env}=${tokenCloud.authorityHost} (${via('authorityHost')}; ${SOURCES.nationalClouds}).`)
  } else if (typeof claims.iss === 'string' && ((claims.ver === '2.0' && claims.iss.startsWith('https://sts.')) || (claims.ver === '1.0' && claims.iss.endsWith('/v2.0')))) {
    steps.push('iss has the form of the other token version than ver says: Entra never issues that; the token was not made by Entra.')
  } else {
    steps.push(`iss must name the token's own tenant (tid) in the form of its version; for an api in another cloud set ${setting('authorityHost')}.`)
  }
  return { reason: 'wrong_issuer', title: 'The issuer is not the tenant\'s', steps }
}

function unknownKey (context: FixContext, check: Check): Fix {
  const { claims, settings } = context
  const steps = [check.detail + '.']
  const tokenCloud = cloudOfIssuer(claims.iss)
  const apiCloud = cloudOfAuthority(settings.authorityHost)
  if (context.appSpecificKeysOf !== undefined) {
    steps.push(`The kid is published under the discovery document of app ${context.appSpecificKeysOf} (?appid=): the api's registration has its own signing keys (claims mapping or a custom signing key). Set ${SETTING_NAMES.signingKeysAppId.env}=${context.appSpecificKeysOf} (${via('signingKeysAppId')}; ${SOURCES.appSpecificKeys}).`)
  } else if (tokenCloud !== undefined && tokenCloud !== apiCloud) {
    steps.push(`The token was issued in ${tokenCloud.name}; the api reads keys from ${settings.authorityHost}. Set ${SETTING_NAMES.authorityHost.env}=${tokenCloud.authorityHost} (${via('authorityHost')}; ${SOURCES.nationalClouds}).`)
  } else {
    steps.push(
      `Causes, most likely first: a token from another authority than ${settings.authorityHost} (a local mock's token against Entra, or the reverse: check ${setting('authorityHost')}); an api registration with its own signing keys (claims mapping: set ${setting('signingKeysAppId')} to the api's client id, ${SOURCES.appSpecificKeys}); a key Entra removed long ago.`
    )
  }
  return { reason: 'unknown_key', title: 'The signing key is not one the api knows', steps }
}

const simple = (reason: Exclude<Reason, 'none'>, title: string, advice: (context: FixContext, check: Check) => string[]) =>
  (context: FixContext, check: Check): Fix => ({ reason, title, steps: [check.detail ? `${check.detail}.` : '', ...advice(context, check)].filter(Boolean) })

const FIXES: Record<Exclude<Reason, 'none'>, (context: FixContext, check: Check) => Fix> = {
  missing_token: simple('missing_token', 'No token', () => ['Pass the access token (three dot-separated parts, starting with eyJ).']),
  malformed: simple('malformed', 'Not a signed JWT the api can read', (context, check) => [
    check.id === 'size'
      ? `The api refuses tokens over ${context.settings.maxTokenBytes} bytes (${setting('maxTokenBytes')}); managed identity tokens are 1-2 KiB.`
      : 'Pass the whole access token as Entra issued it (header.payload.signature, unpadded base64url): from IMDS, the access_token member of its JSON answer. Entra never issues what is refused here.'
  ]),
  unsupported_alg: simple('unsupported_alg', 'Not signed with RS256', () => ['Entra signs access tokens with RS256 only; a token with another alg was not issued by Entra.']),
  unknown_key: unknownKey,
  bad_signature: simple('bad_signature', 'The signature does not verify', () => ['The token was altered after it was issued, or was signed by another authority that uses the same kid (e.g. two local mocks). Get a fresh token from the identity endpoint the api trusts.']),
  expired: simple('expired', 'The token expired', (context) => [
    `Now is ${new Date(context.now).toISOString()}; the api allows 5 min of clock skew. The caller must request a new token: the Azure SDKs renew 5 min before exp, but a token kept in a variable, a file or a config is never renewed.`,
    'If the token looks current to you, the api host\'s clock is ahead: check its time sync (timedatectl, chronyc tracking).'
  ]),
  not_yet_valid: simple('not_yet_valid', 'The token is not valid yet', (context) => [
    `Now is ${new Date(context.now).toISOString()}: the clock of the host running the api (and explain) is behind Entra's by more than the 5 min skew. Fix its time sync (timedatectl, chronyc tracking).`
  ]),
  wrong_audience: wrongAudience,
  wrong_issuer: wrongIssuer,
  wrong_tenant: wrongTenant,
  wrong_version: wrongVersion,
  missing_claim: simple('missing_claim', 'A required claim is absent', (_context, check) => [
    check.detail.includes('ID token')
      ? 'Send an access token for the api (requested with the api\'s scope or resource), not the ID token of a sign-in.'
      : 'Entra access tokens always carry these claims: the token is not an Entra access token (an ID token, or one made by another issuer).'
  ]),
  invalid_claim: simple('invalid_claim', 'A claim has a value Entra never issues', () => ['The token was not issued by Entra as it is: get a fresh token from the identity endpoint.']),
  delegated_token: simple('delegated_token', 'A user\'s (delegated) token where an app-only token is required', (context) => [
    `The api accepts app-only tokens only (roles, no scp: ${SOURCES.appOnly}). A token from az account get-access-token or an interactive sign-in acts for a user.`,
    `Call the api with the managed identity's token: on the caller's host, $ curl -s -H Metadata:true 'http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=${apiIdentifier(context)}'`
  ]),
  missing_role: missingRole,
  keys_unavailable: simple('keys_unavailable', 'The api cannot load the tenant\'s signing keys', (context) => [
    ...(context.keyErrors ?? []).map((error) => `Fetch failed: ${error}`),
    `The api answers 503 for this tenant until it can read its discovery document and JWKS from ${context.settings.authorityHost} (${setting('authorityHost')}): check the value and the api host's egress (https to login.microsoftonline.com, AzureActiveDirectory service tag).`
  ])
}

/** One fix per failed check, in check order, merging checks that answer the same reason. */
export function fixesFor (checks: readonly Check[], context: FixContext): Fix[] {
  const fixes: Fix[] = []
  const seen = new Set<string>()
  for (const check of checks) {
    if (check.status !== 'fail' || check.reason === undefined || seen.has(check.reason)) continue
    seen.add(check.reason)
    fixes.push(FIXES[check.reason](context, check))
  }
  return fixes
}

/** Notes that hold whatever failed: who the caller is, the token's age. */
export function notesFor (context: FixContext, verdictReason: Reason): string[] {
  const caller = callerOf(context.claims)
  const notes: string[] = []
  if (caller.clientId !== undefined || caller.objectId !== undefined) {
    notes.push(`Caller: client id ${caller.clientId ?? '(none)'} (azp/appid), object id ${caller.objectId ?? '(none)'} (oid: the principal id app roles are assigned to)${caller.resourceId ? `, managed identity ${caller.resourceId}` : ''}. The api authorizes by app role, not by client id: any identity holding the role is let in.`)
  }
  const expected = context.settings.expectedCallerId
  if (expected !== undefined && caller.clientId !== undefined && expected.toLowerCase() !== caller.clientId.toLowerCase() && expected.toLowerCase() !== caller.objectId?.toLowerCase()) {
    notes.push(`Not the identity you expected (${expected}): the caller used another identity. With several identities on a host, the SDK must be told which: AZURE_CLIENT_ID=<client id> (user-assigned), or no AZURE_CLIENT_ID for the system-assigned one.`)
  }
  if (verdictReason === 'none' && Array.isArray(context.claims.roles) && context.claims.roles.length > 0) {
    notes.push(`A role removed from the caller stays in its tokens until they expire (exp ${iso(context.claims.exp)}): managed identity tokens are cached for up to 24 h (${SOURCES.miTokenCache}).`)
  }
  return notes
}
