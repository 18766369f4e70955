// deploy/vmss/cloud-init.yaml: `cloud-init schema` on the user-data, `systemd-analyze verify` on
// the units it writes (in a scratch root holding the files the units reference), and shellcheck on
// the scripts it writes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { chmodSync, cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { parse } from 'yaml'
import { at, deployDir, requireTool, run, runSync, tempDir } from './helpers/tools.ts'
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
  assert.deepEqual(units.map((u) => path.basename(u.path)), ['msi-pair.service', 'msi-pair-events.service'])
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
  assert.deepEqual(scripts.map((x) => path.basename(x.path)), ['read-settings', 'acr-pull', 'apply', 'container-firewall', 'run', 'events'])
  for (const s of scripts) {
    const file = path.join(dir, path.basename(s.path))
    writeFileSync(file, s.content)
    const r: RunResult = s.content.startsWith('#!/usr/bin/env python3')
      ? runSync(python, ['-m', 'py_compile', file])
      : runSync(shellcheck, ['--shell=bash', file])
    assert.equal(r.code, 0, `${s.path}:\n${r.stdout}${r.stderr}`)
  }
})

// ---- The scripts run for real against a stand-in IMDS and registry on loopback -------------------

interface Seen { method: string, url: string, headers: Record<string, string | string[] | undefined>, body: string }

/** One loopback HTTP server playing IMDS (token, compute name, Scheduled Events) and ACR's exchange. */
async function fakeAzure (events: unknown): Promise<{ base: string, host: string, port: number, seen: Seen[], failExchange: { value: boolean }, close: () => Promise<void> }> {
  const seen: Seen[] = []
  const failExchange = { value: false }
  const server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8').on('data', (c: string) => { body += c }).on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body })
      const url = new URL(req.url ?? '/', 'http://x')
      const json = (status: number, o: unknown): void => { res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(o)) }
      if (url.pathname.startsWith('/metadata/') && req.headers.metadata !== 'true') return json(400, { error: 'bad_request', error_description: 'Required metadata header not specified' })
      if (url.pathname === '/metadata/identity/oauth2/token') return json(200, { access_token: `aad-token-for-${url.searchParams.get('resource') ?? ''}`, expires_on: '1900000000', resource: url.searchParams.get('resource'), token_type: 'Bearer' })
      if (url.pathname === '/oauth2/exchange' && failExchange.value) return json(401, { errors: [{ code: 'UNAUTHORIZED' }] })
      if (url.pathname === '/oauth2/exchange') {
        const form = new URLSearchParams(body)
        if (form.get('grant_type') !== 'access_token' || form.get('access_token') === null) return json(400, { errors: [{ code: 'UNSUPPORTED' }] })
        return json(200, { refresh_token: `acr-refresh-for-${form.get('access_token') ?? ''}` })
      }
      if (url.pathname === '/readyz') return json(200, { status: 'ready' })
      if (url.pathname === '/metadata/instance/compute/name') return res.writeHead(200, { 'content-type': 'text/plain' }).end('msi-pair-api_3')
      if (url.pathname === '/metadata/scheduledevents' && req.method === 'GET') return json(200, events)
      if (url.pathname === '/metadata/scheduledevents' && req.method === 'POST') return json(200, {})
      json(404, { error: 'not found' })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return { base: `http://127.0.0.1:${port}`, host: `127.0.0.1:${port}`, port, seen, failExchange, close: async () => { await new Promise((resolve) => server.close(resolve)) } }
}

/** The written scripts in a directory, plus stand-ins for docker, iptables, systemctl and sleep that log their calls. */
function scriptSandbox (): { dir: string, bin: string, calls: () => string[] } {
  const dir = tempDir('cloud-init-run')
  const bin = path.join(dir, 'bin')
  mkdirSync(bin)
  for (const f of writeFiles.filter((x) => x.content.startsWith('#!'))) {
    writeFileSync(path.join(dir, path.basename(f.path)), f.content)
    chmodSync(path.join(dir, path.basename(f.path)), 0o755)
  }
  const log = path.join(dir, 'calls.log')
  writeFileSync(log, '')
  for (const tool of ['docker', 'iptables', 'systemctl', 'sleep']) {
    // Each records its argv and, for docker login, what came on stdin (the password).
    // iptables -D answers "no such rule" (exit 1), as after the first delete, so delete loops end.
    writeFileSync(path.join(bin, tool), `#!/bin/bash\nif [ "$1" = login ]; then echo "${tool} $* stdin=$(cat)" >>"${log}"; else echo "${tool} $*" >>"${log}"; fi\nif [ "${tool}" = iptables ] && [ "$1" = -D ]; then exit 1; fi\n`)
    chmodSync(path.join(bin, tool), 0o755)
  }
  return { dir, bin, calls: () => readFileSync(log, 'utf8').split('\n').filter(Boolean) }
}

// Azure/acr "AAD-OAuth" (https://azure.github.io/acr/AAD-OAuth.html): POST /oauth2/exchange with
// grant_type=access_token, service, tenant and access_token; the IMDS token is for the registry
// audience, which keeps working where Azure Policy disables ARM-audience tokens on registries.
test('cloud-init: acr-pull asks IMDS for the registry audience and sends the tenant in the exchange', async (t) => {
  if (requireTool(t, 'curl') === undefined || requireTool(t, 'python3') === undefined) return
  const azure = await fakeAzure({ Events: [] })
  try {
    const sb = scriptSandbox()
    const clientId = '11111111-2222-4333-8444-555555555555'
    const tenantId = '66666666-7777-4888-9999-000000000000'
    const image = `${azure.host}/msi-pair-api:v2`
    const r = await run(path.join(sb.dir, 'acr-pull'), [image, clientId, tenantId], {
      env: { PATH: `${sb.bin}:${process.env.PATH ?? ''}`, MSI_PAIR_IMDS: azure.base, MSI_PAIR_REGISTRY_SCHEME: 'http' }
    })
    assert.equal(r.code, 0, r.stderr)
    const token = azure.seen.find((s) => s.url.startsWith('/metadata/identity/oauth2/token'))
    assert.ok(token !== undefined)
    const q = new URL(token.url, 'http://x').searchParams
    assert.equal(q.get('resource'), 'https://containerregistry.azure.net')
    assert.equal(q.get('client_id'), clientId)
    const exchange = azure.seen.find((s) => s.url === '/oauth2/exchange')
    assert.ok(exchange !== undefined)
    const form = new URLSearchParams(exchange.body)
    assert.equal(form.get('tenant'), tenantId)
    assert.equal(form.get('service'), azure.host)
    assert.equal(form.get('access_token'), 'aad-token-for-https://containerregistry.azure.net')
    assert.deepEqual(sb.calls(), [
      `docker login ${azure.host} --username 00000000-0000-0000-0000-000000000000 --password-stdin stdin=acr-refresh-for-aad-token-for-https://containerregistry.azure.net`,
      `docker pull --quiet ${image}`
    ])
  } finally {
    await azure.close()
  }
})

// Learn: "Azure Metadata Service: Scheduled Events for Linux VMs"
// (https://learn.microsoft.com/azure/virtual-machines/linux/scheduled-events): poll, act on the events
// whose Resources name this VM, approve with {"StartRequests":[{"EventId":...}]}.
test('cloud-init: msi-pair-events drains and approves only this instance\'s Terminate, once', async (t) => {
  if (requireTool(t, 'curl') === undefined || requireTool(t, 'python3') === undefined) return
  const azure = await fakeAzure({
    DocumentIncarnation: 2,
    Events: [
      { EventId: 'aaaa-1', EventType: 'Terminate', ResourceType: 'VirtualMachine', Resources: ['msi-pair-api_3'], EventStatus: 'Scheduled', NotBefore: 'Mon, 30 Nov 2026 10:00:00 GMT' },
      { EventId: 'bbbb-2', EventType: 'Terminate', ResourceType: 'VirtualMachine', Resources: ['msi-pair-api_4'], EventStatus: 'Scheduled', NotBefore: 'Mon, 30 Nov 2026 10:00:00 GMT' },
      { EventId: 'cccc-3', EventType: 'Freeze', ResourceType: 'VirtualMachine', Resources: ['msi-pair-api_3'], EventStatus: 'Scheduled', NotBefore: '' }
    ]
  })
  try {
    const sb = scriptSandbox()
    const state = path.join(sb.dir, 'state')
    mkdirSync(state)
    writeFileSync(path.join(state, 'unit.env'), 'IMAGE=x/y:z\nPORT=3001\n')
    const env = { PATH: `${sb.bin}:${process.env.PATH ?? ''}`, MSI_PAIR_IMDS: azure.base, MSI_PAIR_STATE: state, MSI_PAIR_EVENTS_ONCE: '1', MSI_PAIR_DRAIN_SECONDS: '0' }
    for (let i = 0; i < 2; i++) {
      const r = await run(path.join(sb.dir, 'events'), [], { env })
      assert.equal(r.code, 0, r.stderr)
    }
    assert.deepEqual(sb.calls(), [
      'iptables -I DOCKER-USER -s 168.63.129.16/32 -p tcp --dport 3001 -j DROP',
      'sleep 0',
      'systemctl stop msi-pair.service'
    ], 'drained once: out of the load balancer first, then a graceful stop')
    const approvals = azure.seen.filter((s) => s.method === 'POST')
    assert.equal(approvals.length, 1, 'approved once, and not the other instance\'s event or the Freeze')
    assert.deepEqual(JSON.parse(at(approvals).body), { StartRequests: [{ EventId: 'aaaa-1' }] })
    assert.ok(azure.seen.every((s) => s.headers.metadata === 'true'), 'every IMDS call carries Metadata: true')
  } finally {
    await azure.close()
  }
})

test('cloud-init: read-settings rejects settings without a tenant or with a bad image', (t) => {
  const python = requireTool(t, 'python3')
  if (python === undefined) return
  const sb = scriptSandbox()
  const good = { image: 'acr.azurecr.io/msi-pair-api:v1', port: 3001, clientId: '11111111-2222-4333-8444-555555555555', tenantId: '66666666-7777-4888-9999-000000000000', blockImds: true, env: { PORT: '3001' } }
  const check = (settings: unknown): RunResult => {
    writeFileSync(path.join(sb.dir, 'settings.json'), JSON.stringify(settings))
    return runSync(python, [path.join(sb.dir, 'read-settings'), path.join(sb.dir, 'settings.json'), sb.dir])
  }
  assert.equal(check(good).code, 0)
  assert.equal(readFileSync(path.join(sb.dir, 'unit.env'), 'utf8'),
    'IMAGE=acr.azurecr.io/msi-pair-api:v1\nPORT=3001\nCLIENT_ID=11111111-2222-4333-8444-555555555555\nTENANT_ID=66666666-7777-4888-9999-000000000000\nBLOCK_IMDS=true\n')
  assert.match(check({ ...good, tenantId: undefined }).stderr, /settings\.tenantId must be a GUID/)
  assert.match(check({ ...good, image: 'acr.azurecr.io/x:v1;rm -rf /' }).stderr, /settings\.image/)
  assert.match(check({ ...good, blockImds: 'yes' }).stderr, /settings\.blockImds/)
})

// Learn: "Azure Instance Metadata Service" (any process on the VM, containers included, may ask IMDS
// for the identity's tokens) and the README's choice on port 80 (the host keeps it, containers do not).
test('cloud-init: container-firewall keeps the api container off IMDS and every container off port 80', async (t) => {
  if (requireTool(t, 'bash') === undefined) return
  const rules = async (blockImds: string): Promise<string[]> => {
    const sb = scriptSandbox()
    const r = await run(path.join(sb.dir, 'container-firewall'), [blockImds], { env: { PATH: `${sb.bin}:${process.env.PATH ?? ''}` } })
    assert.equal(r.code, 0, r.stderr)
    // The stand-in iptables accepts every call, so `-N`, `-C` succeed: only what is appended matters.
    return sb.calls().filter((c) => / -A MSI-PAIR | -I DOCKER-USER /.test(c))
  }
  assert.deepEqual(await rules('true'), [
    'iptables -A MSI-PAIR -d 169.254.169.254/32 -j REJECT',
    'iptables -A MSI-PAIR -p tcp -m multiport --dports 80,32526 -j REJECT --reject-with tcp-reset'
  ], 'api: IMDS rejected before anything else')
  assert.deepEqual(await rules('false'), [
    'iptables -A MSI-PAIR -d 169.254.169.254/32 -p tcp --dport 80 -j RETURN',
    'iptables -A MSI-PAIR -p tcp -m multiport --dports 80,32526 -j REJECT --reject-with tcp-reset'
  ], 'caller: IMDS (port 80) allowed before the port-80 reject')
})

// Learn: "Configure rolling upgrades on Virtual Machine Scale Sets": an upgraded batch is judged by
// health, so the swap must happen inside the extension run: pull first (the old container keeps
// serving), leave the load balancer, swap, wait for /readyz, come back; a failed pull touches nothing.
test('cloud-init: apply pulls before it stops anything, drains, swaps and waits for /readyz', async (t) => {
  if (requireTool(t, 'curl') === undefined || requireTool(t, 'python3') === undefined) return
  const azure = await fakeAzure({ Events: [] })
  try {
    const sb = scriptSandbox()
    const etc = path.join(sb.dir, 'etc')
    mkdirSync(etc)
    const settings = {
      image: `${azure.host}/msi-pair-api:v2`,
      port: azure.port,
      blockImds: true,
      env: { PORT: String(azure.port) },
      clientId: '11111111-2222-4333-8444-555555555555',
      tenantId: '66666666-7777-4888-9999-000000000000'
    }
    // An instance already running v1 on the same port.
    writeFileSync(path.join(etc, 'settings.json'), JSON.stringify({ ...settings, image: `${azure.host}/msi-pair-api:v1` }))
    const env = {
      PATH: `${sb.bin}:${process.env.PATH ?? ''}`,
      MSI_PAIR_IMDS: azure.base,
      MSI_PAIR_REGISTRY_SCHEME: 'http',
      MSI_PAIR_LIBEXEC: sb.dir,
      MSI_PAIR_ETC: etc,
      MSI_PAIR_DRAIN_SECONDS: '0',
      MSI_PAIR_PULL_ATTEMPTS: '1'
    }
    const b64 = Buffer.from(JSON.stringify(settings)).toString('base64')

    azure.failExchange.value = true
    const failed = await run(path.join(sb.dir, 'apply'), [b64], { env })
    assert.equal(failed.code, 1, 'a tag that cannot be pulled fails the extension')
    assert.match(failed.stderr, /could not pull/)
    assert.deepEqual(sb.calls(), [], 'and stops nothing: the old container keeps serving')
    assert.match(readFileSync(path.join(etc, 'settings.json'), 'utf8'), /msi-pair-api:v1/)

    azure.failExchange.value = false
    const r = await run(path.join(sb.dir, 'apply'), [b64], { env })
    assert.equal(r.code, 0, r.stderr)
    const probe = `DOCKER-USER -s 168.63.129.16/32 -p tcp --dport ${azure.port} -j DROP`
    assert.deepEqual(sb.calls().filter((c) => !c.startsWith('docker login')), [
      `docker pull --quiet ${settings.image}`,
      'systemctl is-active --quiet msi-pair.service',
      `iptables -I ${probe}`,
      'sleep 0',
      'systemctl enable msi-pair.service',
      'systemctl restart msi-pair.service',
      `iptables -D ${probe}`,
      `iptables -D ${probe}`
    ])
    assert.ok(azure.seen.some((s) => s.url === '/readyz'), 'readiness was awaited')
    assert.match(readFileSync(path.join(etc, 'settings.json'), 'utf8'), /msi-pair-api:v2/)
  } finally {
    await azure.close()
  }
})
