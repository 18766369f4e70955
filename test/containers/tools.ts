import type { TestContext } from 'node:test'
import { run, type RunOptions, type RunResult } from '../helpers/run.ts'

export { repoRoot, run, type RunOptions, type RunResult } from '../helpers/run.ts'

export const inCI = process.env.CI === 'true'

export const HOW_TO_RUN = 'run scripts/ci/install-container-tools.sh (as root, it installs the tools and starts dockerd), then npm run test:containers; under CI=true this is a failure'

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

export const dockerfiles = ['Dockerfile.api', 'Dockerfile.caller', 'packages/mock-imds/Dockerfile']
