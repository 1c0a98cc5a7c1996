// deploy/kubernetes, checked offline (no API server runs here): every overlay rendered with
// `kubectl kustomize`, every object validated against the Kubernetes 1.32 API with unknown fields
// rejected, and the policy the doctor applies (src/cli/kubernetes-policy.ts): probes on paths the
// app answers as the probes expect, matching selectors, a grace period that covers the app's own
// shutdown timings, bounded and locked-down containers, pinned images.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  appContainer as policyAppContainer,
  containerEnv,
  kubernetesProblems,
  OPERATIONS_PATHS,
  renderOverlay,
  SHUTDOWN_MARGIN_MS,
  type K8sObject,
} from '../../src/cli/kubernetes-policy';
import { runChecks } from '../../src/cli/check-production';
import { loadConfig } from '../../src/config';
import { Lifecycle } from '../../src/lib/lifecycle';
import { createTestContext, type TestContext } from '../helpers/app';
import { loadKubernetesModels, schemaErrors } from '../helpers/kubernetes-schema';
import { toolAvailable } from '../helpers/services';

const ROOT = path.resolve(__dirname, '../..');
const KUBERNETES = path.join(ROOT, 'deploy/kubernetes');
const OVERLAYS = ['development', 'production'];
const HAS_KUBECTL = toolAvailable(spawnSync('kubectl', ['version', '--client']).status === 0, 'kubectl 1.32 with kustomize (comes with these machines)');
const skipped = HAS_KUBECTL ? '' : ' [skipped: kubectl not installed]';

const clone = <T>(value: T): T => structuredClone(value);
const find = (objects: K8sObject[], kind: string) => objects.find((o) => o.kind === kind)!;
const appContainer = (objects: K8sObject[]) => policyAppContainer(objects)!;

describe.skipIf(!HAS_KUBECTL)(`deploy/kubernetes overlays${skipped}`, () => {
  const rendered = new Map<string, K8sObject[]>();
  beforeAll(async () => {
    await loadKubernetesModels();
    for (const overlay of OVERLAYS) rendered.set(overlay, renderOverlay(path.join(KUBERNETES, 'overlays', overlay)));
  });

  describe.each(OVERLAYS)('%s', (overlay) => {
    const objects = () => rendered.get(overlay)!;

    it('renders every kind the app needs', () => {
      expect(
        objects()
          .map((o) => o.kind)
          .sort(),
      ).toEqual(['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'Ingress', 'Job', 'NetworkPolicy', 'PodDisruptionBudget', 'Service', 'ServiceMonitor']);
    });

    it('validates against the Kubernetes 1.32 API, unknown fields rejected', () => {
      expect(objects().flatMap(schemaErrors)).toEqual([]);
    });

    it('follows the policy: probes, selectors, grace period, resources, security context, images', () => {
      expect(kubernetesProblems(objects())).toEqual([]);
    });

    it('gives the pods a grace period covering preStop, drain, shutdown budget and margin, with the app reading the overlay env', () => {
      const container = appContainer(objects());
      const config = loadConfig({ ...containerEnv(objects(), container), NODE_ENV: 'test' });
      const needed = container.lifecycle.preStop.sleep.seconds * 1000 + config.shutdownDrainMs + config.shutdownTimeoutMs + SHUTDOWN_MARGIN_MS;
      expect(find(objects(), 'Deployment').spec.template.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThanOrEqual(needed);
    });
  });

  it('production pins a release image by tag and digest and leaves the pods to the migration Job', () => {
    const objects = rendered.get('production')!;
    for (const o of objects.filter((x) => x.kind === 'Deployment' || x.kind === 'Job')) {
      expect(o.spec.template.spec.containers[0].image).toMatch(/^[\w./-]+:(?!latest@)[\w.-]+@sha256:[0-9a-f]{64}$/);
    }
    expect(containerEnv(objects, appContainer(objects)).MIGRATE_ON_START).toBe('false');
    expect(containerEnv(objects, appContainer(objects)).NODE_ENV).toBe('production');
  });

  it('commits no secret: the Secret is a template with empty values, valid against the API', () => {
    const secret = parse(readFileSync(path.join(KUBERNETES, 'base/secret.template.yaml'), 'utf8')) as K8sObject;
    expect(schemaErrors(secret)).toEqual([]);
    expect(Object.values(secret.stringData as Record<string, string>).every((v) => v === '')).toBe(true);
    expect(kubernetesProblems([...rendered.get('production')!, { ...secret, stringData: { OPS_TOKEN: 'x'.repeat(40) } }])).toEqual([
      'Secret/rampart-secrets: a Secret with values is rendered from the repository; create it from your secret store instead',
    ]);
    const keys = Object.keys(secret.stringData as object);
    const monitor = find(rendered.get('production')!, 'ServiceMonitor');
    expect(keys).toContain(monitor.spec.endpoints[0].authorization.credentials.key);
  });

  it('rejects a misspelled field, rendered by kustomize like the real thing', () => {
    const copy = mkdtempSync(path.join(os.tmpdir(), 'rampart-k8s-'));
    try {
      cpSync(KUBERNETES, copy, { recursive: true });
      const file = path.join(copy, 'base/deployment.yaml');
      writeFileSync(file, readFileSync(file, 'utf8').replace('readinessProbe:', 'readinesProbe:'));
      const errors = renderOverlay(path.join(copy, 'overlays/production')).flatMap(schemaErrors);
      expect(errors).toEqual(['Deployment/rampart.spec.template.spec.containers[0].readinesProbe: unknown field (not in V1Container)']);
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });

  it('rejects wrong types and missing required fields', () => {
    const objects = rendered.get('production')!;
    const deployment = clone(find(objects, 'Deployment'));
    deployment.spec.replicas = '3';
    delete deployment.spec.selector;
    expect(schemaErrors(deployment)).toEqual(['Deployment/rampart.spec.replicas: expected a number, got string', 'Deployment/rampart.spec.selector: required']);
    const monitor = clone(find(objects, 'ServiceMonitor'));
    monitor.spec.endpoints[0].bearerTokenSecret = {};
    expect(schemaErrors(monitor)).toEqual(['ServiceMonitor/rampart.spec.endpoints[0].bearerTokenSecret: unknown field (not in MonitoringV1Endpoint)']);
  });

  it('fails when the app shutdown no longer fits the grace period, naming every term', () => {
    const objects = rendered.get('production')!;
    // As if the app's default shutdown budget grew: the overlay leaves SHUTDOWN_TIMEOUT_MS to it.
    expect(kubernetesProblems(objects, { SHUTDOWN_TIMEOUT_MS: '30000' })).toEqual([
      'Deployment/rampart: terminationGracePeriodSeconds 25 s is shorter than preStop 5 s + SHUTDOWN_DRAIN_MS 3000 ms + SHUTDOWN_TIMEOUT_MS 30000 ms + 2000 ms margin = 40 s: pods would be killed with requests in flight',
    ]);
  });

  it('reports every broken rule at once', () => {
    const objects = clone(rendered.get('production')!);
    const deployment = find(objects, 'Deployment');
    const container = deployment.spec.template.spec.containers[0];
    container.readinessProbe.httpGet.path = '/health/ready';
    container.image = 'registry.example.com/rampart/backend:latest';
    delete container.resources.limits.memory;
    container.securityContext.readOnlyRootFilesystem = false;
    delete container.lifecycle;
    deployment.spec.strategy.rollingUpdate.maxUnavailable = 1;
    deployment.spec.template.spec.automountServiceAccountToken = true;
    find(objects, 'Service').spec.selector = { app: 'other' };
    find(objects, 'PodDisruptionBudget').spec.selector.matchLabels = { app: 'other' };
    find(objects, 'Ingress').spec.rules[0].http.paths[0].path = '/';
    find(objects, 'ConfigMap').data.MIGRATE_ON_START = 'true';
    expect(kubernetesProblems(objects)).toEqual([
      'Deployment/rampart container rampart: readinessProbe path is /health/ready, expected /health',
      "Deployment/rampart: no preStop sleep: the pod would get SIGTERM before it leaves the Service's endpoints",
      'Deployment/rampart: a migration Job runs, so the pods must have MIGRATE_ON_START=false',
      'Deployment/rampart: rolling update maxUnavailable must be 0',
      'Deployment/rampart: automountServiceAccountToken is not false (the app never calls the API server)',
      'Deployment/rampart container rampart: image registry.example.com/rampart/backend:latest has no tag or is :latest; name a release tag (and its digest)',
      'Deployment/rampart container rampart: no memory limits',
      'Deployment/rampart container rampart: readOnlyRootFilesystem is not true',
      'no Service selects the pods of Deployment/rampart',
      'PodDisruptionBudget/rampart: selector does not match the pods of Deployment/rampart',
      'ServiceMonitor/rampart: selects no Service of the app',
      'ServiceMonitor/rampart: endpoint port ops is not a named port of the Service',
      `Ingress/rampart: path / routes operations paths (${OPERATIONS_PATHS.join(', ')}) through the Ingress`,
    ]);
  });

  it('keeps the probes on the operations listener and the Ingress off it', () => {
    const objects = clone(rendered.get('production')!);
    find(objects, 'Deployment').spec.template.spec.containers[0].livenessProbe.httpGet.port = 'http';
    const path0 = find(objects, 'Ingress').spec.rules[0].http.paths[0];
    path0.backend.service.port = { name: 'ops' };
    expect(kubernetesProblems(objects)).toEqual([
      "Deployment/rampart container rampart: livenessProbe port http is not the app's OPS_PORT (9102)",
      `Ingress/rampart: path ${path0.path} routes to the operations listener (OPS_PORT 9102) through the Ingress`,
    ]);
  });

  describe('scripts/check-production --kubernetes (the doctor)', () => {
    const secrets = {
      REDIS_URL: 'redis://r:6379',
      DATABASE_URL: 'postgres://u:p@db/rampart',
      JWT_ACCESS_SECRET: 'a'.repeat(48),
      JWT_REFRESH_SECRET: 'b'.repeat(48),
    };
    const doctor = async (env: Record<string, string>, overlay = path.join(KUBERNETES, 'overlays/production')) => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'rampart-doctor-'));
      try {
        const envFile = path.join(dir, 'secret.env');
        writeFileSync(
          envFile,
          Object.entries(env)
            .map(([k, v]) => `${k}=${v}\n`)
            .join(''),
        );
        return (await runChecks({ envFile, ecosystem: 'none', nginxDir: 'none', connect: false, kubernetes: overlay }))
          .filter((f) => !f.ok)
          .map((f) => `${f.check}: ${f.message}`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    };

    it('passes the overlay with the Secret it will run with, and checks no PM2 or nginx file', async () => {
      expect(await doctor(secrets)).toEqual([]);
    });

    it('reports the configuration and the overlay problems at once', async () => {
      const { JWT_REFRESH_SECRET: _r, ...missing } = secrets;
      expect(await doctor({ ...missing, SHUTDOWN_TIMEOUT_MS: '30000' })).toEqual([
        'configuration: JWT_REFRESH_SECRET: required in production (at least 32 bytes)',
        'kubernetes: Deployment/rampart: terminationGracePeriodSeconds 25 s is shorter than preStop 5 s + SHUTDOWN_DRAIN_MS 3000 ms + SHUTDOWN_TIMEOUT_MS 30000 ms + 2000 ms margin = 40 s: pods would be killed with requests in flight',
      ]);
    });

    it('says when the overlay does not render', async () => {
      const problem = (await doctor(secrets, path.join(KUBERNETES, 'overlays/nowhere'))).find((p) => p.startsWith('kubernetes:'));
      expect(problem).toMatch(/^kubernetes: kubectl kustomize .*overlays\/nowhere failed: /);
    });
  });
});

describe('the probe paths, answered by the app as the probes expect', () => {
  let ctx: TestContext;
  const lifecycle = new Lifecycle();
  beforeAll(async () => {
    ctx = await createTestContext({ app: { lifecycle } });
  });
  afterAll(async () => {
    await ctx?.close();
  });

  it('readiness /health and liveness /health/live answer 200 while serving; readiness alone turns 503 once draining', async () => {
    const deployment = parse(readFileSync(path.join(KUBERNETES, 'base/deployment.yaml'), 'utf8')) as K8sObject;
    const container = deployment.spec.template.spec.containers[0] as K8sObject;
    const paths = {
      readiness: container.readinessProbe.httpGet.path as string,
      liveness: container.livenessProbe.httpGet.path as string,
      startup: container.startupProbe.httpGet.path as string,
    };
    for (const p of Object.values(paths)) expect((await request(ctx.app).get(p)).status, p).toBe(200);
    lifecycle.beginDraining();
    expect((await request(ctx.app).get(paths.readiness)).status).toBe(503);
    expect((await request(ctx.app).get(paths.liveness)).status).toBe(200);
    expect((await request(ctx.app).get(paths.startup)).status).toBe(200);
    // The API port is the app's PORT (3000 unless set), which the image exposes; the probes go to
    // the operations listener, the OPS_PORT of the ConfigMap.
    expect(container.ports[0].containerPort).toBe(loadConfig({ NODE_ENV: 'test' }).port);
    expect(readFileSync(path.join(ROOT, 'Dockerfile.backend'), 'utf8')).toMatch(new RegExp(`^EXPOSE ${container.ports[0].containerPort}$`, 'm'));
    const configMap = parse(readFileSync(path.join(KUBERNETES, 'base/configmap.yaml'), 'utf8')) as K8sObject;
    const ops = (container.ports as K8sObject[]).find((p) => p.name === 'ops')!;
    expect(ops.containerPort).toBe(loadConfig({ NODE_ENV: 'test', OPS_PORT: configMap.data.OPS_PORT as string }).opsPort);
    for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) expect(container[probe].httpGet.port, probe).toBe('ops');
  });
});
