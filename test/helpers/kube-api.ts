/**
 * A small stand-in for a Kubernetes API server (plain HTTP on loopback), as it sits behind an
 * identity-aware proxy: it answers what `kubectl get pods` asks (the version, legacy discovery
 * of the core group, an empty list of groups, and the pods of `default` as a server-side Table)
 * and records who each request came as: the proxy's `X-Pomerium-Jwt-Assertion` (its email) and
 * `Impersonate-User`. Anything else is a Kubernetes-style 404.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** One request as the API server saw it. */
export interface KubeRequest {
  method: string;
  /** Path and query. */
  url: string;
  /** The email in the proxy's X-Pomerium-Jwt-Assertion, if it sent one that decodes. */
  email: string | undefined;
  /** The Impersonate-User header, if any. */
  impersonateUser: string | undefined;
  /** Whether an Authorization header arrived (the user's Pomerium token must not). */
  authorization: string | undefined;
}

export interface KubeApi {
  /** `http://127.0.0.1:PORT`, for a proxy route's `to`. */
  readonly url: string;
  readonly port: number;
  readonly requests: KubeRequest[];
  /** The pods of namespace default, by name. */
  readonly pods: readonly string[];
  close(): Promise<void>;
}

const json = (res: ServerResponse, status: number, body: unknown): void => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
};

/** The claims of a JWT's payload, unverified (the proxy verified the user's token). */
function emailOf(assertion: string | undefined): string | undefined {
  const payload = assertion?.split('.')[1];
  if (!payload) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { email?: unknown };
    return typeof claims.email === 'string' ? claims.email : undefined;
  } catch {
    return undefined;
  }
}

const RESOURCES = {
  kind: 'APIResourceList',
  apiVersion: 'v1',
  groupVersion: 'v1',
  resources: [
    { name: 'pods', singularName: 'pod', namespaced: true, kind: 'Pod', verbs: ['get', 'list'], shortNames: ['po'] },
    { name: 'namespaces', singularName: 'namespace', namespaced: false, kind: 'Namespace', verbs: ['get', 'list'], shortNames: ['ns'] },
  ],
};

/** The pods as the server-side printing Table kubectl asks for (`Accept: …;as=Table;…`). */
function podTable(pods: readonly string[]): unknown {
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion: '1' },
    columnDefinitions: [
      { name: 'Name', type: 'string', format: 'name', description: 'Name', priority: 0 },
      { name: 'Ready', type: 'string', format: '', description: 'Ready', priority: 0 },
      { name: 'Status', type: 'string', format: '', description: 'Status', priority: 0 },
    ],
    rows: pods.map((name) => ({
      cells: [name, '1/1', 'Running'],
      object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: { name, namespace: 'default' } },
    })),
  };
}

function podList(pods: readonly string[]): unknown {
  return {
    kind: 'PodList',
    apiVersion: 'v1',
    metadata: { resourceVersion: '1' },
    items: pods.map((name) => ({ metadata: { name, namespace: 'default' }, spec: { containers: [{ name: 'main', image: 'busybox' }] }, status: { phase: 'Running' } })),
  };
}

/** Starts the API server on 127.0.0.1 and a free port, with `pods` in namespace default. */
export async function startKubeApi(pods: readonly string[] = ['web-1', 'web-2']): Promise<KubeApi> {
  const requests: KubeRequest[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    const header = (name: string) => (typeof req.headers[name] === 'string' ? (req.headers[name] as string) : undefined);
    requests.push({
      method: req.method ?? 'GET',
      url,
      email: emailOf(header('x-pomerium-jwt-assertion')),
      impersonateUser: header('impersonate-user'),
      authorization: header('authorization'),
    });
    const path = url.split('?')[0];
    if (req.method !== 'GET') return json(res, 405, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'MethodNotAllowed', code: 405 });
    switch (path) {
      case '/version':
        return json(res, 200, { major: '1', minor: '32', gitVersion: 'v1.32.0', platform: 'linux/amd64' });
      case '/api':
        return json(res, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1:6443' }] });
      case '/apis':
        return json(res, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups: [] });
      case '/api/v1':
        return json(res, 200, RESOURCES);
      case '/api/v1/namespaces/default/pods':
        return json(res, 200, (header('accept') ?? '').includes('as=Table') ? podTable(pods) : podList(pods));
      default:
        return json(res, 404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: `no ${path} here`, reason: 'NotFound', code: 404 });
    }
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  let closed: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    pods,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closed;
    },
  };
}
