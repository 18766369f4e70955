import { createHmac, generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'

/*
 * A stand-in for Entra's discovery documents and JWKS that tests control completely: which keys are
 * published (per tenant, v1 and v2), what every key claims as its issuer, outages (status, hang,
 * garbage), and how many requests each document received. Attack tokens are signed here by hand.
 */

export const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47'
export const OTHER_TENANT = 'f8cdef31-a31e-4b4a-93e4-5f571e91255a'
export const API_CLIENT_ID = '6e74172b-be56-4843-9ff4-e66a39bb12e3'
export const API_APP_ID_URI = 'api://msi-pair-api'
export const CALLER_CLIENT_ID = '00001111-aaaa-4222-bbbb-3333cccc4444'
export const CALLER_OBJECT_ID = '11112222-bbbb-4333-cccc-4444dddd5555'
export const MIRID = '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/caller'

export const v2Issuer = (tenant: string) => `https://login.microsoftonline.com/${tenant}/v2.0`
export const v1Issuer = (tenant: string) => `https://sts.windows.net/${tenant}/`

export interface TestKey {
  kid: string
  privateKey: KeyObject
  publicKey: KeyObject
  /** The issuer member the v2 JWKS gives this key (Entra: the {tenantid} template). */
  jwksIssuer: string | undefined
}

export function createTestKey (options: { kid?: string, jwksIssuer?: string | null, modulusLength?: number } = {}): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: options.modulusLength ?? 2048 })
  return {
    kid: options.kid ?? randomUUID().replaceAll('-', ''),
    privateKey,
    publicKey,
    jwksIssuer: options.jwksIssuer === null ? undefined : options.jwksIssuer ?? 'https://login.microsoftonline.com/{tenantid}/v2.0'
  }
}

/** base64url of a string as is, or of any other value's JSON: a JWT segment. */
export const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

/** The JOSE header Entra writes (RS256, typ JWT, the key's kid), with overrides. */
export const jwtHeader = (key: TestKey, extra: Record<string, unknown> = {}) => ({ alg: 'RS256', typ: 'JWT', kid: key.kid, ...extra })

/** Signs header.payload as given (objects or raw JSON text), with the real algorithm named or forced. */
export function signRaw (header: Record<string, unknown> | string, payload: Record<string, unknown> | string, key: KeyObject | Buffer | string, algorithm: 'RS256' | 'RS512' | 'PS256' | 'HS256' = 'RS256'): string {
  const input = `${b64(header)}.${b64(payload)}`
  let signature: Buffer
  if (algorithm === 'HS256') signature = createHmac('sha256', key as Buffer | string).update(input).digest()
  else if (algorithm === 'PS256') signature = sign('sha256', Buffer.from(input), { key: key as KeyObject, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 })
  else signature = sign(algorithm === 'RS512' ? 'sha512' : 'sha256', Buffer.from(input), key as KeyObject)
  return `${input}.${signature.toString('base64url')}`
}

/** An app-only access token as Entra issues to a managed identity, v2 unless claims say otherwise. */
export function appClaims (overrides: Record<string, unknown> = {}, version: '1.0' | '2.0' = '2.0', tenant = TENANT): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000)
  const common = {
    iat: now - 300,
    nbf: now - 300,
    exp: now + 3600,
    aio: 'k2BgYGiZ3aio',
    idtyp: 'app',
    oid: CALLER_OBJECT_ID,
    rh: '0.AAAA.',
    roles: ['DoAll'],
    sub: CALLER_OBJECT_ID,
    tid: tenant,
    uti: randomUUID(),
    xms_mirid: MIRID
  }
  const versioned = version === '2.0'
    ? { aud: API_CLIENT_ID, iss: v2Issuer(tenant), azp: CALLER_CLIENT_ID, azpacr: '2', ver: '2.0' }
    : { aud: API_APP_ID_URI, iss: v1Issuer(tenant), appid: CALLER_CLIENT_ID, appidacr: '2', ver: '1.0' }
  return { ...versioned, ...common, ...overrides }
}

export function mint (key: TestKey, claims: Record<string, unknown> = appClaims(), header: Record<string, unknown> = {}): string {
  return signRaw(jwtHeader(key, header), claims, key.privateKey)
}

export type Fault = { kind: 'status', status: number } | { kind: 'hang' } | { kind: 'garbage' } | null

interface TenantState { v1: TestKey[], v2: TestKey[] }

export interface TestAuthorityOptions {
  /** Serve https with this key and certificate (PEM) instead of http. */
  https?: { key: string, cert: string }
  /** The origin the discovery documents name in jwks_uri (default: the origin the request came to). */
  jwksOrigin?: string
}

export class TestAuthority {
  readonly app: FastifyInstance
  url = ''
  readonly tenants = new Map<string, TenantState>()
  /** Requests per path, e.g. `/${TENANT}/discovery/v2.0/keys`. */
  readonly requests = new Map<string, number>()
  /** Every request URL as received, query included. */
  readonly urls: string[] = []
  /**
   * Keys of apps with their own signing key (claims mapping), by app id: listed, with the tenant's keys,
   * only by the documents read with `?appid=<app id>` (Microsoft Learn, access-tokens).
   */
  readonly appKeys = new Map<string, TestKey[]>()
  /** The origin the discovery documents name in jwks_uri (undefined: the origin the request came to). */
  jwksOrigin: string | undefined
  /** Keys served for any tenant id not published explicitly (a GUID), as if every tenant existed. */
  anyTenantKeys: TestKey[] | undefined

  private stateOf (tenant: string): TenantState | undefined {
    const state = this.tenants.get(tenant)
    if (state !== undefined || this.anyTenantKeys === undefined || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(tenant)) return state
    return { v1: this.anyTenantKeys, v2: this.anyTenantKeys }
  }

  fault: Fault = null
  /** Which documents the fault applies to. */
  faultTargets: Array<'discovery' | 'jwks'> = ['discovery', 'jwks']

  constructor (options: TestAuthorityOptions = {}) {
    this.app = Fastify({ logger: false, forceCloseConnections: true, ...(options.https ? { https: options.https } : {}) }) as unknown as FastifyInstance
    this.jwksOrigin = options.jwksOrigin
    const serve = (kind: 'discovery' | 'jwks', version: '1.0' | '2.0', body: (tenant: string, host: string, appId: string | undefined) => unknown) =>
      async (request: FastifyRequest<{ Params: { tenant: string }, Querystring: { appid?: string } }>, reply: FastifyReply) => {
        const path = request.url.split('?')[0] as string
        this.requests.set(path, (this.requests.get(path) ?? 0) + 1)
        this.urls.push(request.url)
        if (this.fault && this.faultTargets.includes(kind)) {
          if (this.fault.kind === 'hang') return await new Promise(() => {})
          if (this.fault.kind === 'garbage') return reply.type('text/html').send('<html>503 Service Unavailable</html>')
          return reply.code(this.fault.status).type('text/html').send('<html>error</html>')
        }
        if (!this.stateOf(request.params.tenant)) return reply.code(400).send({ error: 'invalid_tenant' })
        return body(request.params.tenant, `${request.protocol}://${request.host}`, request.query.appid)
      }
    const discovery = (version: '1.0' | '2.0') => (tenant: string, host: string, appId: string | undefined) => ({
      // The tenant-independent documents name the {tenantid} template, as Entra's /common ones do.
      issuer: (version === '2.0' ? v2Issuer : v1Issuer)(tenant === 'common' ? '{tenantid}' : tenant),
      jwks_uri: `${this.jwksOrigin ?? host}/${tenant}/discovery/${version === '2.0' ? 'v2.0/' : ''}keys${appId === undefined ? '' : `?appid=${appId}`}`,
      id_token_signing_alg_values_supported: ['RS256']
    })
    const withAppKeys = (keys: TestKey[], appId: string | undefined) => [...(appId === undefined ? [] : this.appKeys.get(appId) ?? []), ...keys]
    type Route = { Params: { tenant: string }, Querystring: { appid?: string } }
    this.app.get<Route>('/:tenant/v2.0/.well-known/openid-configuration', serve('discovery', '2.0', discovery('2.0')))
    this.app.get<Route>('/:tenant/.well-known/openid-configuration', serve('discovery', '1.0', discovery('1.0')))
    this.app.get<Route>('/:tenant/discovery/v2.0/keys', serve('jwks', '2.0', (tenant, _host, appId) => ({
      keys: withAppKeys((this.stateOf(tenant) as TenantState).v2, appId).map((key) => ({ ...publicJwk(key), ...(key.jwksIssuer ? { issuer: key.jwksIssuer } : {}) }))
    })))
    this.app.get<Route>('/:tenant/discovery/keys', serve('jwks', '1.0', (tenant, _host, appId) => ({
      keys: withAppKeys((this.stateOf(tenant) as TenantState).v1, appId).map((key) => publicJwk(key))
    })))
  }

  static async start (tenants: Record<string, TestKey[]> = {}, options: TestAuthorityOptions = {}): Promise<TestAuthority> {
    const authority = new TestAuthority(options)
    for (const [tenant, keys] of Object.entries(tenants)) authority.publish(tenant, keys)
    authority.url = await authority.app.listen({ host: '127.0.0.1', port: 0 })
    return authority
  }

  /** Publishes exactly these keys in both the v1 and v2 JWKS of a tenant (as Entra does). */
  publish (tenant: string, keys: TestKey[]) {
    this.tenants.set(tenant, { v1: [...keys], v2: [...keys] })
  }

  jwksRequests (tenant = TENANT, version: '1.0' | '2.0' = '2.0'): number {
    return this.requests.get(`/${tenant}/discovery/${version === '2.0' ? 'v2.0/' : ''}keys`) ?? 0
  }

  async stop () {
    await this.app.close()
  }
}

export function publicJwk (key: TestKey) {
  const { n, e } = key.publicKey.export({ format: 'jwk' })
  return { kty: 'RSA', use: 'sig', kid: key.kid, x5t: key.kid, n, e }
}

/**
 * The keys of the attack catalogue (shared/research/entra-token-validation.md §6) that attacks.test.ts
 * lays out and explain-agreement.test.ts rebuilds: one place, so the two name the same keys.
 */
export interface CatalogueKeys {
  /** The tenant's signing key, published by TENANT and by OTHER_TENANT. */
  entra: TestKey
  /** A key Entra publishes for one exact issuer only (like the MSA tenant's key). */
  msaKey: TestKey
  /** A key Entra would list in TENANT's v1 JWKS only (so no v2 entry names its issuer). */
  v1OnlyKey: TestKey
  /** OTHER_TENANT's own key. */
  otherTenantKey: TestKey
  /** Published nowhere, with entra's kid. */
  attackerKey: TestKey
}

export function createCatalogueKeys (): CatalogueKeys {
  const entra = createTestKey()
  return {
    entra,
    msaKey: createTestKey({ jwksIssuer: 'https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0' }),
    v1OnlyKey: createTestKey(),
    otherTenantKey: createTestKey(),
    attackerKey: createTestKey({ kid: entra.kid })
  }
}

/** An authority that publishes the catalogue's keys as CatalogueKeys describes them. */
export async function startCatalogueAuthority (keys: CatalogueKeys): Promise<TestAuthority> {
  const authority = await TestAuthority.start({ [TENANT]: [keys.entra, keys.msaKey], [OTHER_TENANT]: [keys.otherTenantKey, keys.entra] })
  authority.tenants.get(TENANT)?.v1.push(keys.v1OnlyKey)
  return authority
}
