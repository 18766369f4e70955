import { parseArgs } from 'node:util'
import { EntraAuthOptionsError } from '../options.ts'
import type { TokenVersion } from '../token-validation.ts'
import { decodeToken } from './checks.ts'
import { ExplainInputError, explainToken, normalizeToken, type ExplainOptions } from './explain.ts'
import { SETTING_NAMES } from './fixes.ts'
import { renderText } from './render.ts'

/*
 * entra-explain [options] <token | ->: why the api would accept or refuse a token, and what to change.
 * Settings come from the api's environment variables; a flag wins over its variable.
 * Exit status: 0 the api would accept, 1 it would refuse, 2 bad input (flags, settings, no token).
 */

export const USAGE = `usage: entra-explain [options] <token | ->

Says why an api protected by fastify-entra-auth would accept or refuse an Entra access token, check by
check in the api's order, and for each failure what to change (an api setting, or the Entra change with
its command). "-" reads the token from stdin. The token and its signature are never printed.

Offline by default: the signature and the key checks are "not checked". --keys reads the tenant's
discovery document and JWKS from the authority host and checks them too.

api settings (flag, or the api's environment variable; the flag wins):
  --tenant <ids>               ${SETTING_NAMES.tenants.env}: accepted tenant ids, comma-separated, or '*' for any (required)
  --audience <values>          ${SETTING_NAMES.audiences.env}: the api's client id and/or App ID URIs (required)
  --token-versions <list>      ${SETTING_NAMES.tokenVersions.env}: "1.0,2.0" (default) or "2.0" or "1.0"
  --roles <values>             ${SETTING_NAMES.requiredRoles.env}: the route's app roles, any one suffices (default: none)
  --authority-host <url>       ${SETTING_NAMES.authorityHost.env}: default https://login.microsoftonline.com
  --max-token-bytes <n>        ${SETTING_NAMES.maxTokenBytes.env}: default 8192
  --signing-keys-app-id <id>   ${SETTING_NAMES.signingKeysAppId.env}: the api's client id when it has its own signing keys

Entra facts for the printed fixes (optional):
  --api-sp-id <id>             ${SETTING_NAMES.apiServicePrincipalId.env}: object id of the api's service principal
  --app-role-id <id>           ${SETTING_NAMES.appRoleId.env}: id of the app role to assign
  --role-assigned-at <time>    when the role was assigned (ISO 8601): a token issued before is a cached token
  --expect-caller <id>         the client id (or object id) of the identity you expect to call

output:
  --keys                       read discovery and JWKS, check the signature (network)
  --timeout-ms <ms>            deadline of each discovery/JWKS request with --keys (default 5000)
  --json                       the report as JSON
  -h, --help                   this text

exit status: 0 the api would accept the token, 1 it would refuse it, 2 bad input.
example: AUTH_TENANT_ID=<tid> AUTH_AUDIENCE=<client id>,api://my-api AUTH_REQUIRED_ROLES=DoAll entra-explain --keys - < token.txt
`

export interface CliIo {
  stdin: () => Promise<string>
  stdout: (text: string) => void
  stderr: (text: string) => void
}

const list = (value: string | undefined) => value === undefined ? undefined : value.split(',').map((item) => item.trim()).filter(Boolean)

class UsageError extends Error {}

function integer (name: string, value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined
  if (!/^\d+$/.test(value)) throw new UsageError(`${name} must be a whole number, got "${value}"`)
  return Number(value)
}

/** Runs the CLI; resolves with the exit status. */
export async function runExplainCli (argv: string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: {
        tenant: { type: 'string' },
        audience: { type: 'string' },
        'token-versions': { type: 'string' },
        roles: { type: 'string' },
        'authority-host': { type: 'string' },
        'max-token-bytes': { type: 'string' },
        'signing-keys-app-id': { type: 'string' },
        'api-sp-id': { type: 'string' },
        'app-role-id': { type: 'string' },
        'role-assigned-at': { type: 'string' },
        'expect-caller': { type: 'string' },
        'timeout-ms': { type: 'string' },
        keys: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false }
      }
    })
  } catch (error) {
    io.stderr(`entra-explain: ${(error as Error).message}\n(entra-explain --help shows the options)\n`)
    return 2
  }
  const { values, positionals } = parsed
  if (values.help) {
    io.stdout(USAGE)
    return 0
  }
  try {
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'no token given: pass it as the argument, or "-" to read it from stdin' : 'pass exactly one token')
    const input = positionals[0] === '-' ? await io.stdin() : positionals[0] as string
    if (input.trim() === '') throw new UsageError('the token is empty')
    const pick = (flag: string | undefined, name: keyof typeof SETTING_NAMES) => flag ?? (env[SETTING_NAMES[name].env] || undefined)
    const tenants = list(pick(values.tenant, 'tenants'))
    const audiences = list(pick(values.audience, 'audiences'))
    // The token's own values are no settings (the api's are what decide), but they tell the reader where to look.
    const claims = decodeToken(normalizeToken(input)).claims
    const names = (claim: string) => typeof claims?.[claim] === 'string' ? ` (this token names ${claim} ${String(claims[claim])}; the api's own setting is what counts)` : ''
    if (!tenants?.length) throw new UsageError(`the api's tenant is needed: ${SETTING_NAMES.tenants.flag} <tenant id> or ${SETTING_NAMES.tenants.env}${names('tid')}`)
    if (!audiences?.length) throw new UsageError(`the api's audiences are needed: ${SETTING_NAMES.audiences.flag} <client id>,<App ID URI> or ${SETTING_NAMES.audiences.env}${names('aud')}`)
    const versions = list(pick(values['token-versions'], 'tokenVersions'))
    if (versions?.some((version) => version !== '1.0' && version !== '2.0')) throw new UsageError(`${SETTING_NAMES.tokenVersions.env} must list 1.0 and/or 2.0, got "${versions.join(',')}"`)
    const assignedAt = values['role-assigned-at']
    const roleAssignedAt = assignedAt === undefined ? undefined : new Date(assignedAt)
    if (roleAssignedAt !== undefined && Number.isNaN(roleAssignedAt.getTime())) throw new UsageError(`--role-assigned-at must be a time (ISO 8601), got "${assignedAt}"`)
    const options: ExplainOptions = {
      // '*' alone: a multi-tenant api (the plugin's tenants: '*').
      tenants: tenants.length === 1 && tenants[0] === '*' ? '*' : tenants,
      audiences,
      ...(versions ? { tokenVersions: versions as TokenVersion[] } : {}),
      requiredRoles: list(pick(values.roles, 'requiredRoles')) ?? [],
      keys: values.keys
    }
    const authorityHost = pick(values['authority-host'], 'authorityHost')
    if (authorityHost) options.authorityHost = authorityHost
    const maxTokenBytes = integer(SETTING_NAMES.maxTokenBytes.env, pick(values['max-token-bytes'], 'maxTokenBytes'))
    if (maxTokenBytes !== undefined) options.maxTokenBytes = maxTokenBytes
    const timeout = integer('--timeout-ms', values['timeout-ms'])
    if (timeout !== undefined) options.fetchTimeoutMs = timeout
    const signingKeysAppId = pick(values['signing-keys-app-id'], 'signingKeysAppId')
    if (signingKeysAppId) options.signingKeysAppId = signingKeysAppId
    const sp = pick(values['api-sp-id'], 'apiServicePrincipalId')
    if (sp) options.apiServicePrincipalId = sp
    const roleId = pick(values['app-role-id'], 'appRoleId')
    if (roleId) options.appRoleId = roleId
    if (roleAssignedAt) options.roleAssignedAt = roleAssignedAt
    if (values['expect-caller']) options.expectedCallerId = values['expect-caller']
    const report = await explainToken(input, options)
    io.stdout(values.json ? `${JSON.stringify(report, null, 2)}\n` : renderText(report))
    return report.verdict.accepted ? 0 : 1
  } catch (error) {
    if (error instanceof UsageError || error instanceof ExplainInputError || error instanceof EntraAuthOptionsError) {
      io.stderr(`entra-explain: ${error.message.replace(/^fastify-entra-auth: /, '')}\n(entra-explain --help shows the options)\n`)
      return 2
    }
    throw error
  }
}
