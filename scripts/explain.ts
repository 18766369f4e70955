/*
 * npm run explain -- [options] <token | ->: the auth package's entra-explain with the msi-pair api's
 * settings: the same AUTH_* environment variables, and where one is unset, the api's own default
 * (services/api/src/config.ts: AUTH_REQUIRED_ROLES=DoAll, both token versions, ...). Flags still win.
 */
import { text } from 'node:stream/consumers'
import { runExplainCli } from '../packages/fastify-entra-auth/src/explain/cli.ts'
import { ApiConfigSchema } from '../services/api/src/config.ts'

const defaults: Record<string, string> = {}
for (const name of ['AUTH_REQUIRED_ROLES', 'AUTH_ACCEPTED_TOKEN_VERSIONS', 'AUTH_AUTHORITY_HOST', 'AUTH_MAX_TOKEN_BYTES'] as const) {
  const fallback = (ApiConfigSchema.properties[name] as { default?: unknown }).default
  if (fallback !== undefined) defaults[name] = String(fallback)
}

process.exitCode = await runExplainCli(process.argv.slice(2), { ...defaults, ...process.env }, {
  stdin: () => text(process.stdin),
  stdout: (output) => { process.stdout.write(output) },
  stderr: (output) => { process.stderr.write(output) }
})
