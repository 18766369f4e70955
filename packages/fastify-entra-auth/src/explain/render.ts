import type { ExplainReport } from './explain.ts'

/* explain's text output. Claim values only: never the token, its segments or its signature. */

/** The claims shown, in the order a reader checks a managed identity's token. */
const SHOWN_CLAIMS = ['aud', 'iss', 'tid', 'ver', 'azp', 'appid', 'oid', 'sub', 'xms_mirid', 'roles', 'scp', 'idtyp', 'iat', 'nbf', 'exp']
const TIMES = new Set(['iat', 'nbf', 'exp'])

const value = (name: string, v: unknown) =>
  TIMES.has(name) && typeof v === 'number' && Number.isFinite(v) && Math.abs(v) < 8.64e12 ? `${v} (${new Date(v * 1000).toISOString().replace('.000Z', 'Z')})` : JSON.stringify(v)

/** The report as text for a terminal. */
export function renderText (report: ExplainReport): string {
  const { verdict, settings } = report
  const lines: string[] = []
  lines.push(report.mode === 'keys'
    ? `explain (--keys: discovery and JWKS read from ${settings.authorityHost}, signature checked)`
    : 'explain (offline: signature not checked; add --keys to read the tenant\'s keys and check it)')
  lines.push(`api settings: tenants ${settings.tenants.join(',')}; audiences ${settings.audiences.join(',')}; versions ${settings.tokenVersions.join(',')}; ` +
    `roles ${settings.requiredRoles.length ? settings.requiredRoles.join(',') : '(none given)'}; authority ${settings.authorityHost}` +
    (settings.issuerAssumed ? ' (not an Entra host: public-cloud issuer forms assumed)' : ''))
  lines.push(verdict.accepted
    ? `=> ${verdict.signature === 'checked' ? 'ACCEPTED' : 'ACCEPTED if the signature is valid'} (200)`
    : `=> REFUSED: ${verdict.status} ${verdict.reason}${report.fixes.length ? ': the fix is at the end' : ''}`)
  lines.push('', 'token (decoded, not verified; the token itself is never printed):')
  if (report.header) lines.push(`  header     ${Object.entries(report.header).map(([k, v]) => `${k} ${JSON.stringify(v)}`).join(', ')}`)
  if (report.claims) {
    for (const name of SHOWN_CLAIMS) if (name in report.claims) lines.push(`  ${name.padEnd(10)} ${value(name, report.claims[name])}`)
    const others = Object.keys(report.claims).filter((name) => !SHOWN_CLAIMS.includes(name))
    if (others.length) lines.push(`  (also: ${others.join(', ')})`)
  } else {
    lines.push('  (the payload does not decode)')
  }
  lines.push('', 'checks, in the order the api runs them:')
  const decisive = report.checks.find((check) => check.status === 'fail')
  for (const check of report.checks) {
    const mark = check.status === 'fail' ? 'FAIL' : check.status
    const tail = check === decisive ? `   <- the api stops here: ${verdict.status} ${check.reason}` : ''
    lines.push(`  ${mark.padEnd(11)} ${check.id.padEnd(18)} ${check.rule}${check.detail ? `: ${check.detail}` : ''}${tail}`)
  }
  lines.push('')
  if (verdict.accepted) {
    lines.push(verdict.signature === 'checked'
      ? 'verdict: ACCEPTED (200): the api would let this token in.'
      : 'verdict: ACCEPTED if the signature is valid (200): every check that needs no key passes. Not checked offline:')
  } else {
    lines.push(`verdict: REFUSED: the api answers ${verdict.status} ${verdict.error} (reason ${verdict.reason}): "${verdict.description}"${verdict.scope ? `, scope "${verdict.scope}"` : ''}`)
    if (verdict.signature === 'not checked') lines.push('  Also not checked offline (--keys checks them):')
  }
  for (const skipped of report.notChecked) lines.push(`    - ${skipped}`)
  for (const fix of report.fixes) {
    lines.push('', `fix (${fix.reason}): ${fix.title}`)
    for (const step of fix.steps) lines.push(step.startsWith('$ ') ? `    ${step}` : `  ${step}`)
  }
  if (report.notes.length) {
    lines.push('', 'notes:')
    for (const note of report.notes) lines.push(`  ${note}`)
  }
  return `${lines.join('\n')}\n`
}
