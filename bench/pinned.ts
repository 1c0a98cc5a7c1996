// The pinned measurements of `npm run bench`: the server and all its threads on one core (taskset),
// the load from wrk on the other. Unpinned, V8's collector threads borrow the second core and the
// load generator competes with the server for both, which flatters a server that allocates a lot;
// pinned, each request's whole cost lands on the server's one core. wrk (C, event-driven) holds
// thousands of connections on one core, which autocannon cannot. Requests carry
// Accept-Encoding: gzip, as real clients' do.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

export const SERVER_CPU = 0;
export const LOAD_CPU = 1;

/** wrk and taskset are there, and the machine has the two cores to pin to. */
export function canPin(): string | undefined {
  if (os.cpus().length < 2) return 'fewer than two cores';
  for (const tool of ['wrk', 'taskset']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed (Debian: apt-get install wrk util-linux)`;
    }
  }
  return undefined;
}

/** Moves a process and every thread it has to one core (threads it starts later inherit it). */
export function pin(pid: number, cpu: number): void {
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
}

export interface WrkResult {
  rps: number;
  p50: number;
  p99: number;
  /** Connect, read, write and timeout errors. */
  errors: number;
  /** Responses by status code. */
  statuses: Record<string, number>;
}

// Counts responses by status in each wrk thread and prints them with the summary as one JSON line.
const WRK_SCRIPT = `
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  local counts = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("statuses")) do counts[tostring(status)] = (counts[tostring(status)] or 0) + n end
  end
  local parts = {}
  for status, n in pairs(counts) do table.insert(parts, string.format('"%s":%d', status, n)) end
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests":%d,"durationUs":%d,"p50":%f,"p99":%f,"errors":%d,"statuses":{%s}}\\n',
    summary.requests, summary.duration, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout, table.concat(parts, ",")))
end
`;

let scriptPath: string | undefined;
function wrkScript(): string {
  scriptPath ??= path.join(os.tmpdir(), `rampart-bench-${process.pid}.lua`);
  writeFileSync(scriptPath, WRK_SCRIPT);
  return scriptPath;
}

export interface WrkOptions {
  connections: number;
  durationS: number;
  headers?: Record<string, string>;
  /** Per-request timeout (wrk's default is 2 s; a request slower than that counts as an error). */
  timeoutS?: number;
}

/** Runs wrk on the load core against one URL and returns its figures. */
export function wrk(url: string, { connections, durationS, headers = {}, timeoutS = 10 }: WrkOptions): Promise<WrkResult> {
  const args = ['-c', String(LOAD_CPU), 'wrk', '-t1', `-c${connections}`, `-d${durationS}s`, `--timeout`, `${timeoutS}s`, '-s', wrkScript()];
  for (const [name, value] of Object.entries({ 'Accept-Encoding': 'gzip', ...headers })) args.push('-H', `${name}: ${value}`);
  args.push(url);
  return new Promise((resolve, reject) => {
    const child = spawn('taskset', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => {
      const line = /^WRK_JSON (.*)$/m.exec(out)?.[1];
      if (code !== 0 || !line) return reject(new Error(`wrk exited with ${code}: ${err || out}`));
      const r = JSON.parse(line) as { requests: number; durationUs: number; p50: number; p99: number; errors: number; statuses: Record<string, number> };
      resolve({ rps: r.requests / (r.durationUs / 1e6), p50: r.p50, p99: r.p99, errors: r.errors, statuses: r.statuses });
    });
  });
}

/** Peak resident memory of a process so far (VmHWM), in MB. */
export function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Math.round(Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024);
}

export interface ProbeResult {
  /** Latency of each answered probe, in ms, by status code. */
  latencies: Record<string, number[]>;
  statuses: Record<string, number>;
  /** Probes that got no answer (connection refused or reset, timeout). */
  failures: number;
}

/**
 * Sends one request every intervalMs, each on a fresh connection (as a Kubernetes probe does),
 * until stopped; records how long each took.
 */
export function probe(url: string, intervalMs: number, headers: Record<string, string> = {}, timeoutMs = 10_000): { stop: () => Promise<ProbeResult> } {
  const result: ProbeResult = { latencies: {}, statuses: {}, failures: 0 };
  const pending = new Set<Promise<void>>();
  const once = () => {
    const started = performance.now();
    const p = new Promise<void>((resolve) => {
      // agent: false: a new connection per probe, closed after it.
      const req = http.get(url, { agent: false, headers, timeout: timeoutMs }, (res) => {
        res.resume();
        res.on('end', () => {
          const status = String(res.statusCode ?? 0);
          (result.latencies[status] ??= []).push(performance.now() - started);
          result.statuses[status] = (result.statuses[status] ?? 0) + 1;
          resolve();
        });
        res.on('error', () => resolve());
      });
      req.on('timeout', () => req.destroy(new Error('probe timed out')));
      req.on('error', () => {
        result.failures += 1;
        resolve();
      });
    }).finally(() => pending.delete(p));
    pending.add(p);
  };
  const timer = setInterval(once, intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all(pending);
      return result;
    },
  };
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
