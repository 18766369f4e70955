import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { run } from '../helpers/run.ts'

/** What Microsoft's validator said about one token (see oracle/Program.cs). */
export interface OracleAnswer {
  accept: boolean
  /** 200, 401 (authentication failed) or 403 (ValidateAppRole refused). */
  status: 200 | 401 | 403
  /** The IDX/IDW code Microsoft's message starts with, when it rejected. */
  reason?: string | null
  /** The exception type, e.g. SecurityTokenInvalidIssuerException. */
  type?: string | null
  inner?: string | null
  detail?: string | null
}

export interface OracleConfig {
  authorityHost: string
  tenantId: string
  clientId: string
  appIdUri?: string
  requiredRoles?: string[]
  /** Unix seconds; the oracle's clock (TokenValidationParameters.TimeProvider). The real clock when absent. */
  now?: number
  /** The api's client id when it has its own signing key: the metadata address gets ?appid= (Program.cs). */
  signingKeysAppId?: string
}

export const ORACLE_DIR = fileURLToPath(new URL('./oracle/', import.meta.url))

/** Builds the oracle (incremental: a few seconds when nothing changed). */
export async function buildOracle (): Promise<string> {
  const result = await run('dotnet', ['build', '-c', 'Release', '--nologo', '-v', 'q', '-clp:ErrorsOnly'], { cwd: ORACLE_DIR, timeoutMs: 300_000 })
  if (result.code !== 0) throw new Error(`dotnet build of the oracle failed (${result.code}): ${result.stdout}${result.stderr}`)
  return `${ORACLE_DIR}bin/Release/net10.0/msi-pair-oracle.dll`
}

/** One long-lived oracle process: tokens go in one per line, answers come back in order. */
export class Oracle {
  private readonly child: ChildProcessWithoutNullStreams
  private buffered = ''
  private readonly waiting: Array<{ resolve: (answer: OracleAnswer) => void, reject: (error: Error) => void }> = []
  private stderr = ''
  private exited: Error | undefined

  private constructor (child: ChildProcessWithoutNullStreams) {
    this.child = child
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (chunk: string) => {
      this.buffered += chunk
      let newline
      while ((newline = this.buffered.indexOf('\n')) >= 0) {
        const line = this.buffered.slice(0, newline)
        this.buffered = this.buffered.slice(newline + 1)
        this.waiting.shift()?.resolve(JSON.parse(line) as OracleAnswer)
      }
    })
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (chunk: string) => { this.stderr += chunk })
    child.on('exit', (code, signal) => {
      this.exited = new Error(`the oracle exited (${code ?? signal}): ${this.stderr.slice(-2000)}`)
      for (const waiter of this.waiting.splice(0)) waiter.reject(this.exited)
    })
  }

  static async start (dll: string, config: OracleConfig): Promise<Oracle> {
    const oracle = new Oracle(spawn('dotnet', [dll, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'] }))
    // A first answer proves the metadata was read and the process is serving.
    await oracle.ask(['not-a-token'])
    return oracle
  }

  /** Answers for these tokens, in order. Tokens must not contain a line break. */
  async ask (tokens: readonly string[]): Promise<OracleAnswer[]> {
    if (this.exited) throw this.exited
    for (const token of tokens) if (/[\r\n]/.test(token)) throw new Error('a token with a line break cannot be sent to the oracle')
    const answers = tokens.map(() => new Promise<OracleAnswer>((resolve, reject) => { this.waiting.push({ resolve, reject }) }))
    this.child.stdin.write(tokens.join('\n') + '\n')
    return await Promise.all(answers)
  }

  async stop (): Promise<void> {
    if (this.exited) return
    this.child.stdin.end()
    const exit = once(this.child, 'exit')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000)
    await exit
    clearTimeout(timer)
  }
}
