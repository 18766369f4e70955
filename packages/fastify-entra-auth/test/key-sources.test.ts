import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from 'node:tls'
import { describe, test } from 'node:test'
import { Agent, setGlobalDispatcher, getGlobalDispatcher } from 'undici'
import { ENTRA_CLOUD_HOSTS, cloudHostsOf, jwksUriAllowed } from '../src/index.ts'
import { API_CLIENT_ID, TENANT, TestAuthority, appClaims, createTestKey, mint } from './helpers/authority.ts'
import { startApp } from './helpers/app.ts'

/*
 * Where keys come from (issue 12): app-specific signing keys (discovery read with ?appid=) and national
 * clouds (jwks_uri on another login host of the same cloud, over https only).
 */

const bearer = (token: string) => `Bearer ${token}`

describe('app-specific signing keys (signingKeysAppId)', () => {
  test('without the setting, a token signed with the app\'s own key is 401 unknown_key; with it, accepted (v1 and v2)', async (t) => {
    const tenantKey = createTestKey()
    const appKey = createTestKey()
    const authority = await TestAuthority.start({ [TENANT]: [tenantKey] })
    t.after(() => authority.stop())
    authority.appKeys.set(API_CLIENT_ID, [appKey])

    const plain = await startApp(authority.url)
    t.after(() => plain.app.close())
    const refused = await plain.get(bearer(mint(appKey)))
    assert.equal(refused.statusCode, 401)
    assert.match(String(refused.headers['www-authenticate']), /error="invalid_token", error_description="the signature key was not found"/)
    assert.ok(authority.urls.every((url) => !url.includes('appid=')))

    const withAppKeys = await startApp(authority.url, { signingKeysAppId: API_CLIENT_ID.toUpperCase() })
    t.after(() => withAppKeys.app.close())
    assert.equal((await withAppKeys.get(bearer(mint(appKey)))).statusCode, 200)
    assert.equal((await withAppKeys.get(bearer(mint(appKey, appClaims({}, '1.0'))))).statusCode, 200)
    assert.equal((await withAppKeys.get(bearer(mint(tenantKey)))).statusCode, 200, 'the tenant\'s keys stay listed')
    for (const path of [`/${TENANT}/v2.0/.well-known/openid-configuration`, `/${TENANT}/.well-known/openid-configuration`, `/${TENANT}/discovery/v2.0/keys`, `/${TENANT}/discovery/keys`]) {
      assert.ok(authority.urls.includes(`${path}?appid=${API_CLIENT_ID}`), `${path}?appid= was read`)
    }
  })
})

describe('national clouds: jwks_uri on the login hosts of the configured cloud, https only', () => {
  test('the host lists: each cloud\'s authority host is in its group; a mock is its own origin only', () => {
    assert.deepEqual(cloudHostsOf(new URL('https://login.microsoftonline.com')), ENTRA_CLOUD_HOSTS[0])
    assert.ok(cloudHostsOf(new URL('https://login.microsoftonline.us'))?.includes('login.usgovcloudapi.net'))
    assert.ok(cloudHostsOf(new URL('https://login.chinacloudapi.cn'))?.includes('login.partner.microsoftonline.cn'))
    assert.equal(cloudHostsOf(new URL('http://login.microsoftonline.com')), undefined, 'http is never an Entra login host')
    assert.equal(cloudHostsOf(new URL('http://127.0.0.1:3002')), undefined)
    const china = new URL('https://login.chinacloudapi.cn')
    assert.equal(jwksUriAllowed(china, new URL('https://login.partner.microsoftonline.cn/t/discovery/v2.0/keys')), true)
    assert.equal(jwksUriAllowed(china, new URL('https://LOGIN.CHINACLOUDAPI.CN/t/discovery/keys')), true)
    for (const other of ['http://login.partner.microsoftonline.cn/k', 'https://login.partner.microsoftonline.cn:8443/k', 'https://login.microsoftonline.com/k',
      'https://login.microsoftonline.us/k', 'https://evil.example/k', 'https://u:p@login.chinacloudapi.cn/k', 'https://login.chinacloudapi.cn.evil.example/k']) {
      assert.equal(jwksUriAllowed(china, new URL(other)), false, other)
    }
    const mock = new URL('http://127.0.0.1:3002')
    assert.equal(jwksUriAllowed(mock, new URL('http://127.0.0.1:3002/t/discovery/keys')), true)
    assert.equal(jwksUriAllowed(mock, new URL('http://127.0.0.1:3003/t/discovery/keys')), false)
    assert.equal(jwksUriAllowed(mock, new URL('https://login.microsoftonline.com/t/discovery/keys')), false)
  })

  test('real https: a China authority whose documents name login.partner.microsoftonline.cn: keys load, tokens pass; other hosts stay refused', async (t) => {
    const openssl = spawnSync('openssl', ['version'])
    if (openssl.status !== 0) {
      if (process.env.CI === 'true') assert.fail('openssl is required in CI (test certificates)')
      t.skip('openssl not installed')
      return
    }
    const dir = mkdtempSync(join(tmpdir(), 'entra-clouds-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const hosts = ['login.chinacloudapi.cn', 'login.partner.microsoftonline.cn', 'login.microsoftonline.us', 'evil.example']
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=entra-test',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-addext', `subjectAltName=${hosts.map((h) => `DNS:${h}`).join(',')}`], { encoding: 'utf8' })
    assert.equal(made.status, 0, made.stderr)
    const cert = readFileSync(join(dir, 'cert.pem'), 'utf8')
    const key = createTestKey()
    const authority = await TestAuthority.start({ [TENANT]: [key] }, { https: { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert }, jwksOrigin: 'https://login.partner.microsoftonline.cn' })
    t.after(() => authority.stop())
    // Real TLS and real fetch; only name resolution and the port are ours: every host reaches the test authority.
    const port = Number(new URL(authority.url).port)
    const previous = getGlobalDispatcher()
    setGlobalDispatcher(new Agent({
      connect: (options, callback) => {
        const socket = connect({ host: '127.0.0.1', port, servername: options.servername ?? options.hostname, ca: cert })
        socket.once('secureConnect', () => { callback(null, socket) })
        socket.once('error', (error) => { callback(error, null) })
        return socket
      }
    }))
    t.after(() => { setGlobalDispatcher(previous) })

    const china = await startApp('https://login.chinacloudapi.cn', { jwks: { fetchTimeoutMs: 2000, retryMaxMs: 60_000 } })
    t.after(() => china.app.close())
    assert.equal(china.app.entraAuth.notReadyReason(), null)
    assert.equal((await china.get(bearer(mint(key)))).statusCode, 200)
    assert.equal((await china.get(bearer(mint(key, appClaims({}, '1.0'))))).statusCode, 200)
    assert.ok(authority.urls.includes(`/${TENANT}/discovery/v2.0/keys`))

    for (const origin of ['https://login.microsoftonline.us', 'http://login.partner.microsoftonline.cn', 'https://evil.example', 'https://login.partner.microsoftonline.cn:8443']) {
      authority.jwksOrigin = origin
      const before = authority.urls.length
      const api = await startApp('https://login.chinacloudapi.cn', { jwks: { fetchTimeoutMs: 2000, retryMaxMs: 60_000 } })
      t.after(() => api.app.close())
      assert.match(String(api.app.entraAuth.notReadyReason()), /signing keys not loaded yet/, origin)
      const response = await api.get(bearer(mint(key)))
      assert.equal(response.statusCode, 503, origin)
      assert.ok(api.logs.some((line) => /is not a login host of the authority https:\/\/login\.chinacloudapi\.cn's cloud/.test(String(line.error))), origin)
      assert.ok(authority.urls.slice(before).every((url) => url.includes('openid-configuration')), `${origin}: no JWKS fetched`)
    }
  })
})
