// deploy/vmss/cloud-init.yaml: `cloud-init schema` on the user-data, `systemd-analyze verify` on
// the units it writes (in a scratch root holding the files the units reference), and shellcheck on
// the scripts it writes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { chmodSync, cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { parse } from 'yaml'
import { deployDir, requireTool, runSync, tempDir } from './helpers/tools.ts'
import type { RunResult } from './helpers/tools.ts'

const userData = path.join(deployDir, 'vmss/cloud-init.yaml')

interface WriteFile { path: string, content: string, permissions?: string }
const writeFiles = (parse(readFileSync(userData, 'utf8')) as { write_files: WriteFile[] }).write_files

test('cloud-init: schema of the user-data is valid', (t) => {
  const cloudInit = requireTool(t, 'cloud-init')
  if (cloudInit === undefined) return
  const r = runSync(cloudInit, ['schema', '--config-file', userData])
  assert.equal(r.code, 0, r.stdout + r.stderr)
  assert.match(r.stdout, /Valid cloud-config/)
})

test('cloud-init: schema check fails on a broken copy (the check can fail)', (t) => {
  const cloudInit = requireTool(t, 'cloud-init')
  if (cloudInit === undefined) return
  const broken = path.join(tempDir('cloud-init'), 'user-data.yaml')
  writeFileSync(broken, readFileSync(userData, 'utf8')
    .replace('permissions: "0755"', 'permissions: 493')
    .replace('package_update: true', 'package_update: "yes please"'))
  const r = runSync(cloudInit, ['schema', '--config-file', broken])
  assert.notEqual(r.code, 0)
  assert.match(r.stdout + r.stderr, /is not of type/)
})

/** A root with the written files plus stand-ins for what the docker.io package brings. */
function scratchRoot (files: WriteFile[]): string {
  const root = tempDir('systemd')
  // The manager's own units (sysinit.target, timers.target, ...) from this host's systemd.
  mkdirSync(path.join(root, 'usr/lib'), { recursive: true })
  cpSync('/usr/lib/systemd', path.join(root, 'usr/lib/systemd'), { recursive: true })
  for (const f of files) {
    const target = path.join(root, f.path)
    mkdirSync(path.dirname(target), { recursive: true })
    writeFileSync(target, f.content)
    chmodSync(target, Number.parseInt(f.permissions ?? '0644', 8))
  }
  mkdirSync(path.join(root, 'usr/bin'), { recursive: true })
  writeFileSync(path.join(root, 'usr/bin/docker'), '#!/bin/sh\n')
  chmodSync(path.join(root, 'usr/bin/docker'), 0o755)
  writeFileSync(path.join(root, 'etc/systemd/system/docker.service'), '[Unit]\nDescription=stand-in for docker.io\n[Service]\nExecStart=/usr/bin/docker\n')
  return root
}

const units = writeFiles.filter((f) => /\.(service|timer)$/.test(f.path))

test('cloud-init: the systemd units it writes pass systemd-analyze verify', (t) => {
  const analyze = requireTool(t, 'systemd-analyze')
  if (analyze === undefined) return
  assert.deepEqual(units.map((u) => path.basename(u.path)), ['msi-pair.service', 'msi-pair-settings.service', 'msi-pair-settings.timer'])
  const root = scratchRoot(writeFiles)
  const r = runSync(analyze, ['verify', `--root=${root}`, ...units.map((u) => u.path)])
  // verify prints unknown keys as warnings with exit code 0: any output is a failure.
  assert.equal(r.code, 0, r.stderr)
  assert.equal((r.stdout + r.stderr).trim(), '')
})

test('cloud-init: systemd-analyze verify fails on a broken unit (the check can fail)', (t) => {
  const analyze = requireTool(t, 'systemd-analyze')
  if (analyze === undefined) return
  const broken = writeFiles.map((f) => f.path.endsWith('/msi-pair.service')
    ? { ...f, content: f.content.replace('Restart=always', 'Restartt=always').replace('/usr/local/libexec/msi-pair/run', '/usr/local/libexec/msi-pair/missing') }
    : f)
  const root = scratchRoot(broken)
  const r = runSync(analyze, ['verify', `--root=${root}`, '/etc/systemd/system/msi-pair.service'])
  assert.notEqual(r.code, 0)
  assert.match(r.stderr, /Unknown key 'Restartt'/)
  assert.match(r.stderr, /missing is not executable/)
})

test('cloud-init: the scripts it writes pass shellcheck (bash) and compile (python)', (t) => {
  const shellcheck = requireTool(t, 'shellcheck')
  const python = requireTool(t, 'python3')
  if (shellcheck === undefined || python === undefined) return
  const dir = tempDir('cloud-init-scripts')
  const scripts = writeFiles.filter((f) => f.content.startsWith('#!'))
  assert.equal(scripts.length, 3)
  for (const s of scripts) {
    const file = path.join(dir, path.basename(s.path))
    writeFileSync(file, s.content)
    const r: RunResult = s.content.startsWith('#!/usr/bin/env python3')
      ? runSync(python, ['-m', 'py_compile', file])
      : runSync(shellcheck, ['--shell=bash', file])
    assert.equal(r.code, 0, `${s.path}:\n${r.stdout}${r.stderr}`)
  }
})
