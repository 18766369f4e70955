// npx node bench/micro/verify.ts [--ms 300] [--rounds 5]
// What one RS256 signature check costs, done the ways the api could do it, on the same Entra-shaped
// tokens, interleaved round after round so that a busy machine slows every way alike. Each way
// gets a different token per call (no cache can answer). Read the ratios; bench/README.md quotes them.
import { constants, createPublicKey, createVerify, verify as cryptoVerify } from 'node:crypto'
import { parseArgs } from 'node:util'
import { createVerifier } from 'fast-jwt'
import { TokenMint } from '../lib/issuer.ts'

const { values: args } = parseArgs({ options: { ms: { type: 'string', default: '300' }, rounds: { type: 'string', default: '5' } } })
const mint = new TokenMint()
const valid = mint.tokens('valid', 2000)
const forged = mint.tokens('badSignature', 2000)
const keyObject = createPublicKey({ key: { kty: 'RSA', n: mint.key.jwk.n, e: mint.key.jwk.e }, format: 'jwk' })
const pem = keyObject.export({ type: 'spki', format: 'pem' }) as string
const fastJwt = createVerifier({ key: pem, algorithms: ['RS256'], cache: false, clockTolerance: 300_000 })
const fastJwtCached = createVerifier({ key: pem, algorithms: ['RS256'], cache: 1000, clockTolerance: 300_000 })

const split = (token: string) => {
  const dot = token.lastIndexOf('.')
  return { input: Buffer.from(token.slice(0, dot)), signature: Buffer.from(token.slice(dot + 1), 'base64url') }
}
const splitValid = valid.map(split)
const splitForged = forged.map(split)

const ways: Record<string, (i: number) => unknown> = {
  'fast-jwt verifier (PEM, cache off), valid': (i) => fastJwt(valid[i % valid.length] as string),
  'fast-jwt verifier (PEM, cache 1000: a miss, hashed and stored), valid': (i) => fastJwtCached(valid[i % valid.length] as string),
  'fast-jwt verifier (PEM, cache off), forged: throws TokenError': (i) => { try { return fastJwt(forged[i % forged.length] as string) } catch (error) { return error } },
  'crypto.verify(KeyObject), valid': (i) => { const t = splitValid[i % splitValid.length]; return cryptoVerify('sha256', t?.input as Buffer, keyObject, t?.signature as Buffer) },
  'crypto.verify(KeyObject), forged: false': (i) => { const t = splitForged[i % splitForged.length]; return cryptoVerify('sha256', t?.input as Buffer, keyObject, t?.signature as Buffer) },
  'crypto.verify({ key: KeyObject, padding }) (as fast-jwt passes it), valid': (i) => {
    const t = splitValid[i % splitValid.length]
    return cryptoVerify('sha256', t?.input as Buffer, { key: keyObject, padding: constants.RSA_PKCS1_PADDING }, t?.signature as Buffer)
  },
  'createVerify().verify({ key: PEM, padding }) (fast-jwt\'s call), valid': (i) => {
    const t = splitValid[i % splitValid.length]
    return createVerify('RSA-SHA256').update(t?.input as Buffer).verify({ key: pem, padding: constants.RSA_PKCS1_PADDING }, t?.signature as Buffer)
  }
}

const results = new Map<string, number[]>()
for (let round = 0; round < Number(args.rounds); round++) {
  for (const [name, fn] of Object.entries(ways)) {
    let i = 0
    const until = performance.now() + Number(args.ms)
    const cpu = process.cpuUsage()
    while (performance.now() < until) for (let k = 0; k < 20; k++) fn(i++)
    const used = process.cpuUsage(cpu)
    if (round > 0) results.set(name, [...(results.get(name) ?? []), (used.user + used.system) / i]) // round 0 warms up
  }
}
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0
const base = median(results.get('crypto.verify(KeyObject), valid') ?? [])
process.stdout.write(`| way | CPU µs per call (median of ${Number(args.rounds) - 1} rounds) | ÷ crypto.verify(KeyObject) |\n|---|--:|--:|\n`)
for (const [name, values] of results) process.stdout.write(`| ${name} | ${median(values).toFixed(1)} | ${(median(values) / base).toFixed(2)}x |\n`)
