// Rules a rendered Kubernetes overlay (deploy/kubernetes/) must follow to fit this app: probes on
// the app's health paths and port, a grace period that covers preStop + drain + shutdown budget,
// selectors that match, every container bounded and locked down, images pinned. One list of
// problems, all at once. Used by `scripts/check-production --kubernetes` and by
// test/integration/kubernetes.test.ts, so the doctor and CI cannot disagree.
/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-assignment --
   rendered YAML of many kinds, read field by field; every value read is checked before it is trusted */
import { execFileSync } from 'node:child_process';
import { loadConfig, ConfigError, type Config, type Env } from '../config';

/** A rendered object, as far as these rules read it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- YAML documents of many kinds, read by path
export type K8sObject = Record<string, any>;

/** Closing Redis and the pool and flushing logs after the shutdown budget (as ecosystem.config.js). */
export const SHUTDOWN_MARGIN_MS = 2000;

/** Paths only operators and the cluster may reach: never routed through the Ingress. */
export const OPERATIONS_PATHS = ['/health', '/health/live', '/health/ready', '/health/detailed', '/metrics', '/openapi.json', '/api/docs'];

/** `kubectl kustomize DIR`, parsed: every object the overlay renders. */
export function renderOverlay(dir: string): K8sObject[] {
  const text = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
  // Loaded here, not at the top: yaml is a development dependency, and the image (production
  // dependencies only) must still be able to run the doctor's other checks.
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on demand, see above
  const { parseAllDocuments } = require('yaml') as typeof import('yaml');
  return parseAllDocuments(text)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

const where = (o: K8sObject) => `${o.kind}/${o.metadata?.name}`;

function matches(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

function podSpecs(objects: K8sObject[]): { owner: K8sObject; spec: K8sObject }[] {
  return objects.filter((o) => o.kind === 'Deployment' || o.kind === 'Job').map((o) => ({ owner: o, spec: (o.spec?.template?.spec ?? {}) as K8sObject }));
}

/** The environment a container gets from its ConfigMaps and literal env (Secrets are not in a render). */
export function containerEnv(objects: K8sObject[], container: K8sObject): Env {
  const env: Env = {};
  for (const from of (container.envFrom ?? []) as K8sObject[]) {
    const name = from.configMapRef?.name as string | undefined;
    const map = objects.find((o) => o.kind === 'ConfigMap' && o.metadata?.name === name);
    Object.assign(env, map?.data ?? {});
  }
  for (const e of (container.env ?? []) as K8sObject[]) if (typeof e.value === 'string') env[e.name as string] = e.value;
  return env;
}

/** The app's container: the first of the one Deployment's pod template. */
export function appContainer(objects: K8sObject[]): K8sObject | undefined {
  return objects.find((o) => o.kind === 'Deployment')?.spec?.template?.spec?.containers?.[0] as K8sObject | undefined;
}

/** The app's timings for this environment: its own defaults where the overlay sets nothing. */
function appConfig(env: Env): Config | string[] {
  try {
    // Only the settings matter here; the production requirements (secrets) are checked elsewhere.
    return loadConfig({ ...env, NODE_ENV: 'test' });
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
}

function isLatest(image: string): boolean {
  const withoutDigest = image.split('@')[0]!;
  const lastSegment = withoutDigest.slice(withoutDigest.lastIndexOf('/') + 1);
  const tag = lastSegment.includes(':') ? lastSegment.slice(lastSegment.indexOf(':') + 1) : undefined;
  return tag === undefined || tag === 'latest';
}

function containerProblems(owner: K8sObject, spec: K8sObject, container: K8sObject): string[] {
  const at = `${where(owner)} container ${container.name}`;
  const problems: string[] = [];
  const image = String(container.image ?? '');
  if (isLatest(image)) problems.push(`${at}: image ${image || '(none)'} has no tag or is :latest; name a release tag (and its digest)`);
  else if (!image.includes('@sha256:')) problems.push(`${at}: image ${image} has no digest; pin tag@sha256:...`);
  for (const kind of ['requests', 'limits']) {
    for (const resource of ['cpu', 'memory']) {
      if (container.resources?.[kind]?.[resource] === undefined) problems.push(`${at}: no ${resource} ${kind}`);
    }
  }
  const sc = (container.securityContext ?? {}) as K8sObject;
  const podSc = (spec.securityContext ?? {}) as K8sObject;
  if ((sc.runAsNonRoot ?? podSc.runAsNonRoot) !== true) problems.push(`${at}: runAsNonRoot is not true`);
  const uid = sc.runAsUser ?? podSc.runAsUser;
  if (typeof uid !== 'number' || uid === 0) problems.push(`${at}: runAsUser must be a numeric non-root user (the image's is 1000)`);
  if (sc.readOnlyRootFilesystem !== true) problems.push(`${at}: readOnlyRootFilesystem is not true`);
  if (sc.allowPrivilegeEscalation !== false) problems.push(`${at}: allowPrivilegeEscalation is not false`);
  if (!((sc.capabilities?.drop ?? []) as string[]).includes('ALL')) problems.push(`${at}: capabilities do not drop ALL`);
  if ((sc.seccompProfile?.type ?? podSc.seccompProfile?.type) !== 'RuntimeDefault') problems.push(`${at}: seccomp profile is not RuntimeDefault`);
  const tmp = ((container.volumeMounts ?? []) as K8sObject[]).find((m) => m.mountPath === '/tmp');
  const tmpVolume = ((spec.volumes ?? []) as K8sObject[]).find((v) => v.name === tmp?.name);
  if (!tmp || !tmpVolume?.emptyDir) problems.push(`${at}: no writable /tmp (an emptyDir) under the read-only root`);
  const command = ((container.command ?? []) as string[]).join(' ');
  if (/\bpm2\b/.test(command)) problems.push(`${at}: runs PM2; one node process per container, Kubernetes supervises`);
  return problems;
}

function probeProblems(deployment: K8sObject, container: K8sObject, config: Config): string[] {
  const at = `${where(deployment)} container ${container.name}`;
  const problems: string[] = [];
  const ports = (container.ports ?? []) as K8sObject[];
  const expected: [string, string][] = [
    ['readinessProbe', '/health'],
    ['livenessProbe', '/health/live'],
    ['startupProbe', '/health/live'],
  ];
  for (const [probe, path] of expected) {
    const get = container[probe]?.httpGet as K8sObject | undefined;
    if (!get) {
      problems.push(`${at}: no ${probe} (httpGet ${path})`);
      continue;
    }
    if (get.path !== path) problems.push(`${at}: ${probe} path is ${get.path}, expected ${path}`);
    const port = typeof get.port === 'string' ? ports.find((p) => p.name === get.port)?.containerPort : get.port;
    // With an operations listener, probes belong on it: on PORT they queue behind clients.
    if (config.opsPort !== undefined) {
      if (port !== config.opsPort) problems.push(`${at}: ${probe} port ${get.port} is not the app's OPS_PORT (${config.opsPort})`);
    } else if (port !== config.port) problems.push(`${at}: ${probe} port ${get.port} is not the app's PORT (${config.port})`);
  }
  if (!ports.some((p) => p.containerPort === config.port)) problems.push(`${at}: no containerPort ${config.port} (the app's PORT)`);
  if (config.opsPort !== undefined && !ports.some((p) => p.containerPort === config.opsPort)) {
    problems.push(`${at}: no containerPort ${config.opsPort} (the app's OPS_PORT)`);
  }
  return problems;
}

function gracePeriodProblems(deployment: K8sObject, container: K8sObject, config: Config): string[] {
  const spec = deployment.spec.template.spec as K8sObject;
  const preStop = container.lifecycle?.preStop as K8sObject | undefined;
  const at = where(deployment);
  if (typeof preStop?.sleep?.seconds !== 'number') return [`${at}: no preStop sleep: the pod would get SIGTERM before it leaves the Service's endpoints`];
  const grace = (spec.terminationGracePeriodSeconds ?? 30) as number;
  const neededMs = preStop.sleep.seconds * 1000 + config.shutdownDrainMs + config.shutdownTimeoutMs + SHUTDOWN_MARGIN_MS;
  if (grace * 1000 < neededMs) {
    return [
      `${at}: terminationGracePeriodSeconds ${grace} s is shorter than preStop ${preStop.sleep.seconds} s + SHUTDOWN_DRAIN_MS ${config.shutdownDrainMs} ms + SHUTDOWN_TIMEOUT_MS ${config.shutdownTimeoutMs} ms + ${SHUTDOWN_MARGIN_MS} ms margin = ${neededMs / 1000} s: pods would be killed with requests in flight`,
    ];
  }
  return [];
}

/** Is this request path routed by an Ingress path (Prefix: whole segments; Exact; else as Prefix)? */
function routes(rule: K8sObject, requestPath: string): boolean {
  const p = String(rule.path ?? '/');
  if (rule.pathType === 'Exact') return requestPath.toLowerCase() === p.toLowerCase();
  const prefix = p.replace(/\/+$/, '');
  return prefix === '' || requestPath === prefix || requestPath.startsWith(`${prefix}/`);
}

/** The container port a Service port leads to (targetPort by name or number; port when unset). */
function containerPortOf(servicePort: K8sObject, container: K8sObject | undefined): number | undefined {
  const target = (servicePort.targetPort ?? servicePort.port) as string | number;
  if (typeof target === 'number') return target;
  return ((container?.ports ?? []) as K8sObject[]).find((p) => p.name === target)?.containerPort as number | undefined;
}

function ingressProblems(ingress: K8sObject, services: K8sObject[], config: Config | undefined, container: K8sObject | undefined): string[] {
  const at = where(ingress);
  const problems: string[] = [];
  const annotations = (ingress.metadata?.annotations ?? {}) as Record<string, string>;
  const a = (name: string) => annotations[`nginx.ingress.kubernetes.io/${name}`];
  if (a('ssl-redirect') !== 'false' || (a('force-ssl-redirect') ?? 'false') !== 'false') {
    problems.push(`${at}: plain-HTTP API requests must not be redirected (ssl-redirect and force-ssl-redirect "false")`);
  }
  if (!/return 403 .*https_required/.test(a('configuration-snippet') ?? '')) problems.push(`${at}: plain HTTP is not answered 403 https_required`);
  if (config && a('proxy-body-size')) {
    const size = /^(\d+)([kmg]?)$/i.exec(a('proxy-body-size')!);
    const bytes = size ? Number(size[1]) * 1024 ** ['', 'k', 'm', 'g'].indexOf(size[2]!.toLowerCase()) : NaN;
    if (bytes !== config.bodyLimitBytes)
      problems.push(`${at}: proxy-body-size ${a('proxy-body-size')} differs from BODY_LIMIT (${config.bodyLimitBytes} bytes)`);
  } else if (config) problems.push(`${at}: no proxy-body-size (ingress-nginx's default 1m differs from BODY_LIMIT)`);
  if (Number(a('proxy-read-timeout') ?? 60) < 35) problems.push(`${at}: proxy-read-timeout under 35 s (nginx/ uses 35 s)`);
  if (!ingress.spec?.tls?.length) problems.push(`${at}: no TLS`);
  for (const rule of (ingress.spec?.rules ?? []) as K8sObject[]) {
    for (const path of (rule.http?.paths ?? []) as K8sObject[]) {
      const exposed = OPERATIONS_PATHS.filter((p) => routes(path, p));
      if (exposed.length > 0) problems.push(`${at}: path ${path.path} routes operations paths (${exposed.join(', ')}) through the Ingress`);
      const backend = path.backend?.service as K8sObject | undefined;
      const service = services.find((s) => s.metadata?.name === backend?.name);
      if (!service) problems.push(`${at}: backend service ${backend?.name} is not in the overlay`);
      else {
        const port = ((service.spec?.ports ?? []) as K8sObject[]).find((p) => p.name === backend?.port?.name || p.port === backend?.port?.number);
        if (!port) problems.push(`${at}: backend port ${JSON.stringify(backend?.port)} is not a port of Service/${service.metadata.name}`);
        else if (config?.opsPort !== undefined && containerPortOf(port, container) === config.opsPort) {
          problems.push(`${at}: path ${path.path} routes to the operations listener (OPS_PORT ${config.opsPort}) through the Ingress`);
        }
      }
    }
  }
  return problems;
}

/** Labels, selectors and references that must agree across the objects. */
function selectorProblems(objects: K8sObject[], deployment: K8sObject): string[] {
  const problems: string[] = [];
  const podLabels = deployment.spec?.template?.metadata?.labels as Record<string, string> | undefined;
  if (!matches(deployment.spec?.selector?.matchLabels, podLabels)) problems.push(`${where(deployment)}: selector does not match its pod labels`);
  const container = deployment.spec?.template?.spec?.containers?.[0] as K8sObject | undefined;
  const portNames = new Set(((container?.ports ?? []) as K8sObject[]).map((p) => p.name as string));
  const one = (kind: string) => objects.filter((o) => o.kind === kind);
  for (const kind of ['Service', 'PodDisruptionBudget', 'HorizontalPodAutoscaler', 'NetworkPolicy', 'ServiceMonitor']) {
    if (one(kind).length === 0) problems.push(`no ${kind} in the overlay`);
  }
  const services = one('Service').filter((s) => matches(s.spec?.selector, podLabels));
  if (services.length === 0) problems.push(`no Service selects the pods of ${where(deployment)}`);
  for (const service of services) {
    for (const port of (service.spec?.ports ?? []) as K8sObject[]) {
      if (typeof port.targetPort === 'string' && !portNames.has(port.targetPort))
        problems.push(`${where(service)}: targetPort ${port.targetPort} is not a container port name`);
    }
  }
  for (const pdb of one('PodDisruptionBudget')) {
    if (!matches(pdb.spec?.selector?.matchLabels, podLabels)) problems.push(`${where(pdb)}: selector does not match the pods of ${where(deployment)}`);
  }
  for (const hpa of one('HorizontalPodAutoscaler')) {
    const target = hpa.spec?.scaleTargetRef as K8sObject | undefined;
    if (target?.kind !== 'Deployment' || target.name !== deployment.metadata.name)
      problems.push(`${where(hpa)}: scales ${target?.kind}/${target?.name}, not ${where(deployment)}`);
  }
  for (const policy of one('NetworkPolicy')) {
    if (!matches(policy.spec?.podSelector?.matchLabels, podLabels))
      problems.push(`${where(policy)}: podSelector does not match the pods of ${where(deployment)}`);
  }
  const secretNames = new Set(((container?.envFrom ?? []) as K8sObject[]).map((e) => e.secretRef?.name as string | undefined).filter(Boolean));
  for (const monitor of one('ServiceMonitor')) {
    const selected = services.filter((s) => matches(monitor.spec?.selector?.matchLabels, s.metadata?.labels));
    if (selected.length === 0) problems.push(`${where(monitor)}: selects no Service of the app`);
    for (const endpoint of (monitor.spec?.endpoints ?? []) as K8sObject[]) {
      if (!selected.some((s) => ((s.spec?.ports ?? []) as K8sObject[]).some((p) => p.name === endpoint.port))) {
        problems.push(`${where(monitor)}: endpoint port ${endpoint.port} is not a named port of the Service`);
      }
      if (endpoint.path !== '/metrics') problems.push(`${where(monitor)}: scrapes ${endpoint.path}, not /metrics`);
      const credentials = endpoint.authorization?.credentials as K8sObject | undefined;
      if (credentials?.key !== 'OPS_TOKEN' || !secretNames.has(credentials.name)) {
        problems.push(`${where(monitor)}: the bearer token must be OPS_TOKEN from the app's Secret (${[...secretNames].join(', ') || 'none'})`);
      }
    }
  }
  return problems;
}

/**
 * Every problem of a rendered overlay. `extraEnv` is what the Secret will add (the doctor's env
 * file); the timings are then read with it, as the pods will.
 */
export function kubernetesProblems(objects: K8sObject[], extraEnv: Env = {}): string[] {
  const problems: string[] = [];
  const deployments = objects.filter((o) => o.kind === 'Deployment');
  if (deployments.length !== 1) return [`expected one Deployment, found ${deployments.length}`];
  const deployment = deployments[0]!;
  const spec = (deployment.spec?.template?.spec ?? {}) as K8sObject;
  const containers = (spec.containers ?? []) as K8sObject[];
  if (containers.length !== 1) problems.push(`${where(deployment)}: one container (one node process) expected, found ${containers.length}`);
  const container = containers[0];
  let config: Config | undefined;
  if (container) {
    const env = { ...containerEnv(objects, container), ...extraEnv };
    const loaded = appConfig(env);
    if (Array.isArray(loaded)) problems.push(...loaded.map((p) => `${where(deployment)} environment: ${p}`));
    else {
      config = loaded;
      problems.push(...probeProblems(deployment, container, config), ...gracePeriodProblems(deployment, container, config));
    }
    const jobs = objects.filter((o) => o.kind === 'Job');
    if (jobs.length > 0 && config?.migrateOnStart !== false)
      problems.push(`${where(deployment)}: a migration Job runs, so the pods must have MIGRATE_ON_START=false`);
    if (jobs.length === 0) problems.push('no migration Job in the overlay');
    for (const job of jobs) {
      const command = ((job.spec?.template?.spec?.containers?.[0]?.command ?? []) as string[]).join(' ');
      if (!/dist\/cli\/migrate\.js/.test(command)) problems.push(`${where(job)}: does not run dist/cli/migrate.js`);
    }
  }
  if (deployment.spec?.strategy?.rollingUpdate?.maxUnavailable !== 0) problems.push(`${where(deployment)}: rolling update maxUnavailable must be 0`);
  if (!((spec.topologySpreadConstraints ?? []) as unknown[]).length) problems.push(`${where(deployment)}: no topology spread constraints`);
  for (const { owner, spec: podSpec } of podSpecs(objects)) {
    if (podSpec.automountServiceAccountToken !== false)
      problems.push(`${where(owner)}: automountServiceAccountToken is not false (the app never calls the API server)`);
    for (const c of [...((podSpec.initContainers ?? []) as K8sObject[]), ...((podSpec.containers ?? []) as K8sObject[])])
      problems.push(...containerProblems(owner, podSpec, c));
  }
  problems.push(...selectorProblems(objects, deployment));
  for (const ingress of objects.filter((o) => o.kind === 'Ingress'))
    problems.push(
      ...ingressProblems(
        ingress,
        objects.filter((o) => o.kind === 'Service'),
        config,
        container,
      ),
    );
  for (const secret of objects.filter((o) => o.kind === 'Secret')) {
    const values = Object.values({ ...(secret.data ?? {}), ...(secret.stringData ?? {}) } as Record<string, string>);
    if (values.some((v) => v !== ''))
      problems.push(`${where(secret)}: a Secret with values is rendered from the repository; create it from your secret store instead`);
  }
  return problems;
}
