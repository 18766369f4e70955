import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { test } from 'node:test'

// fastify and prom-client are optional peers: only the ./fastify entry may load them. A consumer
// with @azure/identity alone must be able to import the main entry. Checked in a child process
// whose module resolution fails for fastify and prom-client, so that any import of them, however
// indirect, breaks the import.
const script = `
import { registerHooks } from 'node:module'
registerHooks({ resolve (specifier, context, next) {
  if (/^(fastify|fastify-plugin|prom-client)(\\/|$)/.test(specifier)) throw new Error('the main entry imported ' + specifier)
  return next(specifier, context)
} })
const entry = await import(process.argv[1])
console.log(JSON.stringify(Object.keys(entry).sort()))
`

test('the main entry imports neither fastify nor prom-client, and exports exactly its public API', () => {
  const entry = fileURLToPath(new URL('../src/index.ts', import.meta.url))
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script, entry], { encoding: 'utf8' })
  assert.equal(result.status, 0, result.stderr)
  assert.deepEqual(JSON.parse(result.stdout), ['AbortError', 'IdentityEndpointError', 'ManagedIdentityTokenProvider', 'TokenUnavailableError', 'defaultHints'])
})

test('the check fails when an entry does import them (the ./fastify entry)', () => {
  const entry = fileURLToPath(new URL('../src/fastify.ts', import.meta.url))
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script, entry], { encoding: 'utf8' })
  assert.notEqual(result.status, 0)
  assert.match(result.stderr, /the main entry imported (fastify|fastify-plugin|prom-client)/)
})
