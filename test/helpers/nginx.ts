// The shipped nginx configuration, run by the Debian nginx binary in a temporary prefix: only
// ports, file locations and the upstream address are rewritten, everything else is as shipped.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { toolAvailable } from './services';

const ROOT = path.resolve(__dirname, '../..');
const found = ['/usr/sbin/nginx', '/usr/local/sbin/nginx'].find((p) => spawnSync(p, ['-v']).status === 0);
export const NGINX = toolAvailable(found !== undefined, 'nginx (Debian package nginx)') ? found : undefined;

export interface NginxPorts {
  http: number;
  https: number;
  upstream: number;
}

export class TestNginx {
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'rampart-nginx-'));
  private child: ChildProcess | undefined;
  readonly conf: string;

  /**
   * `generalRate`: the general flood limit, per client address. Load tests from one address raise
   * it (nginx would rightly refuse thousands of requests a second from one client). `authRate`:
   * the auth routes' limit, raised only by the security scan (npm run scan), whose scanners must
   * reach the login handler; the tests keep it as shipped. `readTimeout`: how long nginx waits for
   * the app's answer (35s as shipped), shortened to see nginx's 504 in a test.
   */
  constructor(
    readonly ports: NginxPorts,
    generalRate?: string,
    { readTimeout, authRate }: { readTimeout?: string; authRate?: string } = {},
  ) {
    const d = this.dir;
    for (const sub of ['conf.d', 'rampart', 'tls', 'logs', 'tmp']) mkdirSync(path.join(d, sub));
    // Workers run as an unprivileged user: they need to write temporary request bodies.
    chmodSync(path.join(d, 'tmp'), 0o777);
    chmodSync(d, 0o755);
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=localhost',
        '-keyout',
        path.join(d, 'tls/privkey.pem'),
        '-out',
        path.join(d, 'tls/fullchain.pem'),
      ],
      { stdio: 'ignore' },
    );

    const main = readFileSync(path.join(ROOT, 'nginx/nginx.conf'), 'utf8')
      .replace('pid /run/nginx.pid;', `pid ${d}/nginx.pid;`)
      .replace('error_log /var/log/nginx/error.log warn;', `error_log ${d}/logs/error.log warn;`)
      .replace(
        'access_log /var/log/nginx/access.log rampart_json;',
        `access_log ${d}/logs/access.log rampart_json;\n    client_body_temp_path ${d}/tmp/body;\n    proxy_temp_path ${d}/tmp/proxy;\n    fastcgi_temp_path ${d}/tmp/fastcgi;\n    uwsgi_temp_path ${d}/tmp/uwsgi;\n    scgi_temp_path ${d}/tmp/scgi;`,
      )
      .replace('include /etc/nginx/conf.d/*.conf;', `include ${d}/conf.d/*.conf;`);
    this.conf = path.join(d, 'nginx.conf');
    writeFileSync(this.conf, main);

    const site = readFileSync(path.join(ROOT, 'nginx/conf.d/rampart.conf'), 'utf8')
      .replace(/^\s*listen \[::\]:.*$/gm, '')
      .replace('listen 80;', `listen 127.0.0.1:${ports.http};`)
      .replace('listen 443 ssl http2;', `listen 127.0.0.1:${ports.https} ssl http2;`)
      .replaceAll('/etc/nginx/tls/', `${d}/tls/`)
      .replaceAll('/etc/nginx/rampart/', `${d}/rampart/`)
      .replace('zone=rampart_api:10m rate=50r/s;', `zone=rampart_api:10m rate=${generalRate ?? '50r/s'};`)
      .replace('zone=rampart_auth:10m rate=5r/s;', `zone=rampart_auth:10m rate=${authRate ?? '5r/s'};`)
      .replace('proxy_read_timeout 35s;', `proxy_read_timeout ${readTimeout ?? '35s'};`);
    writeFileSync(path.join(d, 'conf.d/rampart.conf'), site);
    for (const name of readdirSync(path.join(ROOT, 'nginx/rampart'))) {
      const text = readFileSync(path.join(ROOT, 'nginx/rampart', name), 'utf8')
        .replaceAll('/etc/nginx/rampart/', `${d}/rampart/`)
        .replace('server 127.0.0.1:3000;', `server 127.0.0.1:${ports.upstream};`);
      writeFileSync(path.join(d, 'rampart', name), text);
    }
  }

  /** nginx's access log so far, one object per request (the rampart_json format of nginx.conf). */
  accessLog(): Record<string, unknown>[] {
    return readFileSync(path.join(this.dir, 'logs/access.log'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  /** `nginx -t` on this configuration: [exit code, output]. */
  test(): [number, string] {
    const r = spawnSync(NGINX!, ['-t', '-p', this.dir, '-c', this.conf], { encoding: 'utf8' });
    return [r.status ?? -1, `${r.stdout}${r.stderr}`];
  }

  async start(): Promise<void> {
    this.child = spawn(NGINX!, ['-p', this.dir, '-c', this.conf, '-g', 'daemon off;'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 500));
    if (this.child.exitCode !== null) throw new Error(`nginx exited: ${readFileSync(path.join(this.dir, 'logs/error.log'), 'utf8')}`);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
