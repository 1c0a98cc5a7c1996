// Strict validation of rendered Kubernetes objects against the API of Kubernetes 1.32, offline:
// @kubernetes/client-node 1.1.x is generated from exactly that API, and each model class lists its
// fields (attributeTypeMap) while its .d.ts marks the required ones. An unknown field, a value of
// the wrong JSON type and a missing required field are all errors, as `kubectl apply
// --validate=strict` would report them. ServiceMonitor (monitoring.coreos.com/v1, a CRD of the
// Prometheus Operator) is not in that package: it is checked against the fields written below,
// which are the ones deploy/kubernetes uses (docs/kubernetes.md says so).
import { readFileSync } from 'node:fs';
import path from 'node:path';

interface Attribute {
  name: string;
  baseName: string;
  type: string;
}
interface Model {
  attributes: Attribute[];
  required: Set<string>;
}

const MODELS_DIR = path.join(path.dirname(require.resolve('@kubernetes/client-node/package.json')), 'dist/gen/models');
let models: Record<string, { attributeTypeMap?: Attribute[] } | undefined> | undefined;

/** Loads the generated models (the package is an ES module); call once before schemaErrors. */
export async function loadKubernetesModels(): Promise<void> {
  models ??= (await import('@kubernetes/client-node')) as unknown as Record<string, { attributeTypeMap?: Attribute[] } | undefined>;
}

const attr = (name: string, type: string): Attribute => ({ name, baseName: name, type });

/** The ServiceMonitor fields this repository uses, with their types; anything else is unknown. */
const HAND_WRITTEN: Record<string, Model> = {
  MonitoringV1ServiceMonitor: {
    attributes: [attr('apiVersion', 'string'), attr('kind', 'string'), attr('metadata', 'V1ObjectMeta'), attr('spec', 'MonitoringV1ServiceMonitorSpec')],
    required: new Set(['spec']),
  },
  MonitoringV1ServiceMonitorSpec: {
    attributes: [attr('selector', 'V1LabelSelector'), attr('endpoints', 'Array<MonitoringV1Endpoint>'), attr('namespaceSelector', '{ [key: string]: any; }')],
    required: new Set(['selector']),
  },
  MonitoringV1Endpoint: {
    attributes: [
      attr('port', 'string'),
      attr('path', 'string'),
      attr('scheme', 'string'),
      attr('interval', 'string'),
      attr('scrapeTimeout', 'string'),
      attr('authorization', 'MonitoringV1SafeAuthorization'),
    ],
    required: new Set(),
  },
  MonitoringV1SafeAuthorization: { attributes: [attr('type', 'string'), attr('credentials', 'V1SecretKeySelector')], required: new Set() },
};

const cache = new Map<string, Model>();

function model(name: string): Model {
  const cached = cache.get(name) ?? HAND_WRITTEN[name];
  if (cached) return cached;
  if (!models) throw new Error('call loadKubernetesModels() first');
  const attributes = models[name]?.attributeTypeMap;
  if (!attributes) throw new Error(`no model ${name} in @kubernetes/client-node`);
  // Required fields are the .d.ts properties without `?`.
  const declaration = readFileSync(path.join(MODELS_DIR, `${name}.d.ts`), 'utf8');
  const required = new Set([...declaration.matchAll(/^\s+'([A-Za-z$_][\w$]*)': /gm)].map((m) => m[1]!));
  const built = { attributes, required };
  cache.set(name, built);
  return built;
}

const KINDS: Record<string, string> = {
  'v1/ConfigMap': 'V1ConfigMap',
  'v1/Secret': 'V1Secret',
  'v1/Service': 'V1Service',
  'apps/v1/Deployment': 'V1Deployment',
  'batch/v1/Job': 'V1Job',
  'policy/v1/PodDisruptionBudget': 'V1PodDisruptionBudget',
  'autoscaling/v2/HorizontalPodAutoscaler': 'V2HorizontalPodAutoscaler',
  'networking.k8s.io/v1/NetworkPolicy': 'V1NetworkPolicy',
  'networking.k8s.io/v1/Ingress': 'V1Ingress',
  'monitoring.coreos.com/v1/ServiceMonitor': 'MonitoringV1ServiceMonitor',
};

function check(value: unknown, type: string, at: string, errors: string[]): void {
  const kind = Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value;
  const wrong = (expected: string): void => {
    errors.push(`${at}: expected ${expected}, got ${kind}`);
  };
  const array = /^Array<(.+)>$/.exec(type);
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (array) {
    if (!Array.isArray(value)) return wrong('an array');
    value.forEach((v, i) => check(v, array[1]!, `${at}[${i}]`, errors));
  } else if (map) {
    if (kind !== 'object') return wrong('an object');
    for (const [k, v] of Object.entries(value as object)) check(v, map[1]!, `${at}.${k}`, errors);
  } else if (type === 'string' || type === 'Date') {
    if (kind !== 'string') wrong('a string');
  } else if (type === 'number') {
    if (kind !== 'number') wrong('a number');
  } else if (type === 'boolean') {
    if (kind !== 'boolean') wrong('a boolean');
  } else if (type === 'IntOrString') {
    if (kind !== 'string' && !Number.isInteger(value)) wrong('an integer or a string');
  } else if (type === 'any' || type === 'object') {
    // free-form
  } else {
    if (kind !== 'object') return wrong(`an object (${type})`);
    const { attributes, required } = model(type);
    const byName = new Map(attributes.map((a) => [a.baseName, a]));
    for (const [key, v] of Object.entries(value as object)) {
      const attribute = byName.get(key);
      if (!attribute) errors.push(`${at}.${key}: unknown field (not in ${type})`);
      else check(v, attribute.type, `${at}.${key}`, errors);
    }
    for (const attribute of attributes) {
      if (required.has(attribute.name) && (value as Record<string, unknown>)[attribute.baseName] === undefined)
        errors.push(`${at}.${attribute.baseName}: required`);
    }
  }
}

/** Errors of one object against the Kubernetes 1.32 API (unknown fields rejected); none when valid. */
export function schemaErrors(object: { apiVersion?: string; kind?: string; metadata?: { name?: string } }): string[] {
  const type = KINDS[`${object.apiVersion}/${object.kind}`];
  const at = `${object.kind}/${object.metadata?.name}`;
  if (!type) return [`${at}: ${object.apiVersion} ${object.kind} is not a kind this check knows`];
  const errors: string[] = [];
  check(object, type, at, errors);
  return errors;
}
