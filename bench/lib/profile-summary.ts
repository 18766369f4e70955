import { readFileSync } from 'node:fs'

/** A V8 .cpuprofile (what `node --cpu-prof` writes), as far as the summary reads it. */
interface CpuProfile {
  nodes: Array<{ id: number, callFrame: { functionName: string, url: string, lineNumber: number }, hitCount?: number }>
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

export interface ProfileEntry {
  /** function (file:line), the file shortened to what follows node_modules/ or the repo root */
  name: string
  selfMs: number
  /** share of all samples, idle included */
  share: number
}

export interface ProfileSummary { totalMs: number, idleShare: number, entries: ProfileEntry[] }

const shorten = (url: string) => url.replace(/^file:\/\//, '').replace(/^.*node_modules\//, '').replace(/^.*\/(packages|services|bench)\//, '$1/')

/** Self time per function, summed over every node of the profile with the same name and place. */
export function summarize (path: string): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile
  const nameOf = new Map<number, string>()
  for (const node of profile.nodes) {
    const { functionName, url, lineNumber } = node.callFrame
    nameOf.set(node.id, url ? `${functionName || '(anonymous)'} (${shorten(url)}:${lineNumber + 1})` : functionName || '(anonymous)')
  }
  const selfUs = new Map<string, number>()
  for (let i = 0; i < profile.samples.length; i++) {
    const name = nameOf.get(profile.samples[i] as number) ?? '?'
    selfUs.set(name, (selfUs.get(name) ?? 0) + (profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0))
  }
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0)
  const entries = [...selfUs.entries()]
    .map(([name, us]) => ({ name, selfMs: us / 1000, share: us / total }))
    .sort((a, b) => b.selfMs - a.selfMs)
  return { totalMs: total / 1000, idleShare: (selfUs.get('(idle)') ?? 0) / total, entries }
}

export function formatSummary (summary: ProfileSummary, top: number): string {
  const lines = [`total ${summary.totalMs.toFixed(0)} ms sampled, idle ${(summary.idleShare * 100).toFixed(1)}%`, '| self ms | share | function |', '|--:|--:|---|']
  for (const entry of summary.entries.slice(0, top)) lines.push(`| ${entry.selfMs.toFixed(0)} | ${(entry.share * 100).toFixed(1)}% | ${entry.name} |`)
  return lines.join('\n') + '\n'
}
