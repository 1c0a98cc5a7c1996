// PM2 process file: `pm2 start ecosystem.config.js --env production`, then `pm2 reload rampart`
// for zero-downtime deploys. CommonJS on purpose: PM2 cannot load this file as an ES module.
'use strict';

// Keep these in step with the app's SHUTDOWN_DRAIN_MS and SHUTDOWN_TIMEOUT_MS: PM2 must not kill
// a worker (kill_timeout) before it has drained and let its in-flight requests finish.
const drainMs = Number(process.env.SHUTDOWN_DRAIN_MS || 1500);
const shutdownTimeoutMs = Number(process.env.SHUTDOWN_TIMEOUT_MS || 10000);
const marginMs = 2000; // closing Redis and the pool, flushing logs

module.exports = {
  apps: [
    {
      name: process.env.PM2_APP_NAME || 'rampart',
      script: 'dist/server.js',
      // The deploy script sets RAMPART_DIR to its stable 'current' link, so reloads pick up new releases.
      cwd: process.env.RAMPART_DIR || __dirname,
      exec_mode: 'cluster',
      instances: process.env.PM2_INSTANCES || 'max', // default: one worker per core
      // Traffic moves to a new worker only after it has connected to Redis and PostgreSQL and
      // sent process.send('ready'); give up waiting after listen_timeout.
      wait_ready: true,
      listen_timeout: Number(process.env.PM2_LISTEN_TIMEOUT || 20000),
      kill_timeout: drainMs + shutdownTimeoutMs + marginMs,
      // V8 heap settings (the same in Dockerfile.backend; measured in BENCHMARKS.md). A capped old
      // space makes V8 collect before the heap balloons under load: RSS after load stays under
      // 150 MB per worker instead of 200+. A cap that small also makes V8 let the heap grow only
      // 1.3x between full collections, so a server promoting a few MB a second ran a full
      // mark-compact several times a second; growing it 1.7x halves them (a cached read: 61 -> 34
      // per 30k requests, 22 -> 11 us of collector time per request) for ~10 MB more RSS.
      // max_memory_restart is the backstop for a real leak.
      node_args: [`--max-old-space-size=${process.env.NODE_MAX_OLD_SPACE_MB || 128}`, '--heap-growing-percent=70'],
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
