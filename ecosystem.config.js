// PM2 process file: `pm2 start ecosystem.config.js --env production`, then `pm2 reload rampart`
// for zero-downtime deploys. CommonJS on purpose: PM2 cannot load this file as an ES module.
'use strict';

const os = require('node:os');

// Keep these in step with the app's SHUTDOWN_DRAIN_MS and SHUTDOWN_TIMEOUT_MS: PM2 must not kill
// a worker (kill_timeout) before it has drained and let its in-flight requests finish.
const drainMs = Number(process.env.SHUTDOWN_DRAIN_MS || 1500);
const shutdownTimeoutMs = Number(process.env.SHUTDOWN_TIMEOUT_MS || 10000);
const marginMs = 2000; // closing Redis and the pool, flushing logs

// The workers share the host's memory: each V8 heap may take its share of 75 % of it (the rest is
// for buffers, sockets, code, and the host), unless NODE_MAX_OLD_SPACE_MB fixes a size in MB.
const instances = process.env.PM2_INSTANCES || 'max'; // default: one worker per core
const requested = Number(instances);
const cores = os.availableParallelism();
const workers = Number.isInteger(requested) && requested > 0 ? requested : Math.max(1, cores + (Number.isInteger(requested) ? requested : 0));
const heapFlag = process.env.NODE_MAX_OLD_SPACE_MB
  ? `--max-old-space-size=${process.env.NODE_MAX_OLD_SPACE_MB}`
  : `--max-old-space-size-percentage=${Math.max(1, Math.floor(75 / workers))}`;

module.exports = {
  apps: [
    {
      name: process.env.PM2_APP_NAME || 'rampart',
      script: 'dist/server.js',
      // The deploy script sets RAMPART_DIR to its stable 'current' link, so reloads pick up new releases.
      cwd: process.env.RAMPART_DIR || __dirname,
      exec_mode: 'cluster',
      instances,
      // Traffic moves to a new worker only after it has connected to Redis and PostgreSQL and
      // sent process.send('ready'); give up waiting after listen_timeout.
      wait_ready: true,
      listen_timeout: Number(process.env.PM2_LISTEN_TIMEOUT || 20000),
      kill_timeout: drainMs + shutdownTimeoutMs + marginMs,
      // V8 heap settings (measured in BENCHMARKS.md). The heap follows the memory there is (above:
      // a share of the host's per worker; the image takes 75 % of its container's limit) instead
      // of a fixed 128 MB cap that crashed an app growing past it. Growing the heap at most 1.7x
      // between full collections keeps RSS close to the live heap (V8 would pick up to 4x for a
      // large heap); under a small cap V8 picked 1.3x and ran a full mark-compact several times a
      // second, which 1.7x halved. max_memory_restart is the backstop for a real leak.
      node_args: [heapFlag, '--heap-growing-percent=70'],
      max_memory_restart: process.env.PM2_MAX_MEMORY || '400M',
      // A crash loop backs off instead of spinning.
      exp_backoff_restart_delay: 200,
      max_restarts: 50,
      min_uptime: 5000,
      autorestart: true,
      watch: false,
      // The app logs JSON lines to stdout; PM2 adds a timestamp and merges the workers' streams.
      time: true,
      merge_logs: true,
      env: {
        NODE_ENV: 'development',
      },
      env_production: {
        NODE_ENV: 'production',
      },
    },
  ],
};
