// The process: load config, connect dependencies, migrate, listen, signal readiness, and shut down
// in order on SIGTERM (Docker, Kubernetes), SIGINT (PM2 reload/stop, Ctrl-C) or PM2's message.
// Tracing first: its instrumentation must be in place before express, pg and ioredis load.
import { stopTracing } from './tracing';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApps } from './app';
import { ConfigError, loadConfig, type Config } from './config';
import { createDependencies, type Dependencies, type DependencyOptions } from './deps';
import { migrateAtStart, type StartUpMigration } from './lib/db/start-up-migration';
import { Lifecycle } from './lib/lifecycle';
import { LoadMonitor } from './lib/load-monitor';
import { createLogger, type Logger } from './lib/logger';
import { createMetrics, type Metrics } from './lib/metrics';
import { answerMetricRequests, ClusterMetrics, underPm2Cluster } from './lib/cluster-metrics';

export interface RunningServer {
  server: http.Server;
  deps: Dependencies;
  port: number;
  /** The operations listener (OPS_PORT): /health* and /metrics only. */
  ops?: { server: http.Server; port: number };
  shutdown(reason: string): Promise<void>;
}

function listen(server: http.Server, port: number, config: Config): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** How often Node looks for connections past their headers or request timeout: 1 s, or a tenth of a shorter headers timeout. */
function connectionsCheckingInterval(config: Config): number {
  return Math.min(1000, Math.ceil(config.headersTimeoutMs / 10));
}

/** How often, at most, a process at its connection cap says so in the log. */
const SHED_WARNING_INTERVAL_MS = 10_000;

/**
 * At most config.maxConnections open connections: beyond it Node closes new ones at once, and
 * each is counted. Under PM2's cluster mode a worker at its cap would instead hand the connection
 * back to the primary, which offers it again straight away, to this worker or another full one:
 * a loop that burns CPU in both and never closes the connection. dropMaxConnection closes it in
 * the worker like a single process does (it has no effect outside cluster mode).
 */
function limitConnections(server: http.Server, config: Config, metrics: Metrics, logger: Logger): void {
  server.maxConnections = config.maxConnections;
  (server as http.Server & { dropMaxConnection?: boolean }).dropMaxConnection = true;
  metrics.shed.inc({ reason: 'max_connections' }, 0); // present from the start, so a rate can be taken at once
  let refused = 0;
  let warnedAt = -Infinity;
  server.on('drop', () => {
    refused += 1;
    metrics.shed.inc({ reason: 'max_connections' });
    const now = Date.now();
    if (now - warnedAt >= SHED_WARNING_INTERVAL_MS) {
      warnedAt = now;
      logger.warn('connection limit reached; closing new connections', { maxConnections: config.maxConnections, refused });
    }
  });
}

export interface StartOptions extends DependencyOptions {
  /** A migration failed after start-up (the database was down at start, then answered): exit. */
  onFatal?: (err: unknown) => void;
}

/**
 * Migrates now when the database answers, else serves without it (database routes answer 503) and
 * migrates once it does. Off (MIGRATE_ON_START=false) when a release step migrates first, e.g. a
 * Kubernetes Job. The dependencies returned use the gated database.
 */
async function migrated(config: Config, deps: Dependencies, logger: Logger, onFatal: (err: unknown) => void): Promise<Dependencies> {
  if (!config.migrateOnStart) return deps;
  let migration: StartUpMigration;
  try {
    migration = await migrateAtStart(deps.db, { logger, onFatal });
  } catch (err) {
    await deps.close();
    throw err;
  }
  return {
    ...deps,
    db: migration.db,
    async close() {
      migration.stop();
      await deps.close();
    },
  };
}

export async function start(config: Config, logger: Logger, options: StartOptions = {}): Promise<RunningServer> {
  for (const warning of config.warnings) logger.warn(warning);
  const deps = await migrated(config, await createDependencies(config, logger, options), logger, options.onFatal ?? (() => undefined));

  const lifecycle = new Lifecycle();
  const metrics = createMetrics({ defaultMetrics: true });
  let clusterMetrics: ClusterMetrics | undefined;
  if (underPm2Cluster()) {
    answerMetricRequests(metrics.registry, logger);
    clusterMetrics = new ClusterMetrics(process.env.name ?? 'rampart', logger);
  }
  const load = new LoadMonitor(config.shed);
  const { app, operations } = createApps(deps, { lifecycle, metrics, clusterMetrics, load });
  const serverOptions: http.ServerOptions = {
    // Slow clients: Node answers 408 and closes the connection when the headers, or the whole
    // request (headers and body, not the response), take longer. Connections are checked every
    // second (Node's default is 30 s, which would let a 10 s limit run to 40 s).
    headersTimeout: config.headersTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    connectionsCheckingInterval: connectionsCheckingInterval(config),
    // Longer than the proxy's idle timeout, so the proxy closes idle connections first (no 502s).
    keepAliveTimeout: config.keepAliveTimeoutMs,
  };
  const server = http.createServer(serverOptions, app);
  limitConnections(server, config, metrics, logger);
  // The operations listener: a socket of its own, so a probe's connection never waits in an accept
  // queue that clients have filled (under overload, seconds on the API port). Clients never reach
  // it, so it has no connection cap of its own.
  const opsServer = config.opsPort === undefined ? undefined : http.createServer(serverOptions, operations);
  const servers = opsServer ? [server, opsServer] : [server];
  try {
    await listen(server, config.port, config);
    if (opsServer) await listen(opsServer, config.opsPort!, config);
  } catch (err) {
    for (const s of servers) if (s.listening) s.close();
    load.stop();
    await deps.close();
    throw err;
  }
  const port = (server.address() as AddressInfo).port;
  const ops = opsServer ? { server: opsServer, port: (opsServer.address() as AddressInfo).port } : undefined;
  logger.info('listening', { port, opsPort: ops?.port, env: config.env, store: deps.store.kind, database: deps.db.kind });

  let shuttingDown: Promise<void> | undefined;
  const shutdown = (reason: string): Promise<void> => {
    shuttingDown ??= (async () => {
      logger.info('shutdown started', { reason });
      lifecycle.beginDraining();
      // Keep listening a moment, answering with Connection: close, so the load balancer sees
      // /health fail and clients move their keep-alive connections elsewhere. The operations
      // listener goes on answering too (liveness 200, /health 503) and closes with the API port.
      await new Promise((r) => setTimeout(r, config.shutdownDrainMs));
      const closed = Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      // close() drops the sockets idle right now; keep sweeping for those that become idle later.
      const closeIdle = () => servers.forEach((s) => s.closeIdleConnections());
      closeIdle();
      const sweeper = setInterval(closeIdle, 100);
      void closed.finally(() => clearInterval(sweeper));
      const deadline = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), config.shutdownTimeoutMs).unref());
      if ((await Promise.race([closed, deadline])) === 'timeout') {
        clearInterval(sweeper);
        servers.forEach((s) => s.closeAllConnections());
        throw new Error(`in-flight requests did not finish within ${config.shutdownTimeoutMs} ms`);
      }
      load.stop();
      await deps.close();
      await stopTracing();
      logger.info('shutdown complete');
    })();
    return shuttingDown;
  };

  return { server, deps, port, ops, shutdown };
}

function flushAndExit(logger: Logger, code: number): void {
  logger.on('finish', () => process.exit(code));
  logger.end();
  setTimeout(() => process.exit(code), 1000).unref();
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const logger = createLogger({ level: config.logLevel, json: config.isProduction, defaultMeta: { pid: process.pid } });

  let running: RunningServer;
  // Set once the signal handlers exist: a migration that fails after start-up stops the process.
  const migration: { failed?: () => void } = {};
  try {
    running = await start(config, logger, { onFatal: () => migration.failed?.() });
  } catch (err) {
    logger.error('start-up failed', { error: err });
    flushAndExit(logger, 1);
    return;
  }

  let stopping = false;
  const stop = (reason: string, exitCode: number) => {
    if (stopping) {
      logger.error('second shutdown request; exiting now', { reason });
      flushAndExit(logger, 1);
      return;
    }
    stopping = true;
    running.shutdown(reason).then(
      () => flushAndExit(logger, exitCode),
      (err: unknown) => {
        logger.error('shutdown failed', { error: err });
        flushAndExit(logger, 1);
      },
    );
  };
  migration.failed = () => stop('migration failed', 1);
  process.on('SIGTERM', () => stop('SIGTERM', 0));
  process.on('SIGINT', () => stop('SIGINT', 0));
  process.on('message', (msg) => {
    if (msg === 'shutdown') stop('pm2 shutdown message', 0);
  });
  // A process that threw where nobody caught it is in an unknown state: log, leave in order, and
  // exit non-zero so PM2, Docker or systemd start a fresh one.
  process.on('uncaughtException', (err) => {
    logger.error('uncaught exception', { error: err });
    stop('uncaughtException', 1);
  });
  process.on('unhandledRejection', (reason) => {
    logger.error('unhandled rejection', { error: reason });
    stop('unhandledRejection', 1);
  });

  // PM2 (wait_ready) moves traffic to this worker only after this message: send it once Redis and
  // the database answer (and the migrations are applied: the database's ping says so), so a
  // reload never swaps a working worker for one that cannot serve.
  await waitForDependencies(running, logger, () => stopping);
  if (!stopping) process.send?.('ready');
}

async function waitForDependencies(running: RunningServer, logger: Logger, stopped: () => boolean): Promise<void> {
  let attempt = 0;
  for (;;) {
    if (stopped()) return;
    try {
      await Promise.all([running.deps.store.ping(), running.deps.db.ping()]);
      if (attempt > 0) logger.info('dependencies reachable; ready');
      return;
    } catch (err) {
      if (attempt === 0) logger.warn('waiting for Redis and the database before signalling ready', { error: (err as Error).message });
      attempt += 1;
      await new Promise((r) => setTimeout(r, Math.min(200 * attempt, 2000)));
    }
  }
}

if (require.main === module) {
  void main();
}
