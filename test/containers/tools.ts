import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { TestContext } from 'node:test'

/** The repository root: every command runs there, as a user would. */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url))

export const inCI = process.env.CI === 'true'

export const HOW_TO_RUN = 'run scripts/ci/install-container-tools.sh (as root, it installs the tools and starts dockerd), then npm run test:containers; under CI=true this is a failure'

export interface RunResult {
  code: number | null
  stdout: string
  stderr: string
}

export interface RunOptions {
  cwd?: string
  env?: Record<string, string | undefined>
  timeoutMs?: number
  /** Where stdout/stderr also go as they arrive (build logs are long; keep them out of memory-only buffers). */
  onOutput?: (chunk: string) => void
}

/** Runs a command without a shell; a command that outlives timeoutMs is killed and reported, never awaited forever. */
export function run (command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = options.timeoutMs ?? 60_000
  return new Promise((resolve) => {
    let stdout = ''
    let stderr = ''
    let timedOut = false
    const child = spawn(command, args, {
      cwd: options.cwd ?? repoRoot,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, timeoutMs)
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk; options.onOutput?.(chunk) })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; options.onOutput?.(chunk) })
    child.on('error', (error) => {
      clearTimeout(timer)
      resolve({ code: null, stdout, stderr: `${stderr}${error.message}` })
    })
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr: timedOut ? `${stderr}\n(killed after ${timeoutMs} ms)` : stderr })
    })
  })
}

/** Throws with the command's output when it did not exit 0. */
export async function runOk (command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const result = await run(command, args, options)
  if (result.code !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited ${result.code}\n${tail(result.stdout)}\n${tail(result.stderr)}`)
  }
  return result
}

export const tail = (text: string, lines = 40) => text.trimEnd().split('\n').slice(-lines).join('\n')

export async function commandWorks (command: string, args: readonly string[]): Promise<boolean> {
  const result = await run(command, args, { timeoutMs: 30_000 })
  return result.code === 0
}

/**
 * A test needing a system tool: skipped with how to get it on a developer's machine, but a failure
 * under CI=true, where scripts/ci/install-container-tools.sh must have installed it.
 */
export function needTool (t: TestContext, available: boolean, what: string): boolean {
  if (available) return true
  if (inCI) throw new Error(`${what} not available under CI=true, where the container checks must run: .ci/run installs it with scripts/ci/install-container-tools.sh`)
  t.skip(`${what} not available: ${HOW_TO_RUN}`)
  return false
}

let composeCommand: Promise<string[] | undefined> | undefined

/** Compose v1 (`docker-compose`, what CI has) or v2 (`docker compose`, what users have); looked up once. */
export function findCompose (): Promise<string[] | undefined> {
  composeCommand ??= (async () => {
    if (await commandWorks('docker-compose', ['version', '--short'])) return ['docker-compose']
    if (await commandWorks('docker', ['compose', 'version', '--short'])) return ['docker', 'compose']
    return undefined
  })()
  return composeCommand
}

export const dockerEngineAnswers = () => commandWorks('docker', ['info', '--format', '{{.ServerVersion}}'])

/** The YAML files this repository's container and Prometheus setup consists of. */
export const yamlFiles = [
  'docker-compose.yml',
  'docker-compose.identity-endpoint.yml',
  'deploy/prometheus/prometheus.yml',
  'deploy/prometheus/rules.yml',
  'deploy/prometheus/rules.test.yml'
]

export const dockerfiles = ['Dockerfile.api', 'Dockerfile.caller', 'services/mock-imds/Dockerfile']
