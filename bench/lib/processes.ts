import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import { stopChild } from '../../scripts/lib/processes.ts'

const root = fileURLToPath(new URL('../../', import.meta.url))

/** A port nobody listens on right now (the kernel picks it; the tiny race is fine on loopback). */
export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  server.close()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

export interface Target {
  name: string
  url: string
  pid: number
  logs: string[]
  stop: () => Promise<void>
}

/**
 * Starts one bench target (bench/targets/<file>.ts) as its own process and waits for the line it
 * prints once it listens. Its environment is only what `env` says, plus PATH.
 */
export async function startTarget (file: string, env: Record<string, string>, timeoutMs = 60_000): Promise<Target> {
  const child: ChildProcess = spawn(process.execPath, [`bench/targets/${file}`], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const logs: string[] = []
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${file} did not start:\n${logs.join('\n')}`)), timeoutMs)
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      for (const line of chunk.split('\n').filter(Boolean)) {
        logs.push(line)
        const match = /^BENCH_LISTENING (\d+)$/.exec(line)
        if (match) { clearTimeout(timer); resolve(Number(match[1])) }
      }
    })
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { logs.push(...chunk.split('\n').filter(Boolean)) })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${file} exited with code ${String(code)}:\n${logs.join('\n')}`)) })
  })
  return {
    name: file.replace(/\.ts$/, ''),
    url: `http://127.0.0.1:${port}`,
    pid: child.pid as number,
    logs,
    stop: () => stopChild(child)
  }
}

export interface ProcessSample {
  /** user + system CPU time, in milliseconds */
  cpuMs: number
  rssBytes: number
  /** the peak resident set size so far (VmHWM) */
  peakRssBytes: number
}

// Linux's USER_HZ: 100 on every architecture Node supports.
const clockTicksPerSecond = 100

/** CPU time and memory of a process from /proc, so that no target needs an endpoint for them. */
export function sampleProcess (pid: number): ProcessSample {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after "pid (comm) ": state is field 3, utime 14 and stime 15 (1-based).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const ticks = Number(fields[11]) + Number(fields[12])
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024
  return { cpuMs: ticks * 1000 / clockTicksPerSecond, rssBytes: kb('VmRSS'), peakRssBytes: kb('VmHWM') }
}

/** Waits until GET /readyz answers 200 (or the service has no /readyz: 404 counts as ready). */
export async function waitReady (url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = 'no answer'
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${url}/readyz`)
      last = `${response.status} ${await response.text()}`
      if (response.status === 200 || response.status === 404) return
    } catch (error) {
      last = (error as Error).message
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`${url} did not become ready within ${timeoutMs} ms: ${last}`)
}

/** The sum of a Prometheus counter's samples whose labels include every given label. */
export function sumMetric (text: string, name: string, labels: Record<string, string> = {}): number | null {
  let found = false
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line)
    if (!match || match[1] !== name) continue
    const labelText = match[2] ?? ''
    if (!Object.entries(labels).every(([key, value]) => labelText.includes(`${key}="${value}"`))) continue
    found = true
    sum += Number(match[3])
  }
  return found ? sum : null
}

export async function readMetrics (url: string): Promise<string> {
  try {
    const response = await fetch(`${url}/metrics`)
    return response.ok ? await response.text() : ''
  } catch {
    return ''
  }
}
