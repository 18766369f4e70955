/*
 * npm start: mock-imds, api and caller as local processes, then the seed's "click Run":
 * the caller gets a token with no secret, calls the api, and the claims the api saw are printed.
 * The stack keeps running until Ctrl-C.
 */
import { startLocalStack } from './lib/local-stack.ts'

const port = (name: string, fallback: number) => Number(process.env[name] ?? fallback)
const ports = { caller: port('CALLER_PORT', 3000), api: port('API_PORT', 3001), mockImds: port('MOCK_IMDS_PORT', 3002) }
const shown = ['aud', 'iss', 'appid', 'azp', 'roles', 'oid', 'tid', 'idtyp', 'ver']

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
const claims = Object.fromEntries(shown.filter((name) => name in body).map((name) => [name, body[name]]))
process.stdout.write([
  '',
  'The caller got a token from its managed identity (no secret anywhere) and called the api.',
  'Claims the api saw:',
  JSON.stringify(claims, null, 2),
  '',
  `caller     ${stack.caller.url}/call      (try it again: curl ${stack.caller.url}/call)`,
  `api        ${stack.api.url}/claims    (needs a bearer token)`,
  `mock-imds  ${stack.mockImds.url}/metadata/identity/oauth2/token`,
  `metrics    ${stack.caller.url}/metrics  ${stack.api.url}/metrics  ${stack.mockImds.url}/metrics`,
  '',
  'Press Ctrl-C to stop.',
  ''
].join('\n'))
