import assert from 'node:assert/strict'
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { parse as parseYaml } from 'yaml'
import { commandWorks, dockerfiles, findCompose, needTool, repoRoot, run, runOk, yamlFiles } from './tools.ts'

/*
 * The offline checks of the container setup: each tool's verdict on the real files, and proof that
 * the same tool, run the same way, fails on a broken copy (a check that cannot fail checks nothing).
 * No Docker engine needed: compose config runs against a socket that does not exist.
 */

let scratch: string
before(async () => { scratch = await mkdtemp(join(tmpdir(), 'msi-pair-static-')) })
after(async () => { await rm(scratch, { recursive: true, force: true }) })

const offline = { DOCKER_HOST: 'unix:///nonexistent' }

describe('compose files', () => {
  test('docker-compose config -q accepts the stack and the identity-endpoint flavour', async (t) => {
    const compose = await findCompose()
    if (!needTool(t, compose !== undefined, 'docker-compose')) return
    const [command, ...prefix] = compose!
    await runOk(command!, [...prefix, 'config', '-q'], { env: offline })
    await runOk(command!, [...prefix, '-f', 'docker-compose.yml', '-f', 'docker-compose.identity-endpoint.yml', 'config', '-q'], { env: offline })
  })

  test('docker-compose config -q rejects a misspelt key and an unknown depends_on target', async (t) => {
    const compose = await findCompose()
    if (!needTool(t, compose !== undefined, 'docker-compose')) return
    const [command, ...prefix] = compose!
    const original = await readFile(join(repoRoot, 'docker-compose.yml'), 'utf8')
    const cases = {
      'misspelt-key': original.replace('    healthcheck: *healthcheck\n', '    heathcheck: *healthcheck\n'),
      'unknown-dependency': original.replace('      mock-imds:\n        condition: service_healthy\n', '      mock-imd:\n        condition: service_healthy\n')
    }
    await Promise.all(Object.entries(cases).map(async ([name, text]) => {
      assert.notEqual(text, original, `${name}: the broken copy must differ`)
      const file = join(scratch, `docker-compose.${name}.yml`)
      await writeFile(file, text)
      // --project-directory: the build contexts resolve as for the real file, so only the injected fault fails.
      const result = await run(command!, [...prefix, '--project-directory', repoRoot, '-f', file, 'config', '-q'], { env: offline })
      assert.notEqual(result.code, 0, `${name}: config -q must fail`)
      assert.match(result.stderr, name === 'misspelt-key' ? /heathcheck/ : /mock-imd\b/)
    }))
  })

  test('every service is read-only with ports on 127.0.0.1 by default, and Compose v1.29 can read it', async () => {
    const text = await readFile(join(repoRoot, 'docker-compose.yml'), 'utf8')
    // BuildKit would pull a frontend for it, and Compose v1.29 rejects a top-level name.
    assert.doesNotMatch(text, /^# *syntax=/m)
    const doc = parseYaml(text, { merge: true }) as { name?: unknown, services: Record<string, Record<string, unknown>> }
    assert.equal(doc.name, undefined)
    assert.deepEqual(Object.keys(doc.services).sort(), ['api', 'caller', 'mock-imds', 'prometheus'])
    for (const [name, service] of Object.entries(doc.services)) {
      assert.equal(service.read_only, true, `${name} must be read-only`)
      const ports = service.ports as string[]
      assert.ok(ports.length > 0, `${name} publishes a port`)
      for (const port of ports) assert.match(port, /^\$\{BIND_ADDRESS:-127\.0\.0\.1\}:/, `${name}: ${port}`)
    }
    assert.equal((doc.services.api!.environment as Record<string, string>).AUTH_AUTHORITY_HOST, 'http://mock-imds')
  })

  test('IMDS at its own address: mock-imds at 169.254.169.254:80 on a link-local network, nothing in the caller points at it', async () => {
    type Service = { environment?: Record<string, string>, networks?: Record<string, { ipv4_address?: string } | null> }
    const doc = parseYaml(await readFile(join(repoRoot, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
      services: Record<string, Service>, networks: Record<string, { ipam?: { config?: Array<{ subnet?: string }> } }>
    }
    assert.deepEqual(doc.networks.imds?.ipam?.config, [{ subnet: '169.254.169.0/24' }])
    const mock = doc.services['mock-imds']!
    assert.equal(mock.networks?.imds?.ipv4_address, '169.254.169.254')
    assert.equal(mock.environment?.PORT, '80')
    assert.equal(mock.environment?.MOCK_IMDS_PLATFORM, 'vm')
    const caller = doc.services.caller!
    assert.ok(caller.networks && 'imds' in caller.networks, 'the caller reaches the link-local network')
    // Exactly the variables it has on a scale set instance: its own settings, none about IMDS.
    assert.deepEqual(Object.keys(caller.environment ?? {}).sort(), ['API_BASE_URL', 'API_SCOPE', 'LOG_LEVEL'])
    for (const [name, value] of Object.entries(caller.environment ?? {})) {
      assert.doesNotMatch(String(value), /mock-imds|169\.254|:3002/, `${name} points at the mock`)
    }
    // The Container Apps flavour: mock-imds answers as Container Apps, the caller gets the two variables.
    const override = parseYaml(await readFile(join(repoRoot, 'docker-compose.identity-endpoint.yml'), 'utf8')) as { services: Record<string, Service> }
    assert.equal(override.services['mock-imds']!.environment?.MOCK_IMDS_PLATFORM, 'container-apps')
    assert.equal(override.services.caller!.environment?.IDENTITY_ENDPOINT, 'http://mock-imds/msi/token')
  })
})

/** Instructions with continuation lines joined and comments dropped: all these checks need (a full AST would add nothing). */
function instructions (text: string): Array<{ keyword: string, args: string }> {
  const joined = text.split('\n').filter((line) => !/^\s*#/.test(line)).join('\n').replace(/\\\n/g, ' ')
  return joined.split('\n').filter((line) => line.trim() !== '').map((line) => {
    const [keyword = '', ...rest] = line.trim().split(/\s+/)
    return { keyword: keyword.toUpperCase(), args: rest.join(' ') }
  })
}

describe('Dockerfiles', () => {
  const lint = (file: string) => run(process.execPath, [join(repoRoot, 'node_modules/dockerfile-utils/bin/dockerfile-utils'), 'lint', file])

  for (const file of dockerfiles) {
    test(`${file} passes dockerfile-utils lint`, async () => {
      const result = await lint(join(repoRoot, file))
      assert.equal(result.code, 0, result.stdout + result.stderr)
    })

    test(`${file}: node:24-bookworm-slim, final stage unprivileged, exec-form node CMD, HEALTHCHECK`, async () => {
      const text = await readFile(join(repoRoot, file), 'utf8')
      assert.doesNotMatch(text, /^# *syntax=/m)
      const all = instructions(text)
      const froms = all.filter((i) => i.keyword === 'FROM')
      assert.ok(froms.length >= 2, 'multi-stage')
      for (const from of froms) assert.match(from.args, /^node:24-bookworm-slim\b/)
      const finalStage = all.slice(all.lastIndexOf(froms.at(-1)!))
      const user = finalStage.findLast((i) => i.keyword === 'USER')
      assert.ok(user && !/^(0|root)\b/.test(user.args), 'the final stage runs as an unprivileged user')
      const cmd = finalStage.findLast((i) => i.keyword === 'CMD')
      const argv = JSON.parse(cmd!.args) as string[]
      assert.equal(argv[0], 'node', 'node itself, no npm or shell in between: signals must reach it')
      const health = finalStage.find((i) => i.keyword === 'HEALTHCHECK')
      assert.match(health!.args, /CMD \["node", "-e", .*\/healthz/)
      assert.ok(!all.some((i) => /\b(curl|wget)\b/.test(i.args)), 'no curl or wget: the slim image has neither')
    })
  }

  test('dockerfile-utils lint fails on a broken Dockerfile', async () => {
    const broken = join(scratch, 'Dockerfile.broken')
    const original = await readFile(join(repoRoot, 'Dockerfile.api'), 'utf8')
    await writeFile(broken, original.replace('COPY --from=build', 'COPY --frm=build').replace('WORKDIR /app', 'WORKDIR app'))
    const result = await lint(broken)
    assert.equal(result.code, 1)
    assert.match(result.stdout, /Unknown flag: frm/)
    assert.match(result.stdout, /WORKDIR paths should be absolute/)
  })

  test('.dockerignore lets only the build inputs through', async () => {
    const lines = (await readFile(join(repoRoot, '.dockerignore'), 'utf8')).split('\n').filter((l) => l && !l.startsWith('#'))
    assert.equal(lines[0], '*', 'an allow-list: everything else stays out of the build context')
    for (const secretish of ['**/.env*', '**/*.pem', '**/*.key']) assert.ok(lines.includes(secretish), secretish)
  })
})

describe('Prometheus config and rules (promtool)', () => {
  const promtool = (...args: string[]) => run('promtool', args, { cwd: join(repoRoot, 'deploy/prometheus') })
  const available = () => commandWorks('promtool', ['--version'])

  test('promtool check config, check rules and test rules pass', async (t) => {
    if (!needTool(t, await available(), 'promtool')) return
    const config = await promtool('check', 'config', 'prometheus.yml')
    assert.equal(config.code, 0, config.stdout + config.stderr)
    assert.match(config.stdout, /1 rule files found/)
    const rules = await promtool('check', 'rules', 'rules.yml')
    assert.equal(rules.code, 0, rules.stdout + rules.stderr)
    const count = Number(/SUCCESS: (\d+) rules found/.exec(rules.stdout)?.[1])
    assert.ok(count >= 9, `rules found: ${count}`)
    const tests = await promtool('test', 'rules', 'rules.test.yml')
    assert.equal(tests.code, 0, tests.stdout + tests.stderr)
  })

  test('every alert rule has a promtool unit test', async () => {
    const rules = parseYaml(await readFile(join(repoRoot, 'deploy/prometheus/rules.yml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert?: string }> }> }
    const tested = parseYaml(await readFile(join(repoRoot, 'deploy/prometheus/rules.test.yml'), 'utf8')) as { tests: Array<{ alert_rule_test?: Array<{ alertname: string, exp_alerts: unknown[] }> }> }
    const alerts = rules.groups.flatMap((g) => g.rules.map((r) => r.alert)).filter((a): a is string => a !== undefined)
    // Tested firing, not merely mentioned.
    const firing = new Set(tested.tests.flatMap((c) => c.alert_rule_test ?? []).filter((c) => c.exp_alerts.length > 0).map((c) => c.alertname))
    assert.deepEqual(alerts.filter((a) => !firing.has(a)), [])
  })

  test('promtool fails on a broken rule expression and on a wrong expectation', async (t) => {
    if (!needTool(t, await available(), 'promtool')) return
    await cp(join(repoRoot, 'deploy/prometheus'), scratch, { recursive: true, force: true })
    const rules = await readFile(join(scratch, 'rules.yml'), 'utf8')
    await writeFile(join(scratch, 'rules.broken.yml'), rules.replace('up{job=~"api|caller"} == 0', 'up{job=~"api|caller} == 0'))
    const broken = await run('promtool', ['check', 'rules', 'rules.broken.yml'], { cwd: scratch })
    assert.equal(broken.code, 1, broken.stdout + broken.stderr)
    assert.match(broken.stderr, /parse error|unterminated/)

    const unitTests = await readFile(join(scratch, 'rules.test.yml'), 'utf8')
    // The rejection reason that should fire is swapped for the one that must stay silent.
    await writeFile(join(scratch, 'rules.wrong.test.yml'), unitTests.replace('              reason: wrong_audience', '              reason: missing_token'))
    const wrong = await run('promtool', ['test', 'rules', 'rules.wrong.test.yml'], { cwd: scratch })
    assert.equal(wrong.code, 1, wrong.stdout + wrong.stderr)
    assert.match(wrong.stdout + wrong.stderr, /FAILED/)

    await writeFile(join(scratch, 'prometheus.broken.yml'), (await readFile(join(scratch, 'prometheus.yml'), 'utf8')).replace('static_configs', 'static_config'))
    const config = await run('promtool', ['check', 'config', 'prometheus.broken.yml'], { cwd: scratch })
    assert.equal(config.code, 1, config.stdout + config.stderr)
    assert.match(config.stdout + config.stderr, /static_config/)
  })
})

describe('Grafana dashboard', () => {
  test('asks for its Prometheus data source and queries only the metrics of the contract', async () => {
    const dashboard = JSON.parse(await readFile(join(repoRoot, 'deploy/grafana/msi-pair.json'), 'utf8')) as {
      uid: string, templating: { list: Array<{ name: string, type: string }> }, panels: Array<{ id: number, type: string, datasource?: { uid: string }, targets?: Array<{ expr: string }> }>
    }
    assert.ok(dashboard.templating.list.some((v) => v.name === 'datasource' && v.type === 'datasource'))
    const ids = dashboard.panels.map((p) => p.id)
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique')
    const contract = /^(http_request_duration_seconds|auth_requests_total|auth_validation_duration_seconds|jwks_refresh_total|jwks_keys|jwks_last_success_timestamp_seconds|auth_verified_token_cache_total|token_requests_total|token_acquisition_duration_seconds|token_expires_in_seconds|token_refresh_failures_total|upstream_requests_total|upstream_request_duration_seconds|mock_imds_token_requests_total|mock_imds_jwks_requests_total)(_bucket|_count|_sum)?$/
    for (const panel of dashboard.panels.filter((p) => p.type !== 'row')) {
      // eslint-disable-next-line no-template-curly-in-string -- Grafana's variable syntax, not a template
      assert.equal(panel.datasource?.uid, '${datasource}')
      for (const { expr } of panel.targets ?? []) {
        const names = expr.match(/\b[a-z][a-z0-9_]*_(total|seconds|keys|bucket|count|sum)\b/g) ?? []
        assert.ok(names.length > 0, expr)
        for (const name of names) assert.match(name, contract, `${expr}: ${name}`)
      }
    }
  })
})

describe('shell scripts', () => {
  const scripts = ['scripts/ci/install-container-tools.sh', 'scripts/ci/make-base-images.sh']

  test('shellcheck passes the CI scripts and fails an unquoted expansion', async (t) => {
    if (!needTool(t, await commandWorks('shellcheck', ['--version']), 'shellcheck')) return
    // --external-sources: the installers source scripts/ci/apt.sh, which is checked along with them.
    const clean = await run('shellcheck', ['--external-sources', ...scripts])
    assert.equal(clean.code, 0, clean.stdout + clean.stderr)
    const broken = join(scratch, 'broken.sh')
    await writeFile(broken, (await readFile(join(repoRoot, scripts[1]!), 'utf8')).replace('rm -rf "$work"\n  trap - EXIT', 'rm -rf $work\n  trap - EXIT'))
    const result = await run('shellcheck', [broken])
    assert.equal(result.code, 1)
    assert.match(result.stdout, /SC2086/)
  })
})

describe('yamllint', () => {
  const yamllint = async (...args: string[]) => {
    // The repository's shared config; yamllint's relaxed preset where it is not there yet.
    const config = await readFile(join(repoRoot, '.yamllint.yml'), 'utf8').then(() => ['-c', join(repoRoot, '.yamllint.yml')], () => ['-d', 'relaxed'])
    return run('yamllint', ['-f', 'parsable', '-s', ...config, ...args])
  }

  test('the compose and Prometheus files are clean', async (t) => {
    if (!needTool(t, await commandWorks('yamllint', ['--version']), 'yamllint')) return
    const result = await yamllint(...yamlFiles)
    assert.equal(result.code, 0, result.stdout + result.stderr)
  })

  test('yamllint fails on a duplicated key', async (t) => {
    if (!needTool(t, await commandWorks('yamllint', ['--version']), 'yamllint')) return
    const file = join(scratch, 'duplicate.yml')
    await writeFile(file, (await readFile(join(repoRoot, 'docker-compose.identity-endpoint.yml'), 'utf8')) + '  caller:\n    init: true\n')
    const result = await yamllint(file)
    assert.notEqual(result.code, 0)
    assert.match(result.stdout, /duplication of key "caller"/)
  })
})
