/*
 * Why a discovery or JWKS fetch failed, in words a user can act on. undici's fetch rejects with
 * "TypeError: fetch failed" and keeps the reason (ECONNREFUSED, ENOTFOUND, a TLS error) on `cause`;
 * the key store logs only the message, so explain asks once more itself to recover the cause and the URL.
 */

/** The reason of a failed fetch: its timeout, or the cause's code and message (`ECONNREFUSED (connect ECONNREFUSED 127.0.0.1:9)`). */
export function fetchErrorReason (error: unknown, timeoutMs: number): string {
  const name = (error as { name?: unknown } | null)?.name
  if (name === 'TimeoutError' || name === 'AbortError') return `timeout (no answer within ${timeoutMs} ms)`
  let cause = (error as { cause?: unknown } | null)?.cause ?? error
  // Happy eyeballs tries every address and fails with an AggregateError of them: the first says enough.
  if (cause instanceof AggregateError && cause.errors.length > 0 && (cause as { code?: unknown }).code === undefined) cause = cause.errors[0]
  const code = (cause as { code?: unknown } | null)?.code
  const message = cause instanceof Error ? cause.message : String(cause)
  if (typeof code === 'string') return message === '' || message === code ? code : `${code} (${message})`
  return cause instanceof Error ? `${cause.name}: ${message}` : message
}

/**
 * GETs `url` once and says how it failed: `GET <url>: ECONNREFUSED (...)`, `GET <url>: timeout ...`,
 * `GET <url> answered 404`, or null when it answered 2xx (the failure was elsewhere, or did not last).
 */
export async function probeFetch (url: string, timeoutMs: number): Promise<string | null> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'error', headers: { accept: 'application/json' } })
    await response.body?.cancel()
    return response.ok ? null : `GET ${url} answered ${response.status}`
  } catch (error) {
    return `GET ${url}: ${fetchErrorReason(error, timeoutMs)}`
  }
}
