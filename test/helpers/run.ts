import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** The repository root: every command runs there unless told otherwise, as a user would. */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url))

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
