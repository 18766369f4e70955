import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { TokenUnavailableError } from 'managed-identity-token-provider'
import { apiRefusalReason, explainPointer } from '../api-reason.ts'
import { ApiUnreachableError, type ApiResponse } from '../plugins/api-client.ts'

/**
 * GET /call: what a real caller does with its managed identity: get a token, call the api,
 * answer with the claims the api saw. Its failures are the caller's contract:
 * - 503 token_unavailable (or managed_identity_misconfigured): no token; says why. While the
 *   identity endpoint is failing this comes at once, with Retry-After (getToken's failFast);
 * - 502 api_unreachable: the api gave no answer in time;
 * - 502 api_rejected: the api answered something else than 200; its reason code (read from its
 *   challenge), a pointer to explain, and its status, WWW-Authenticate and body are passed on.
 *   A 401 is retried once with a freshly acquired token first (the token may have been revoked,
 *   or the api may not know a rotated signing key yet); a 403 never is.
 */
export interface CallRoutesOptions {
  /** The scope of the api's tokens (API_SCOPE). */
  scope: string
}

export const callRoutes: FastifyPluginAsync<CallRoutesOptions> = async (fastify, { scope }) => {
  fastify.get('/call', async (request, reply) => {
    let response = await callApi(request, reply, false)
    if (response?.status === 401) {
      request.log.warn({ wwwAuthenticate: response.wwwAuthenticate }, 'the api rejected the token (401): retrying once with a freshly acquired one')
      response = await callApi(request, reply, true)
    }
    if (!response) return reply
    if (response.status !== 200) {
      return reply.code(502).send({
        error: 'api_rejected',
        message: `the api answered ${response.status}`,
        // The api's reason code (auth_requests_total's reason label), from its challenge; and how to find the fix.
        reason: apiRefusalReason(response.wwwAuthenticate, response.body) ?? 'unknown',
        explain: explainPointer(scope),
        upstream: { status: response.status, wwwAuthenticate: response.wwwAuthenticate, body: response.body }
      })
    }
    return response.body
  })

  /** The api's answer, or undefined once the reply has been sent with the caller's own error. */
  async function callApi (request: FastifyRequest, reply: FastifyReply, forceRefresh: boolean): Promise<ApiResponse | undefined> {
    let token: string
    try {
      // failFast: while the identity endpoint fails, a /call answers 503 with Retry-After at once
      // rather than holding the request through the backoff (a 20 s run of 429s once held every /call
      // for TOKEN_WAIT_TIMEOUT_MS, and the soak's client fell more than 10 s behind).
      ({ token } = await fastify.managedIdentity.getToken(scope, { forceRefresh, failFast: true }))
    } catch (error) {
      if (!(error instanceof TokenUnavailableError)) throw error
      request.log.warn({ reason: error.reason, err: error }, 'no token from the managed identity')
      if (!error.deploymentError && error.retryAfterMs !== undefined) reply.header('retry-after', String(Math.max(1, Math.ceil(error.retryAfterMs / 1000))))
      reply.code(503).send({
        error: error.deploymentError ? 'managed_identity_misconfigured' : 'token_unavailable',
        reason: error.reason,
        message: error.message,
        hint: error.hint,
        // An acquisition is running: the token is still being fetched, in the background.
        fetching: error.fetching
      })
      return undefined
    }
    try {
      return await fastify.apiClient.get('/claims', token)
    } catch (error) {
      if (!(error instanceof ApiUnreachableError)) throw error
      request.log.warn({ reason: error.reason, err: error }, 'the api gave no answer')
      reply.code(502).send({ error: 'api_unreachable', reason: error.reason, message: error.message })
      return undefined
    }
  }
}
