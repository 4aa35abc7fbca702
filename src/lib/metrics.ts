/** Prometheus text exposition for the few series patchd keeps; no client library needed. */
export class Metrics {
  private readonly counters = new Map<string, number>();
  private readonly sums = new Map<string, { sum: number; count: number }>();

  count(name: string, labels: Readonly<Record<string, string>> = {}, by = 1): void {
    const key = series(name, labels);
    this.counters.set(key, (this.counters.get(key) ?? 0) + by);
  }

  observe(name: string, labels: Readonly<Record<string, string>>, value: number): void {
    const key = series(name, labels);
    const s = this.sums.get(key) ?? { sum: 0, count: 0 };
    s.sum += value;
    s.count++;
    this.sums.set(key, s);
  }

  render(gauges: Readonly<Record<string, number>> = {}): string {
    const lines: string[] = [];
    for (const [key, value] of [...this.counters].sort()) lines.push(`${key} ${value}`);
    for (const [key, { sum, count }] of [...this.sums].sort()) {
      const [name, labels = ''] = key.split(/(?=\{)/);
      lines.push(`${name}_sum${labels} ${sum}`, `${name}_count${labels} ${count}`);
    }
    for (const [key, value] of Object.entries(gauges).sort()) lines.push(`${key} ${value}`);
    return `${lines.join('\n')}\n`;
  }
}

function series(name: string, labels: Readonly<Record<string, string>>): string {
  const parts = Object.entries(labels).sort().map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, '_')}"`);
  return parts.length ? `${name}{${parts.join(',')}}` : name;
}
