import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { FaultSpec } from '../../scripts/lib/mock-imds.ts'

export interface Credential {
  /** mi: ManagedIdentityCredential; dac: DefaultAzureCredential; msal: MSAL Node's ManagedIdentityApplication. */
  kind: 'mi' | 'dac' | 'msal'
  clientId?: string
  resourceId?: string
  objectId?: string
  /** dac only: set as AZURE_CLIENT_ID before the credential is made. */
  envClientId?: string
  retryOptions?: { maxRetries?: number, retryDelayInMs?: number }
}

export interface Scenario {
  name: string
  faults?: FaultSpec[]
  credential: Credential
  /** The resource (the scope is this plus /.default). */
  resource: string
  /** getToken calls on the one credential (default 1). */
  calls?: number
  /** For hangs: after this long, record whether the call is still pending, then clear the faults. */
  releaseAfterMs?: number
}

export interface Plan {
  adminUrl: string
  scenarios: Scenario[]
}

export interface Outcome {
  ok: boolean
  token?: string
  expiresOnTimestamp?: number
  refreshAfterTimestamp?: number
  errorName?: string
  errorMessage?: string
  causeName?: string
  causeCode?: string
  elapsedMs: number
}

export interface ScenarioResult {
  name: string
  outcomes: Outcome[]
  /** Token requests mock-imds received during the scenario (retries included). */
  requests: number
  pendingAtRelease?: boolean
}

const root = fileURLToPath(new URL('../../', import.meta.url))

/**
 * Runs the driver in a fresh process with exactly `env` (plus PATH): nothing from this shell
 * reaches the SDK's endpoint discovery. Results are keyed by scenario name.
 */
export async function runDriver (env: Record<string, string>, plan: Plan, timeoutMs = 60_000): Promise<Map<string, ScenarioResult>> {
  const child = spawn(process.execPath, ['test/conformance/driver.ts'], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', ...env, CONFORMANCE_PLAN: JSON.stringify(plan) },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
  clearTimeout(timer)
  if (code !== 0) throw new Error(`driver exited with ${code}:\n${stderr}\n${stdout}`)
  const results = JSON.parse(stdout) as ScenarioResult[]
  return new Map(results.map((result) => [result.name, result]))
}

/** The result of one scenario, failing loudly when the driver did not report it. */
export function resultOf (results: Map<string, ScenarioResult>, name: string): ScenarioResult {
  const result = results.get(name)
  if (!result) throw new Error(`no result for scenario "${name}"`)
  return result
}

/** One line per scenario for the test's diagnostics: what the SDK did, measured. */
export function summary (result: ScenarioResult): string {
  const outcomes = result.outcomes.map((o) => o.ok
    ? `token in ${o.elapsedMs} ms`
    : `${o.errorName} in ${o.elapsedMs} ms: ${(o.errorMessage ?? '').split('\n').find((line) => line.includes('ManagedIdentityCredential') || line.includes('Description')) ?? o.errorMessage}`.slice(0, 200))
  const hang = result.pendingAtRelease === undefined ? '' : ` (still pending at release: ${result.pendingAtRelease})`
  return `${result.name}: ${result.requests} request(s)${hang}; ${outcomes.join(' | ')}`
}
