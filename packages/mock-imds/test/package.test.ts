/*
 * What the packed package needs at run time must be in its own dependencies: in this workspace the
 * root's node_modules hides a missing one (the container image, installed from the package's list
 * alone, is where it showed: fast-jwt). Every bare import of src/ is checked against package.json.
 */
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string>, bin: Record<string, string> }

/** The package a specifier resolves to: `@scope/name` or `name`, without the subpath. */
const packageOf = (specifier: string) => specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/')

test('every package src/ imports is a declared dependency, and every dependency is used', () => {
  const sources = readdirSync(join(root, 'src'), { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.ts'))
  assert.ok(sources.length > 5, 'the sources were found')
  const imported = new Set<string>()
  for (const file of sources) {
    const text = readFileSync(join(root, 'src', file), 'utf8')
    for (const [, specifier] of text.matchAll(/^(?:import|export)\b[^'"]*?from '([^'.][^']*)'/gm)) {
      if (specifier!.startsWith('node:') || builtinModules.includes(specifier!)) continue
      imported.add(packageOf(specifier!))
    }
  }
  assert.ok(imported.has('fastify'), 'the scan sees the imports')
  assert.deepEqual([...imported].filter((name) => !(name in manifest.dependencies)).sort(), [], 'imported but not declared')
  assert.deepEqual(Object.keys(manifest.dependencies).filter((name) => !imported.has(name)).sort(), [], 'declared but not imported')
})

test('the bin is dist/cli.js, built from src/cli.ts, which starts with a node shebang', () => {
  assert.deepEqual(manifest.bin, { 'mock-imds': './dist/cli.js' })
  assert.match(readFileSync(join(root, 'src/cli.ts'), 'utf8'), /^#!\/usr\/bin\/env node\n/)
})
