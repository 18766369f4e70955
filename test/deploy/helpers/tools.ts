// Shared helpers for the deploy checks: locate real tools, run them, and skip or fail when absent.
import { spawnSync } from 'node:child_process'
import { accessSync, constants, mkdtempSync, readdirSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'

import { repoRoot, type RunResult } from '../../helpers/run.ts'

// One way to run a tool asynchronously for every system-tool test (timeouts included).
export { repoRoot, run, type RunResult } from '../../helpers/run.ts'
export const deployDir = path.join(repoRoot, 'deploy')

const extraDirs = ['/usr/local/bin', '/usr/bin', '/bin']

/** Absolute path of an executable on PATH (or a well-known dir), or undefined. */
export function findTool (name: string): string | undefined {
  const envOverride = process.env[`${name.toUpperCase().replace(/-/g, '_')}_BIN`]
  const candidates = envOverride !== undefined
    ? [envOverride]
    : [...(process.env.PATH ?? '').split(path.delimiter), ...extraDirs].map((d) => path.join(d, name))
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK)
      return c
    } catch { // not executable here: try the next candidate
    }
  }
  return undefined
}

/**
 * The tool's path, or: in CI (CI=true) a failing assertion, elsewhere a skipped test.
 * Callers return when this gives undefined.
 */
export function requireTool (t: TestContext, name: string): string | undefined {
  const found = findTool(name)
  if (found !== undefined) return found
  if (process.env.CI === 'true') {
    assert.fail(`${name} missing in CI: run scripts/ci/install-deploy-tools.sh`)
  }
  t.skip(`${name} missing: run scripts/ci/install-deploy-tools.sh`)
  return undefined
}

export interface RunSyncOptions {
  cwd?: string
  env?: NodeJS.ProcessEnv
  input?: string
}

export function runSync (cmd: string, args: string[], opts: RunSyncOptions = {}): RunResult {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, input: opts.input, encoding: 'utf8' })
  if (r.error !== undefined) throw r.error
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** Every file under dir (recursively) whose name matches, sorted, skipping node_modules. */
export function listFiles (dir: string, match: (name: string) => boolean): string[] {
  const out: string[] = []
  const walk = (d: string): void => {
    for (const entry of readdirSync(d)) {
      if (entry === 'node_modules' || entry.startsWith('.git')) continue
      const full = path.join(d, entry)
      if (statSync(full).isDirectory()) walk(full)
      else if (match(entry)) out.push(full)
    }
  }
  walk(dir)
  return out.sort()
}

export function tempDir (prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), `msi-pair-${prefix}-`))
}

export function rel (file: string): string {
  return path.relative(repoRoot, file)
}

/** xs[i], failing the test when it is missing (noUncheckedIndexedAccess-friendly). */
export function at<T> (xs: readonly T[], i = 0): T {
  const x = xs[i]
  assert.ok(x !== undefined, `expected an element at index ${i} of ${xs.length}`)
  return x
}
