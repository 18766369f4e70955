/**
 * A small SVG line chart: stacked panels sharing one time axis, with event markers across all of
 * them. Hand-written because the soak needs a picture and not a plotting library's dependencies.
 */

export interface Series { name: string, points: Array<[number, number]> }
export interface Panel { title: string, unit: string, series: Series[] }
export interface ChartEvent { x: number, label: string }

const colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b']
const width = 900
const panelHeight = 170
const left = 64
const right = 170
const top = 46
const gap = 40

const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

/** A rounded step for about `count` ticks up to max: 1, 2 or 5 times a power of ten. */
function niceStep (max: number, count: number): number {
  const raw = max / count
  const power = 10 ** Math.floor(Math.log10(raw))
  const unit = raw / power
  return (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 5 ? 5 : 10) * power
}

const format = (value: number) => Math.abs(value) >= 100 || Number.isInteger(value) ? String(Math.round(value)) : value.toFixed(1)

export function lineChart (options: { title: string, xLabel: string, panels: Panel[], events?: ChartEvent[] }): string {
  const { panels, events = [] } = options
  const plotWidth = width - left - right
  const eventRows = Math.ceil(events.length / 2)
  const height = top + panels.length * (panelHeight + gap) + 30 + eventRows * 15
  const xs = panels.flatMap((panel) => panel.series.flatMap((series) => series.points.map(([x]) => x)))
  const xMax = Math.max(1e-9, ...xs, ...events.map((event) => event.x))
  const xStep = niceStep(xMax, 8)
  const xOf = (x: number) => left + (x / xMax) * plotWidth
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${left}" y="22" font-size="15" font-weight="600">${escape(options.title)}</text>`
  ]
  panels.forEach((panel, index) => {
    const y0 = top + index * (panelHeight + gap)
    const ys = panel.series.flatMap((series) => series.points.map(([, y]) => y))
    const yMaxRaw = Math.max(1e-9, ...ys)
    const yStep = niceStep(yMaxRaw, 4)
    const yMax = Math.ceil(yMaxRaw / yStep) * yStep
    const yOf = (y: number) => y0 + panelHeight - (y / yMax) * panelHeight
    out.push(`<text x="${left}" y="${y0 - 8}" font-weight="600">${escape(panel.title)} (${escape(panel.unit)})</text>`)
    for (let y = 0; y <= yMax + yStep / 2; y += yStep) {
      out.push(`<line x1="${left}" x2="${left + plotWidth}" y1="${yOf(y).toFixed(1)}" y2="${yOf(y).toFixed(1)}" stroke="#e5e5e5"/>`)
      out.push(`<text x="${left - 6}" y="${(yOf(y) + 4).toFixed(1)}" text-anchor="end" fill="#555">${format(y)}</text>`)
    }
    for (let x = 0; x <= xMax + xStep / 2; x += xStep) {
      out.push(`<line x1="${xOf(x).toFixed(1)}" x2="${xOf(x).toFixed(1)}" y1="${y0 + panelHeight}" y2="${y0 + panelHeight + 4}" stroke="#555"/>`)
      out.push(`<text x="${xOf(x).toFixed(1)}" y="${y0 + panelHeight + 16}" text-anchor="middle" fill="#555">${format(x)}</text>`)
    }
    out.push(`<rect x="${left}" y="${y0}" width="${plotWidth}" height="${panelHeight}" fill="none" stroke="#999"/>`)
    events.forEach((event, eventIndex) => {
      out.push(`<line x1="${xOf(event.x).toFixed(1)}" x2="${xOf(event.x).toFixed(1)}" y1="${y0}" y2="${y0 + panelHeight}" stroke="#888" stroke-dasharray="3,3"/>`)
      if (index === 0) out.push(`<text x="${(xOf(event.x) + 2).toFixed(1)}" y="${y0 + 10 + (eventIndex % 2) * 10}" fill="#555" font-size="9">${eventIndex + 1}</text>`)
    })
    panel.series.forEach((series, seriesIndex) => {
      const color = colors[seriesIndex % colors.length] as string
      const path = series.points.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${xOf(x).toFixed(1)},${yOf(y).toFixed(1)}`).join(' ')
      if (path) out.push(`<path d="${path}" fill="none" stroke="${color}" stroke-width="1.6"/>`)
      const ly = y0 + 12 + seriesIndex * 16
      out.push(`<line x1="${left + plotWidth + 12}" x2="${left + plotWidth + 30}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2"/>`)
      out.push(`<text x="${left + plotWidth + 35}" y="${ly}">${escape(series.name)}</text>`)
    })
  })
  const axisY = top + panels.length * (panelHeight + gap) - gap + 30
  out.push(`<text x="${left + plotWidth / 2}" y="${axisY}" text-anchor="middle" fill="#333">${escape(options.xLabel)}</text>`)
  // The markers are numbered on the first panel; what each number means is listed below, in two columns.
  events.forEach((event, index) => {
    const x = left + (index % 2) * (plotWidth / 2 + 40)
    const y = axisY + 20 + Math.floor(index / 2) * 15
    out.push(`<text x="${x}" y="${y}" fill="#333">${index + 1}. ${escape(event.label)}</text>`)
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}
