import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { TestContext } from 'node:test'
import { ManagedIdentityEndpoint } from '../src/endpoint.ts'
import { IdentityEndpointError, type FailureReason } from '../src/errors.ts'

/** An error answer some platform's identity endpoint gives, what it means, and where it is seen. */
export interface ErrorAnswer {
  name: string
  status: number
  body: string
  headers?: Record<string, string>
  reason: FailureReason
  /** What the hint must say. */
  hint: RegExp
  source: string
}

const json = (value: unknown) => JSON.stringify(value)

/**
 * The error answers of IMDS, App Service / Functions and Container Apps seen in Microsoft's docs and
 * public reports. The meaning does not depend on the flavour a body arrives through, so each runs
 * through both (IMDS and the identity endpoint).
 */
export const errorAnswers: ErrorAnswer[] = [
  {
    name: 'IMDS 400 Identity not found',
    status: 400,
    body: json({ error: 'invalid_request', error_description: 'Identity not found' }),
    reason: 'identity_not_found',
    hint: /AZURE_CLIENT_ID/,
    source: 'learn.microsoft.com: AKS Key Vault CSI troubleshooting (wrong client_id); research note §1.3'
  },
  {
    name: 'IMDS 400 several user-assigned identities, none selected',
    status: 400,
    body: json({ error: 'invalid_request', error_description: 'Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request' }),
    reason: 'identity_not_found',
    hint: /AZURE_CLIENT_ID/,
    source: 'public reports; research note §1.3'
  },
  {
    name: 'App Service / Functions / Container Apps 400 Unable to load the proper Managed Identity',
    status: 400,
    body: json({ statusCode: 400, message: 'Unable to load the proper Managed Identity.', correlationId: 'bf68136a-73f7-4ca4-9903-9ee8af3ab2ee' }),
    reason: 'identity_not_found',
    hint: /AZURE_CLIENT_ID/,
    source: 'Azure/azure-sdk-for-net#43691 (Functions), microsoft/azure-container-apps#442; issue 13 item 2'
  },
  {
    name: 'IMDS 400 invalid_resource AADSTS500011',
    status: 400,
    body: json({
      error: 'invalid_resource',
      error_description: 'AADSTS500011: The resource principal named api://unknown was not found in the tenant named 72f988bf-86f1-41af-91ab-2d7cd011db47. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.\r\nTrace ID: 0\r\nCorrelation ID: 0\r\nTimestamp: 2024-01-01 00:00:00Z',
      error_codes: [500011]
    }),
    reason: 'invalid_resource',
    hint: /scope/,
    source: 'AzureAD/microsoft-authentication-library-for-dotnet#3979'
  },
  {
    name: 'IMDS 400 Required metadata header not specified',
    status: 400,
    body: json({ error: 'invalid_request', error_description: 'Required metadata header not specified' }),
    reason: 'bad_request',
    hint: /proxy/,
    source: 'learn.microsoft.com: IMDS errors (bad_request_102); Azure/azure-sdk-for-js#11369 (88-byte 400)'
  },
  {
    name: 'IMDS 400 api-version invalid',
    status: 400,
    body: json({ error: 'Bad request. api-version is invalid or was not specified in the request. For more information refer to aka.ms/azureimds', 'newest-versions': ['2023-07-01'] }),
    reason: 'bad_request',
    hint: /malformed/,
    source: 'learn.microsoft.com: Azure Instance Metadata Service, versioning'
  },
  {
    name: 'Container Apps 400 UnsupportedApiVersion (ASP.NET shape)',
    status: 400,
    body: json({ error: { code: 'UnsupportedApiVersion', message: "The HTTP resource that matches the request URI 'http://localhost:42356/msi/token' does not support the API version '2017-09-01'." } }),
    reason: 'bad_request',
    hint: /malformed/,
    source: 'microsoft/azure-container-apps#297'
  },
  {
    name: 'App Service 400 with an empty body',
    status: 400,
    body: '',
    reason: 'bad_request',
    hint: /malformed/,
    source: 'Azure/azure-sdk-for-net#32786'
  },
  {
    name: 'Container Apps 403 with an empty body (no X-IDENTITY-HEADER)',
    status: 403,
    body: '',
    reason: 'unauthorized',
    hint: /IDENTITY_HEADER/,
    source: 'AzureAD/microsoft-authentication-library-for-dotnet#5077; issue 13 item 1'
  },
  {
    name: 'App Service 401 JSON (identity header refused)',
    status: 401,
    body: json({ statusCode: 401, message: 'Unauthorized', correlationId: '00000000-0000-0000-0000-000000000000' }),
    reason: 'unauthorized',
    hint: /IDENTITY_HEADER/,
    source: 'App Service body shape (Azure/azure-sdk-for-net#43691); the status for a wrong header is not documented'
  },
  {
    name: 'Docker Desktop 403 unreachable (no IMDS)',
    status: 403,
    body: 'connecting to 169.254.169.254:80: connecting to 169.254.169.254:80: dial tcp 169.254.169.254:80: connectex: A socket operation was attempted to an unreachable network.',
    headers: { 'content-type': 'text/plain' },
    reason: 'unreachable',
    hint: /Docker Desktop/,
    source: 'Azure/azure-sdk-for-js#26898 and PR #27050'
  },
  {
    name: 'IMDS 404 (updating)',
    status: 404,
    body: '',
    reason: 'not_found',
    hint: /updating/,
    source: 'learn.microsoft.com: how-to-use-vm-token, retry guidance'
  },
  {
    name: 'IMDS 410 (restarting)',
    status: 410,
    body: '',
    reason: 'gone',
    hint: /70 s/,
    source: 'learn.microsoft.com: how-to-use-vm-token, retry guidance'
  },
  {
    name: 'IMDS 429 (throttled)',
    status: 429,
    body: json({ error: 'too_many_requests', error_description: 'Too many requests' }),
    headers: { 'retry-after': '2' },
    reason: 'throttled',
    hint: /Retry-After/,
    source: 'learn.microsoft.com: IMDS rate limiting (20 requests/s, 5 concurrent)'
  },
  {
    name: 'IMDS 500 Failed to retrieve token from the Active directory',
    status: 500,
    body: json({ error: 'unknown', error_description: 'Failed to retrieve token from the Active directory. For details see logs in C:\\WindowsAzure\\Logs\\Plugins\\Microsoft.Identity.MSI\\Msi.log' }),
    reason: 'server_error',
    hint: /retried/,
    source: 'learn.microsoft.com: how-to-use-vm-token, error handling'
  },
  {
    name: 'App Service 500 An unexpected error occured while fetching the AAD Token',
    status: 500,
    body: json({ statusCode: 500, message: 'An unexpected error occured while fetching the AAD Token.', correlationId: '8997f3a2-4774-4406-bcc2-14da6f7c387a' }),
    reason: 'server_error',
    hint: /AAD Token.*scope/,
    source: 'Azure/azure-sdk-for-net#44685, #40848'
  },
  {
    name: 'App Service (2017-09-01 API) 503 service_unavailable',
    status: 503,
    body: json({ ExceptionMessage: '', ErrorCode: 'service_unavailable', ServiceErrorCodes: null, StatusCode: 503, Message: null, CorrelationId: '8b0bb15d-11f7-4a3b-8fbb-3a55ca98a884' }),
    reason: 'server_error',
    hint: /retried/,
    source: 'microsoft/accessibility-insights-service#563'
  }
]

/**
 * Runs every answer through the real ManagedIdentityCredential (retries off, as the provider
 * builds it) against a loopback server that gives that answer, and checks the classification. The
 * SDK freezes its endpoint per process: call once per test file, with the flavour's variables.
 */
export async function classifyEach (t: TestContext, flavour: 'imds' | 'identity', answers: ErrorAnswer[] = errorAnswers): Promise<void> {
  let current: ErrorAnswer = answers[0]!
  const server = createServer((request, response) => {
    request.resume()
    response.writeHead(current.status, { 'content-type': 'application/json; charset=utf-8', ...current.headers })
    response.end(current.body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  if (flavour === 'imds') process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = url
  else Object.assign(process.env, { IDENTITY_ENDPOINT: `${url}/msi/token`, IDENTITY_HEADER: 'identity-header' })

  const endpoint = new ManagedIdentityEndpoint({ selector: { kind: 'system' } })
  let n = 0
  for (const answer of answers) {
    await t.test(answer.name, async () => {
      current = answer
      // A scope of its own per answer: nothing from the SDK's cache.
      const error = await endpoint.attempt([`api://answer-${n++}/.default`], 5000).then(() => undefined, (e: unknown) => e)
      assert.ok(error instanceof IdentityEndpointError, `classified: ${String(error)}`)
      assert.equal(error.reason, answer.reason, error.message)
      assert.equal(error.status, answer.status)
      assert.match(error.hint ?? '', answer.hint)
      assert.equal(error.retryable, !['identity_not_found', 'invalid_resource', 'unauthorized', 'bad_request'].includes(answer.reason))
      if (answer.headers?.['retry-after'] !== undefined) assert.equal(error.retryAfterMs, Number(answer.headers['retry-after']) * 1000)
      if (!error.retryable) assert.match(error.message, new RegExp(`^deployment error, not retried: .*\\(HTTP ${answer.status}: `))
    })
  }
}
