#!/usr/bin/env node
/*
 * mock-imds [--tenant file] [--port n] [--admin-port n] ...: every flag mirrors an environment
 * variable (a flag wins), so the same server runs from npx, a container or another language's tests.
 * Exit codes: 0 after --help / --version or a graceful close; 64 (EX_USAGE) for a bad flag or flag
 * value; 78 (EX_CONFIG) for a bad environment variable or tenant file.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import closeWithGrace from 'close-with-grace'
import { MockImdsConfigError, parseSetting, resolveOptions, settings, type MockImdsOptions, type ResolvedOptions } from './options.ts'
import { buildApp } from './app.ts'

const EX_USAGE = 64
const EX_CONFIG = 78

function fail (code: number, message: string): never {
  process.stderr.write(`mock-imds: ${message}\nRun mock-imds --help for the flags.\n`)
  process.exit(code)
}

function usage (): string {
  const width = Math.max(...settings.map((s) => s.flag.length)) + 8
  const lines = settings.map((s) =>
    `  --${`${s.flag} <${s.type === 'integer' ? 'n' : 'value'}>`.padEnd(width)} ${s.env.padEnd(34)} default: ${s.defaultText}\n` +
    `  ${''.padEnd(width + 2)} ${s.meaning}`)
  return [
    'Usage: mock-imds [options]',
    '',
    'A local Azure IMDS, App Service / Container Apps identity endpoint and Entra discovery + JWKS.',
    'Each option can also be set by the environment variable next to it; a flag wins over its variable.',
    '',
    `  ${'flag'.padEnd(width + 2)} environment variable`,
    ...lines,
    `  ${'--help, -h'.padEnd(width + 2)} print this and exit`,
    `  ${'--version, -v'.padEnd(width + 2)} print the version and exit`,
    '',
    'Example:',
    '  mock-imds --tenant tenant.yaml --port 3002 --admin-port 3012',
    '  AZURE_POD_IDENTITY_AUTHORITY_HOST=http://127.0.0.1:3002 node my-app.js',
    ''
  ].join('\n')
}

const flags = {
  ...Object.fromEntries(settings.map((s) => [s.flag, { type: 'string' as const }])),
  help: { type: 'boolean' as const, short: 'h' },
  version: { type: 'boolean' as const, short: 'v' }
}
let values: Record<string, string | boolean | undefined> = {}
try {
  values = parseArgs({ options: flags, strict: true, allowPositionals: false }).values
} catch (error) {
  fail(EX_USAGE, (error as Error).message)
}

if (values.help === true) {
  process.stdout.write(usage())
  process.exit(0)
}
if (values.version === true) {
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  process.stdout.write(`${version}\n`)
  process.exit(0)
}

// Flag, else variable; remember which one each value came from, so that an error names what the user wrote.
const options: Record<string, unknown> = {}
const names: Partial<Record<keyof MockImdsOptions, string>> = {}
for (const setting of settings) {
  const flag = values[setting.flag]
  if (typeof flag === 'string') {
    options[setting.option] = parseSetting(setting, flag)
    names[setting.option] = `--${setting.flag}`
    continue
  }
  const variable = process.env[setting.env]
  if (variable !== undefined && variable !== '') {
    options[setting.option] = parseSetting(setting, variable)
    names[setting.option] = setting.env
  }
}

let resolved: ResolvedOptions
try {
  resolved = resolveOptions(options as MockImdsOptions, names)
} catch (error) {
  if (!(error instanceof MockImdsConfigError)) throw error
  // A flag's own value is a usage error; a variable, or the content of a tenant file, is configuration.
  fail(/^--/.test(error.message) && !error.message.startsWith('--tenant: ') ? EX_USAGE : EX_CONFIG, error.message)
}

const app = await buildApp(resolved)
closeWithGrace({ delay: Number(process.env.CLOSE_GRACE_DELAY_MS ?? 10_000) }, async ({ signal, err }) => {
  if (err) app.log.error({ err }, 'closing after an unexpected error')
  else app.log.info({ signal }, 'closing')
  await app.close()
})
await app.listen({ host: resolved.host, port: resolved.port })
