// Compiled ARM templates for the facts tests: one `bicep build --outdir <temp>` per entry file,
// shared by every test of a process, and walkers over the JSON (modules are inlined as nested
// deployments, so resources are found at any depth).
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { deployDir, rel, run, tempDir } from './tools.ts'

export type Json = Record<string, unknown>

const builds = new Map<string, Promise<Json>>()

/** The compiled template of deploy/<entry> (e.g. 'vmss/main.bicep'), built once per process. */
export function compiled (bicep: string, entry: string): Promise<Json> {
  let b = builds.get(entry)
  if (b === undefined) {
    b = (async () => {
      const file = path.join(deployDir, entry)
      const out = tempDir('arm')
      const r = await run(bicep, ['build', file, '--outdir', out])
      assert.equal(r.code, 0, `bicep build ${rel(file)} failed:\n${r.stderr}`)
      return JSON.parse(readFileSync(path.join(out, path.basename(entry, '.bicep') + '.json'), 'utf8')) as Json
    })()
    builds.set(entry, b)
  }
  return b
}

/** Every ARM resource object (type + apiVersion) anywhere in a template, nested templates included. */
export function resources (node: unknown, out: Json[] = []): Json[] {
  if (Array.isArray(node)) {
    for (const n of node) resources(n, out)
  } else if (node !== null && typeof node === 'object') {
    const o = node as Json
    if (typeof o.type === 'string' && typeof o.apiVersion === 'string') out.push(o)
    for (const v of Object.values(o)) resources(v, out)
  }
  return out
}

export function ofType (node: unknown, type: string): Json[] {
  return resources(node).filter((r) => r.type === type)
}

/** obj.a.b.c, failing the test with the path when a step is missing or not an object. */
export function dig (obj: unknown, ...keys: string[]): unknown {
  let cur = obj
  for (const [i, k] of keys.entries()) {
    assert.ok(cur !== null && typeof cur === 'object', `${keys.slice(0, i).join('.') || '(root)'} is not an object: ${JSON.stringify(cur)?.slice(0, 200)}`)
    cur = (cur as Json)[k]
  }
  return cur
}

/** An ARM expression "[x]" without its brackets. */
export function unbracket (expr: unknown): string {
  assert.equal(typeof expr, 'string')
  const s = expr as string
  assert.ok(s.startsWith('[') && s.endsWith(']'), `not an ARM expression: ${s}`)
  return s.slice(1, -1)
}

/** The nested deployments (modules) whose inlined template holds a resource of the given type. */
export function modulesHolding (template: Json, type: string): Json[] {
  return ofType(template, 'Microsoft.Resources/deployments').filter((d) => {
    const inner = dig(d, 'properties', 'template')
    const rs = (dig(inner, 'resources') ?? []) as Json[] | Record<string, Json>
    return (Array.isArray(rs) ? rs : Object.values(rs)).some((r) => r.type === type)
  })
}
