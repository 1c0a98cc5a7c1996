// What monitoring/ ships, read for the tests: the rules, the dashboards' queries, and the metric
// names the app exposes (its own registry, the default process and Node metrics, the gauges of a
// merged PM2 scrape).
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Registry } from 'prom-client';
import { parse } from 'yaml';
import { mergedScrape } from '../../src/lib/cluster-metrics';
import { createMetrics } from '../../src/lib/metrics';

const MONITORING = path.resolve(__dirname, '../../monitoring');
export const PROMETHEUS_DIR = path.join(MONITORING, 'prometheus');
const DASHBOARDS_DIR = path.join(MONITORING, 'grafana/dashboards');

export interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export const ruleFiles = (): string[] =>
  readdirSync(path.join(PROMETHEUS_DIR, 'rules'))
    .filter((f) => f.endsWith('.yml'))
    .map((f) => path.join(PROMETHEUS_DIR, 'rules', f));

export function rules(): Rule[] {
  return ruleFiles().flatMap((file) => (parse(readFileSync(file, 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules));
}

export interface DashboardQuery {
  dashboard: string;
  panel: string;
  expr: string;
}

interface Panel {
  title?: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

export function dashboardFiles(): string[] {
  return readdirSync(DASHBOARDS_DIR)
    .filter((f) => f.endsWith('.json'))
    .map((f) => path.join(DASHBOARDS_DIR, f));
}

/** Every query of every panel (rows' panels included). */
export function dashboardQueries(): DashboardQuery[] {
  return dashboardFiles().flatMap((file) => {
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { title: string; panels: Panel[] };
    const walk = (panels: Panel[]): DashboardQuery[] =>
      panels.flatMap((p) => [
        ...(p.targets ?? []).filter((t) => t.expr).map((t) => ({ dashboard: doc.title, panel: p.title ?? '', expr: t.expr! })),
        ...walk(p.panels ?? []),
      ]);
    return walk(doc.panels);
  });
}

/**
 * A dashboard query as Prometheus would receive it from Grafana: the interval variables become a
 * window, the template variables match everything.
 */
export function concrete(expr: string, window = '5m'): string {
  return expr
    .replaceAll('$__rate_interval', window)
    .replaceAll('$__interval', window)
    .replaceAll('$__range', window)
    .replace(/=~?"\$\w+"/g, '=~".+"');
}

const FUNCTIONS_AND_KEYWORDS = new Set(
  'sum avg min max count rate irate increase delta changes resets by without on ignoring group_left group_right histogram_quantile topk bottomk and or unless bool offset time vector scalar abs clamp_min clamp_max label_replace max_over_time min_over_time avg_over_time sum_over_time absent deriv predict_linear sort sort_desc quantile count_values stddev stdvar le inf nan'.split(
    ' ',
  ),
);

/** The metric names an expression reads (labels, functions and recorded series left out). */
export function metricNames(expr: string): string[] {
  const withoutStrings = expr
    .replace(/"[^"]*"/g, '""')
    .replace(/\{[^}]*\}/g, '{}')
    .replace(/\[[^\]]*\]/g, '[]')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = [...withoutStrings.matchAll(/(?<![\w:])([a-zA-Z_][a-zA-Z0-9_:]*)(?![\w(:])/g)].map((m) => m[1]!);
  return [...new Set(names.filter((n) => !FUNCTIONS_AND_KEYWORDS.has(n.toLowerCase()) && !/^\d/.test(n) && !n.includes(':')))];
}

/** The names of the series the app's /metrics exposes (histograms as their _bucket, _sum and _count). */
export async function appMetricNames(): Promise<Set<string>> {
  const metrics = createMetrics({ defaultMetrics: true });
  const merged = new Registry();
  mergedScrape(merged, 2, 2);
  const all = [...(await metrics.registry.getMetricsAsJSON()), ...(await merged.getMetricsAsJSON())];
  return new Set(all.flatMap((m) => (String(m.type) === 'histogram' ? [`${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`] : [m.name])));
}

/** Metrics Prometheus itself makes for every target. */
export const SCRAPE_METRICS = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped']);

/** The app's metric namespaces: a name with one of these prefixes must be one the app exposes. */
export const isAppMetric = (name: string): boolean => /^(http_|rampart_|nodejs_|process_)/.test(name);
