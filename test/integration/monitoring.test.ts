// monitoring/: the Prometheus configuration and rules pass promtool (check config, check rules,
// and the rules' unit tests); every alert is tested firing and silent, has a severity, a summary
// and a runbook section; every rule and dashboard query reads metrics the app really exposes and
// parses as PromQL. test/system/monitoring.test.ts runs them against a real Prometheus.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import {
  appMetricNames,
  concrete,
  dashboardFiles,
  dashboardQueries,
  isAppMetric,
  metricNames,
  PROMETHEUS_DIR,
  ruleFiles,
  rules,
  SCRAPE_METRICS,
} from '../helpers/monitoring';
import { toolAvailable } from '../helpers/services';

const HAS_PROMTOOL = toolAvailable(spawnSync('promtool', ['--version']).status === 0, 'promtool (Debian package prometheus)');
const SKIP = HAS_PROMTOOL ? '' : ' [skipped: promtool not installed (Debian package prometheus)]';
const ROOT = path.resolve(__dirname, '../..');
const work = mkdtempSync(path.join(os.tmpdir(), 'rampart-monitoring-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const promtool = (...args: string[]) => spawnSync('promtool', args, { cwd: PROMETHEUS_DIR, encoding: 'utf8', timeout: 60_000 });
const alerts = () => rules().filter((r) => r.alert);

interface RuleTests {
  tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
}
const ruleTests = () =>
  readdirSync(path.join(PROMETHEUS_DIR, 'tests'))
    .filter((f) => f.endsWith('.test.yml'))
    .flatMap((f) => (parse(readFileSync(path.join(PROMETHEUS_DIR, 'tests', f), 'utf8')) as RuleTests).tests)
    .flatMap((t) => t.alert_rule_test ?? []);

describe.skipIf(!HAS_PROMTOOL)(`monitoring/prometheus with promtool${SKIP}`, () => {
  it('passes promtool check config (its rule files included)', () => {
    // The shipped file names the compose service's token file; promtool wants it to exist.
    const config = parse(readFileSync(path.join(PROMETHEUS_DIR, 'prometheus.yml'), 'utf8')) as {
      rule_files: string[];
      scrape_configs: { job_name: string; authorization?: { credentials_file?: string } }[];
    };
    const app = config.scrape_configs.find((s) => s.job_name === 'rampart')!;
    expect(app.authorization?.credentials_file).toBe('/tmp/ops-token');
    writeFileSync(path.join(work, 'ops-token'), 'x'.repeat(64));
    app.authorization!.credentials_file = path.join(work, 'ops-token');
    config.rule_files = config.rule_files.map((f) => path.join(PROMETHEUS_DIR, f));
    writeFileSync(path.join(work, 'prometheus.yml'), stringify(config));
    const check = promtool('check', 'config', path.join(work, 'prometheus.yml'));
    expect(check.stdout + check.stderr).toMatch(/SUCCESS: \d+ rules found/);
    expect(check.status, check.stdout + check.stderr).toBe(0);
    expect(config.scrape_configs.map((s) => s.job_name).sort()).toEqual(['node', 'postgres', 'rampart', 'redis']);
  });

  it('passes promtool check rules, with no warning', () => {
    const check = promtool('check', 'rules', ...ruleFiles());
    expect(check.status, check.stdout + check.stderr).toBe(0);
    expect(check.stdout + check.stderr).not.toMatch(/WARNING|FAILED/);
  });

  it("passes the rules' unit tests (promtool test rules)", () => {
    const files = readdirSync(path.join(PROMETHEUS_DIR, 'tests')).map((f) => path.join('tests', f));
    expect(files.length).toBeGreaterThanOrEqual(3);
    const run = promtool('test', 'rules', ...files);
    expect(run.status, run.stdout + run.stderr).toBe(0);
    expect(run.stdout.match(/SUCCESS/g)?.length).toBe(files.length);
  });
});

describe('monitoring/prometheus rules', () => {
  it('tests every alert both firing and silent', () => {
    const cases = ruleTests();
    for (const { alert } of alerts()) {
      const mine = cases.filter((c) => c.alertname === alert);
      expect(
        mine.some((c) => (c.exp_alerts ?? []).length > 0),
        `${alert} fires in a test`,
      ).toBe(true);
      expect(
        mine.some((c) => (c.exp_alerts ?? []).length === 0),
        `${alert} stays silent in a test`,
      ).toBe(true);
    }
    // A test of an alert that no longer exists would pass for nothing.
    const names = new Set(alerts().map((a) => a.alert));
    for (const c of cases) expect(names.has(c.alertname), c.alertname).toBe(true);
  });

  it('gives every alert a severity, a summary and its own runbook section', () => {
    const runbooks = readFileSync(path.join(ROOT, 'docs/runbooks.md'), 'utf8');
    const sections = new Set([...runbooks.matchAll(/^### (\w+)$/gm)].map((m) => m[1]!));
    for (const rule of alerts()) {
      expect(['critical', 'warning', 'info'], rule.alert).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      expect(rule.annotations?.runbook, rule.alert).toBe(`docs/runbooks.md#${rule.alert!.toLowerCase()}`);
      expect(sections.has(rule.alert!), `docs/runbooks.md has a section "### ${rule.alert}"`).toBe(true);
    }
    expect(alerts().length).toBeGreaterThanOrEqual(30);
  });

  it("reads only metrics the app exposes (in the app's namespaces) and series a rule records", async () => {
    const exposed = await appMetricNames();
    const recorded = new Set(rules().flatMap((r) => (r.record ? [r.record] : [])));
    for (const rule of rules()) {
      for (const name of metricNames(rule.expr)) {
        if (isAppMetric(name)) expect(exposed.has(name), `${rule.alert ?? rule.record} reads ${name}`).toBe(true);
      }
      for (const series of rule.expr.match(/\b\w+:\w+:\w+\b/g) ?? []) expect(recorded.has(series), `${rule.alert ?? rule.record} reads ${series}`).toBe(true);
    }
  });

  it('matches label values the app really gives (events, reasons, dependencies, states)', () => {
    const source = readdirSync(path.join(ROOT, 'src'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => readFileSync(path.join(ROOT, 'src', f), 'utf8'))
      .join('\n');
    const exprs = [...rules().map((r) => r.expr), ...dashboardQueries().map((q) => q.expr)];
    const values = exprs.flatMap((e) => [...e.matchAll(/\b(event|reason|dependency|state)(?:=|!=|=~|!~)"([^"$]+)"/g)].flatMap((m) => m[2]!.split('|')));
    expect(values).toContain('refresh_reuse');
    expect(values).toContain('expired');
    for (const value of new Set(values)) expect(source, value).toContain(`'${value}'`);
  });

  it('knows the metric names an expression reads', () => {
    expect(metricNames('sum by (job, le) (rate(http_request_duration_seconds_bucket{le="0.25", job=~"$job"}[5m])) / on (job) up')).toEqual([
      'http_request_duration_seconds_bucket',
      'up',
    ]);
    expect(metricNames('histogram_quantile(0.95, x_bucket) > 0.5 and job:y:ratio_rate5m')).toEqual(['x_bucket']);
  });
});

describe('monitoring/grafana dashboards', () => {
  it('ship the overview, API, security, dependencies and Node runtime dashboards, each with a unique uid', () => {
    const docs = dashboardFiles().map((f) => JSON.parse(readFileSync(f, 'utf8')) as { uid: string; title: string });
    expect(docs.map((d) => d.uid).sort()).toEqual(['rampart-api', 'rampart-dependencies', 'rampart-overview', 'rampart-runtime', 'rampart-security']);
    expect(new Set(docs.map((d) => d.title)).size).toBe(docs.length);
  });

  it('are well-formed for Grafana: a Prometheus data source variable, unique panel ids, panels inside the 24-column grid', () => {
    interface Panel {
      id: number;
      type: string;
      gridPos: { x: number; y: number; w: number; h: number };
      datasource?: { type: string; uid: string };
      targets?: { refId: string; expr: string }[];
    }
    for (const file of dashboardFiles()) {
      const doc = JSON.parse(readFileSync(file, 'utf8')) as {
        title: string;
        templating: { list: { name: string; type: string; query: unknown }[] };
        panels: Panel[];
      };
      const variable = doc.templating.list.find((v) => v.name === 'datasource');
      expect(variable, doc.title).toMatchObject({ type: 'datasource', query: 'prometheus' });
      expect(new Set(doc.panels.map((p) => p.id)).size, doc.title).toBe(doc.panels.length);
      for (const panel of doc.panels) {
        expect(panel.gridPos.x + panel.gridPos.w, `${doc.title} panel ${panel.id}`).toBeLessThanOrEqual(24);
        if (panel.type === 'row') continue;
        expect(panel.datasource, `${doc.title} panel ${panel.id}`).toEqual({ type: 'prometheus', uid: '${datasource}' });
        expect(panel.targets?.length, `${doc.title} panel ${panel.id}`).toBeGreaterThan(0);
        expect(new Set(panel.targets!.map((t) => t.refId)).size).toBe(panel.targets!.length);
      }
    }
  });

  it("query only metrics the app exposes (in the app's namespaces), series a rule records, or the exporters'", async () => {
    const exposed = await appMetricNames();
    const recorded = new Set(rules().flatMap((r) => (r.record ? [r.record] : [])));
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThan(30);
    for (const q of queries) {
      const names = metricNames(q.expr);
      expect(names.length + (q.expr.match(/\b\w+:\w+:\w+\b/g)?.length ?? 0), `${q.dashboard} / ${q.panel} reads something`).toBeGreaterThan(0);
      for (const name of names) {
        const known = isAppMetric(name) ? exposed.has(name) : SCRAPE_METRICS.has(name) || /^(node|redis|pg)_/.test(name);
        expect(known, `${q.dashboard} / ${q.panel} reads ${name}`).toBe(true);
      }
      for (const series of q.expr.match(/\b\w+:\w+:\w+\b/g) ?? []) expect(recorded.has(series), `${q.dashboard} / ${q.panel} reads ${series}`).toBe(true);
    }
  });

  it.skipIf(!HAS_PROMTOOL)(`parse as PromQL, Grafana's variables filled in (promtool check rules)${SKIP}`, () => {
    const queries = dashboardQueries();
    const file = path.join(work, 'dashboard-queries.yml');
    writeFileSync(
      file,
      stringify({ groups: [{ name: 'dashboards', rules: queries.map((q, i) => ({ record: `dashboard:query:${i}`, expr: concrete(q.expr) })) }] }),
    );
    const check = promtool('check', 'rules', file);
    expect(check.status, check.stdout + check.stderr).toBe(0);
    expect(check.stdout).toContain(`SUCCESS: ${queries.length} rules found`);
  });
});
