import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import fastifyEntraAuth, { EntraAuthOptionsError, resolveOptions, type FastifyEntraAuthOptions } from '../src/index.ts'
import { API_CLIENT_ID, TENANT } from './helpers/authority.ts'

const base: FastifyEntraAuthOptions = { tenants: [TENANT], audiences: [API_CLIENT_ID] }

/** Resolves options that are wrong on purpose (the types would refuse them in a literal). */
const resolve = (override: Record<string, unknown>) => resolveOptions({ ...base, ...override } as unknown as FastifyEntraAuthOptions)

function refuses (override: Record<string, unknown>, option: string, message: RegExp) {
  assert.throws(() => resolve(override), (error: unknown) => {
    assert.ok(error instanceof EntraAuthOptionsError, `${option}: ${String(error)}`)
    assert.equal(error.option, option)
    assert.match(error.message, message)
    return true
  })
}

test('an unknown option name, top level or nested, is refused naming its path (and the near spelling)', () => {
  refuses({ clockSkewMS: 1 }, 'clockSkewMS', /option clockSkewMS is not an option \(did you mean clockSkewMs\?\)/)
  refuses({ jwks: { refreshIntervalMS: 1 } }, 'jwks.refreshIntervalMS', /option jwks\.refreshIntervalMS is not an option \(did you mean jwks\.refreshIntervalMs\?\)/)
  refuses({ tokenCache: { ttl: 5 } }, 'tokenCache.ttl', /is not an option; known: size, maxBytes, ttlMs/)
  refuses({ tenant: [TENANT] }, 'tenant', /is not an option/)
  refuses({ jwks: 5 }, 'jwks', /must be an object, got number 5/)
  refuses({ tokenCache: [] }, 'tokenCache', /must be an object, got an array/)
})

test('a value of the wrong type says which type it must be and which it got', () => {
  refuses({ clockSkewMs: '300000' }, 'clockSkewMs', /must be a number \(an integer from 0 to 3600000\), got a string \("300000"\)/)
  refuses({ jwks: { cooldownMs: '1000' } }, 'jwks.cooldownMs', /must be a number .*got a string/)
  refuses({ tenants: TENANT }, 'tenants', /must be an array of tenant ids \(GUIDs\), or the string '\*' for any tenant, got a string/)
  refuses({ audiences: API_CLIENT_ID }, 'audiences', /must be an array of audiences .*got a string/)
  refuses({ audiences: [API_CLIENT_ID, 5] }, 'audiences', /got an item that is number 5/)
  refuses({ tokenVersions: '2.0' }, 'tokenVersions', /must be an array .*got a string/)
  refuses({ authorityHost: 42 }, 'authorityHost', /must be a string/)
  refuses({ signingKeysAppId: 42 }, 'signingKeysAppId', /must be a string/)
  // The documented multi-tenant form is still accepted.
  assert.equal(resolve({ tenants: '*' }).tenants, '*')
})

test('registering with a misspelled option fails instead of serving with the default', async () => {
  for (const override of [{ clockSkewMS: 1 }, { jwks: { refreshIntervalMS: 1 } }]) {
    const app = Fastify({ logger: false })
    await assert.rejects(async () => {
      await app.register(fastifyEntraAuth, { ...base, registry: new Registry(), authorityHost: 'http://127.0.0.1:9', ...override } as FastifyEntraAuthOptions).ready()
    }, EntraAuthOptionsError)
    await app.close()
  }
})
