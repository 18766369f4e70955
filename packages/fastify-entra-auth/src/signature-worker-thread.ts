// The worker side of SignatureWorker (signature-worker.ts): RS256 checks of a batch of tokens with keys
// the main thread sent once each, answered as one byte per token (1 valid, 0 not).
import { verify, type KeyObject } from 'node:crypto'
import { parentPort } from 'node:worker_threads'
import type { ToWorker } from './signature-worker.ts'

const keys = new Map<number, KeyObject>()

function valid (key: KeyObject | undefined, token: string): boolean {
  if (key === undefined) return false
  const dot = token.lastIndexOf('.')
  try {
    return verify('sha256', Buffer.from(token.slice(0, dot), 'latin1'), key, Buffer.from(token.slice(dot + 1), 'base64url'))
  } catch {
    return false
  }
}

parentPort?.on('message', (message: ToWorker) => {
  if ('key' in message) {
    keys.set(message.id, message.key)
  } else if ('forget' in message) {
    keys.delete(message.forget)
  } else {
    const results = new Uint8Array(message.tokens.length)
    for (let i = 0; i < results.length; i++) results[i] = valid(keys.get(message.keyIds[i] as number), message.tokens[i] as string) ? 1 : 0
    parentPort?.postMessage(results, [results.buffer])
  }
})
