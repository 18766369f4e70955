import { connect, type Socket } from 'node:net'

/**
 * The overload row's generator: a fixed request rate over raw keep-alive sockets, whatever the answers
 * do. Requests are prebuilt bytes, and answers are read only as far as their status line and
 * Content-Length, so that one core can offer well over twice what the api serves: undici's pool, as the
 * soak uses, costs several times more per request and was itself the bottleneck at 23,000 req/s (its
 * send timer up to 734 ms late, bench --quick). Requests are pipelined on their connection when it is
 * busy (RFC 9112 §9.3.2), so the queue builds in the api's socket buffers, where it can see it, not here.
 */
export interface OpenLoopOptions {
  url: string
  path: string
  /** requests per second over all connections */
  rate: number
  connections: number
  seconds: number
  tokens: string[]
  /** After the last request is due, how long to wait for answers before counting the rest as never answered. */
  drainMs: number
  /** The client's deadline, in ms from when a request was due: later answers are counted in lateByDueSecond. */
  deadlineMs: number
}

export interface OpenLoopResult {
  /** Requests written to a socket. */
  sent: number
  /** Answers by status; 'no answer' for requests unanswered at the end. */
  statusCounts: Record<string, number>
  /** Latency from when each request was due, in ms, by status. */
  latenciesByStatus: Record<string, number[]>
  /**
   * Answers after the deadline (or never), by the second of the run in which their request was due: a
   * start-up transient and a queue that builds all along read differently.
   */
  lateByDueSecond: number[]
  /** How late the send timer fired at most, in ms: the generator's own lag. */
  generatorLagMaxMs: number
  elapsedSeconds: number
}

const TICK_MS = 2

interface Connection {
  socket: Socket
  /** When each request still unanswered on this connection was due (performance.now()). */
  due: number[]
  buffer: string
}

export async function runOpenLoop (options: OpenLoopOptions): Promise<OpenLoopResult> {
  const { hostname, port } = new URL(options.url)
  const requests = options.tokens.map((token) => Buffer.from(`GET ${options.path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAuthorization: Bearer ${token}\r\n\r\n`, 'latin1'))
  const statusCounts: Record<string, number> = {}
  // Set again when the first request is due; declared here for countLate.
  let started = performance.now()
  const latenciesByStatus: Record<string, number[]> = {}
  const record = (status: string, latency: number) => {
    statusCounts[status] = (statusCounts[status] ?? 0) + 1;
    (latenciesByStatus[status] ??= []).push(latency)
  }

  const connections: Connection[] = await Promise.all(Array.from({ length: options.connections }, async () => {
    const socket = connect(Number(port), hostname)
    socket.setNoDelay(true)
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve).once('error', reject) })
    const connection: Connection = { socket, due: [], buffer: '' }
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => { readAnswers(connection, chunk) })
    socket.on('error', () => {})
    return connection
  }))

  /** Takes every complete answer off the front of the connection's buffer. */
  function readAnswers (connection: Connection, chunk: string): void {
    connection.buffer += chunk
    for (;;) {
      const buffer = connection.buffer
      const headEnd = buffer.indexOf('\r\n\r\n')
      if (headEnd < 0) return
      const length = /\r\ncontent-length: *(\d+)/i.exec(buffer.slice(0, headEnd))?.[1]
      const end = headEnd + 4 + Number(length ?? 0)
      if (buffer.length < end) return
      const status = buffer.slice(9, 12)
      connection.buffer = buffer.slice(end)
      const due = connection.due.shift()
      if (due !== undefined) {
        const latency = performance.now() - due
        record(status, latency)
        if (latency > options.deadlineMs) countLate(due)
      }
    }
  }

  const lateByDueSecond = Array.from({ length: Math.ceil(options.seconds) }, () => 0)
  const countLate = (due: number) => {
    const second = Math.min(lateByDueSecond.length - 1, Math.floor((due - started) / 1000))
    lateByDueSecond[second] = (lateByDueSecond[second] ?? 0) + 1
  }
  let sent = 0
  let next = 0
  let generatorLagMaxMs = 0
  started = performance.now()
  let lastTick = started
  const total = Math.round(options.rate * options.seconds)
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const now = performance.now()
      generatorLagMaxMs = Math.max(generatorLagMaxMs, now - lastTick - TICK_MS)
      lastTick = now
      const due = Math.min(total, Math.floor((now - started) * options.rate / 1000))
      while (sent < due) {
        // Each request keeps its own due time: a late tick sends its backlog, counted from when it was due.
        const dueAt = started + (sent * 1000) / options.rate
        // The connection with the fewest outstanding requests (a fresh one first).
        let best = connections[next % connections.length] as Connection
        for (let i = 0; i < 4; i++) {
          const candidate = connections[(next + i) % connections.length] as Connection
          if (candidate.due.length < best.due.length) best = candidate
        }
        next++
        best.due.push(dueAt)
        best.socket.write(requests[sent % requests.length] as Buffer)
        sent++
      }
      if (sent >= total) { clearInterval(timer); resolve() }
    }, TICK_MS)
  })
  const deadline = performance.now() + options.drainMs
  while (performance.now() < deadline && connections.some((connection) => connection.due.length > 0)) await new Promise((resolve) => setTimeout(resolve, 20))
  for (const connection of connections) {
    if (connection.due.length > 0) statusCounts['no answer'] = (statusCounts['no answer'] ?? 0) + connection.due.length
    for (const due of connection.due) countLate(due)
    connection.socket.destroy()
  }
  return { sent, statusCounts, latenciesByStatus, lateByDueSecond, generatorLagMaxMs, elapsedSeconds: (performance.now() - started) / 1000 }
}
