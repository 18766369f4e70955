import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

export type ServiceName = 'api' | 'caller' | 'mock-imds'

export interface RunningService {
  name: ServiceName
  url: string
  port: number
  child: ChildProcess
  /** Every line the service logged so far (JSON lines). */
  logs: string[]
  stop: () => Promise<void>
}

const root = fileURLToPath(new URL('../../', import.meta.url))

/** What each service runs: the apps' servers, and mock-imds's CLI (its source, so no build is needed). */
const entryPoints: Record<ServiceName, string> = {
  api: 'services/api/src/server.ts',
  caller: 'services/caller/src/server.ts',
  'mock-imds': 'packages/mock-imds/src/cli.ts'
}

/**
 * Node flags a service runs with, here as in package.json's start script and its Dockerfile's CMD
 * (test/containers/launch-flags.test.ts holds the three together). The api:
 * - --max-semi-space-size=8: V8 grows the young generation of an allocation-heavy server on a large
 *   machine to 64 MB semi-spaces, which was 128 MB of the api's 263 MB peak RSS on distinct tokens; 8 MB
 *   semi-spaces kept it at 163 MB with the same req/s and CPU per request (bench row 3, same run: 12,225
 *   against 12,128 req/s, 90 against 88 µs).
 * - --max-old-space-size=256: V8 lets the old generation grow to up to 4x its live size before a full GC
 *   when the heap limit is 2 GB or more (this 24 GB machine's default is 4 GB), and 1.3x at 256 MB
 *   (MaxGrowingFactor, V8's src/heap/heap-controller.cc). Pages V8 has used stay in RSS, so the api's RSS
 *   climbed in steps each time a burst took the old generation higher: in the 10-minute soak of 19:16 UTC
 *   (2026-11-30) from 182 to 227 MB while the live heap stayed at 26-53 MB (old space peaking at 70-130
 *   MB), and two other soaks failed the same way. With the limit the old space peaked at 31 MB and RSS held
 *   at 158-160 MB (soak of 19:27, at 512 MB). The live set is bounded (tokenCache.maxBytes 8 MiB, the keys)
 *   at about 30 MB; 256 MB is half a Container Apps replica's 0.5 GiB (deploy/), so a leak would end in
 *   V8's own heap-limit error before the replica's memory limit.
 */
export const nodeFlags: Record<ServiceName, string[]> = {
  api: ['--max-semi-space-size=8', '--max-old-space-size=256'],
  caller: [],
  'mock-imds': []
}

export interface StartOptions {
  env?: Record<string, string | undefined>
  /** Pass the service's output through to this process's stdout/stderr. */
  inheritOutput?: boolean
  timeoutMs?: number
  /**
   * Node flags instead of the service's nodeFlags: only for a measurement that needs other ones (the
   * bench's overload comparison without shedding lifts the api's heap limit, or its queue kills it).
   */
  nodeFlags?: string[]
}

/**
 * Starts one service as a real process on 127.0.0.1 (PORT=0 unless given) and resolves once it
 * listens. Its environment is exactly what `env` says plus PATH: nothing leaks from this shell
 * into the SDK's endpoint discovery.
 */
export async function startService (name: ServiceName, options: StartOptions = {}): Promise<RunningService> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info' }
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[key]
    else env[key] = value
  }
  // Generous: two cores shared by a whole test run start a Node process in seconds, not milliseconds.
  const timeoutMs = options.timeoutMs ?? 30_000
  const child = spawn(process.execPath, [...(options.nodeFlags ?? nodeFlags[name]), entryPoints[name]], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
  const logs: string[] = []
  let buffered = ''
  const listening = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within ${timeoutMs} ms:\n${logs.join('\n')}`)), timeoutMs)
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      if (options.inheritOutput) process.stdout.write(chunk)
      buffered += chunk
      const lines = buffered.split('\n')
      buffered = lines.pop() ?? ''
      for (const line of lines) {
        logs.push(line)
        const port = /"msg":"Server listening at http:\/\/127\.0\.0\.1:(\d+)"/.exec(line)?.[1]
        if (port) { clearTimeout(timer); resolve(Number(port)) }
      }
    })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      if (options.inheritOutput) process.stderr.write(chunk)
      logs.push(...chunk.split('\n').filter(Boolean))
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`${name} exited (code ${code}, signal ${signal}) before listening:\n${logs.join('\n')}`))
    })
  })
  // With a fixed port and a quiet log level there is no "listening" line to wait for: poll instead.
  const fixedPort = Number(env.PORT)
  listening.catch(() => {})
  let port: number
  try {
    port = fixedPort > 0 ? await Promise.race([listening, pollHealth(fixedPort, timeoutMs)]) : await listening
  } catch (error) {
    // A service that never listened must not outlive the test that started it.
    child.kill('SIGKILL')
    throw error
  }
  return {
    name,
    port,
    url: `http://127.0.0.1:${port}`,
    child,
    logs,
    stop: () => stopChild(child)
  }
}

/** SIGTERM, then wait for the exit (a no-op for a child that already exited). */
export async function stopChild (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  await exited
}

async function pollHealth (port: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/healthz`)
      if (response.ok) return port
    } catch { /* not listening yet */ }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`nothing answered on port ${port} within ${timeoutMs} ms`)
}

/** The environment that points the api at a running mock-imds. */
export const apiEnv = (mockUrl: string, tenantId: string, audience: string): Record<string, string> => ({
  AUTH_TENANT_ID: tenantId,
  AUTH_AUDIENCE: audience,
  AUTH_AUTHORITY_HOST: mockUrl
})

/** The environment that points the caller's SDK at a running mock-imds through IMDS. */
export const callerImdsEnv = (mockUrl: string, apiUrl: string, scope: string): Record<string, string> => ({
  API_BASE_URL: apiUrl,
  API_SCOPE: scope,
  AZURE_POD_IDENTITY_AUTHORITY_HOST: mockUrl
})
