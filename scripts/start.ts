/*
 * npm start: mock-imds, api and caller as local processes, then the seed's "click Run":
 * the caller gets a token with no secret, calls the api, and the claims the api saw are printed.
 * The stack keeps running until Ctrl-C.
 */
import { readFileSync } from 'node:fs'
import { defaultTenant, startLocalStack } from './lib/local-stack.ts'

const port = (name: string, fallback: number) => Number(process.env[name] ?? fallback)
const ports = { caller: port('CALLER_PORT', 3000), api: port('API_PORT', 3001), mockImds: port('MOCK_IMDS_PORT', 3002) }

/** What the local stack's identities are (mock-imds' built-in tenant): what each claim should name. */
const tenant = defaultTenant()
const model = JSON.parse(readFileSync(new URL('../packages/mock-imds/src/default-tenant.json', import.meta.url), 'utf8')) as {
  managedIdentities: Array<{ type: string, clientId: string, principalId: string }>
  applications: Array<{ appRoles: Array<{ id: string, value: string }>, servicePrincipal: { id: string } }>
}
const identity = model.managedIdentities.find((mi) => mi.type === 'SystemAssigned')

/**
 * Each claim the article's reader checks, with what it proves when it has the expected value. A claim
 * that differs says what it should be (and explain says why it matters).
 */
const CLAIMS: Array<{ name: string, proves: string, expected?: (claims: Record<string, unknown>) => unknown }> = [
  { name: 'aud', proves: 'the token is for the api\'s app registration (its client id in a v2 token)', expected: (c) => c.ver === '1.0' ? undefined : tenant.apiClientId },
  { name: 'iss', proves: 'Entra issued it, for the tenant (v2 form; v1: https://sts.windows.net/<tid>/)', expected: (c) => c.ver === '1.0' ? `https://sts.windows.net/${tenant.tenantId}/` : `https://login.microsoftonline.com/${tenant.tenantId}/v2.0` },
  { name: 'tid', proves: 'the tenant: the one the api accepts (AUTH_TENANT_ID)', expected: () => tenant.tenantId },
  { name: 'ver', proves: 'the token version, chosen by the api\'s registration (requestedAccessTokenVersion)' },
  { name: 'azp', proves: 'the caller\'s client id: the managed identity\'s (v2 tokens)', expected: () => identity?.clientId },
  { name: 'appid', proves: 'the caller\'s client id: the managed identity\'s (v1 tokens)', expected: () => identity?.clientId },
  { name: 'oid', proves: 'the managed identity\'s object (principal) id: whom app roles are assigned to', expected: () => identity?.principalId },
  { name: 'roles', proves: 'the app role assigned to that identity on the api: what the api authorizes by', expected: () => model.applications[0]?.appRoles.map((role) => role.value) },
  { name: 'idtyp', proves: 'an app-only token (no user signed in): the api refuses delegated ones', expected: () => 'app' }
]

const stack = await startLocalStack({ ports, logLevel: process.env.LOG_LEVEL ?? 'warn', inheritOutput: true })
let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  process.stdout.write('\nstopping...\n')
  await stack.stop()
  process.exit(0)
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)

const response = await fetch(`${stack.caller.url}/call`)
const body = await response.json() as Record<string, unknown>
if (response.status !== 200) {
  process.stderr.write(`GET ${stack.caller.url}/call answered ${response.status}:\n${JSON.stringify(body, null, 2)}\n`)
  await stack.stop()
  process.exit(1)
}
const claimLines = CLAIMS.filter((claim) => claim.name in body).flatMap(({ name, proves, expected }) => {
  const value = JSON.stringify(body[name])
  const want = expected?.(body)
  const differs = want !== undefined && JSON.stringify(want) !== value ? ` (DIFFERS: expected ${JSON.stringify(want)})` : ''
  return [`  ${name.padEnd(6)} ${value}${differs}`, `         ${proves}`]
})
process.stdout.write([
  '',
  'The caller got a token from its managed identity (no secret anywhere) and called the api.',
  'Claims the api saw, and what each proves:',
  ...claimLines,
  '',
  'Why would the api accept or refuse a token, and what to change? Run explain with the api\'s settings:',
  `  AUTH_TENANT_ID=${tenant.tenantId} AUTH_AUDIENCE=${tenant.apiClientId},${tenant.apiAppIdUri} AUTH_AUTHORITY_HOST=${stack.mockImds.url} \\`,
  `  API_SP_ID=${model.applications[0]?.servicePrincipal.id} APP_ROLE_ID=${model.applications[0]?.appRoles[0]?.id} \\`,
  '    npm run -s explain -- --keys <token>     (or - to read it from stdin)',
  `  a token as the caller gets it: curl -s -H Metadata:true "${stack.mockImds.url}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=${tenant.apiAppIdUri}"`,
  '',
  `caller     ${stack.caller.url}/call      (try it again: curl ${stack.caller.url}/call)`,
  `api        ${stack.api.url}/claims    (needs a bearer token)`,
  `mock-imds  ${stack.mockImds.url}/metadata/identity/oauth2/token`,
  `metrics    ${stack.caller.url}/metrics  ${stack.api.url}/metrics  ${stack.mockImds.url}/metrics`,
  '',
  'Press Ctrl-C to stop.',
  ''
].join('\n'))
