import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TENANT, TestAuthority, createTestKey, mint } from './helpers/authority.ts'
import { startApp } from './helpers/app.ts'

// RFC 6750 §2.3 (URI query parameter) is a method this api does not support; §3.1: a request that
// "includes an unsupported parameter" is invalid_request, 400. The answer is the same whether the
// token is only in the query or in the header too, and tells the client where the token goes.
test('a token sent as ?access_token= gets 400 invalid_request saying to use the Authorization header, with or without a header', async (t) => {
  const key = createTestKey()
  const authority = await TestAuthority.start({ [TENANT]: [key] })
  t.after(() => authority.stop())
  const api = await startApp(authority.url)
  t.after(() => api.app.close())
  const token = mint(key)
  const description = 'send the token in the Authorization header only'
  for (const [authorization, path] of [[undefined, `/claims?access_token=${token}`], [`Bearer ${token}`, `/claims?x=1&access_token=${token}`]] as const) {
    const response = await api.get(authorization, path)
    assert.equal(response.statusCode, 400, `${authorization === undefined ? 'query only' : 'both'}: ${response.body}`)
    assert.equal(response.headers['www-authenticate'], `Bearer error="invalid_request", error_description="${description}"`)
    assert.deepEqual(response.json(), { error: 'invalid_request', error_description: description })
  }
  // The header alone is accepted, so the 400 above is the query's doing.
  assert.equal((await api.get(`Bearer ${token}`)).statusCode, 200)
})
