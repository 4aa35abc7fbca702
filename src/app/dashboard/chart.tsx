import type { DayTotals } from './stats.js';

/**
 * Patches and vulnerabilities closed per day as an inline SVG bar chart:
 * two bars a day, scaled to the busiest day; no script, no dependency.
 */
export function DailyChart(props: { days: readonly DayTotals[] }) {
  const width = 560, height = 160, bottom = 20, top = 14;
  const max = Math.max(1, ...props.days.map((d) => Math.max(d.patches, d.cves)));
  const slot = width / Math.max(1, props.days.length);
  const bar = Math.max(2, slot / 2 - 3);
  const scale = (n: number) => (n / max) * (height - bottom - top);
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={`Patches and vulnerabilities closed per day, last ${props.days.length} days`} preserveAspectRatio="none">
        <line x1="0" y1={height - bottom} x2={width} y2={height - bottom} stroke="#999" stroke-width="1" />
        <text x="2" y="11" font-size="10" fill="#555">{`max ${max}`}</text>
        {props.days.map((d, i) => (
          <g>
            <rect class="bar-patches" x={i * slot + 2} y={height - bottom - scale(d.patches)} width={bar} height={scale(d.patches)} fill="#2f6fb3">
              <title>{`${d.day}: ${d.patches} patched`}</title>
            </rect>
            <rect class="bar-cves" x={i * slot + 2 + bar + 1} y={height - bottom - scale(d.cves)} width={bar} height={scale(d.cves)} fill="#d9822b">
              <title>{`${d.day}: ${d.cves} vulnerabilities closed`}</title>
            </rect>
            {i % 2 === props.days.length % 2 ? null : <text x={i * slot + 2} y={height - 5} font-size="9" fill="#555">{d.day.slice(5)}</text>}
          </g>
        ))}
      </svg>
      <figcaption><span class="key key-patches">■</span> images patched <span class="key key-cves">■</span> vulnerabilities closed (per UTC day)</figcaption>
    </figure>
  );
}
