// A small typed client over fetch. Paths, parameters, bodies and answers come from the OpenAPI
// document (schema.d.ts, generated). Authentication is the HttpOnly `sivo_session` cookie the
// server sets at login: same-origin requests carry it, and no token is ever kept in script.
import type { components, paths } from './schema';
import { ApiError, NetworkError, parseProblem } from './problem';

export type Schemas = components['schemas'];
export type User = Schemas['UserOut'];
export type Me = Schemas['MeOut'];
export type Role = Schemas['Role'];
export type Tenant = Schemas['TenantOut'];
export type ApiKey = Schemas['ApiKeyOut'];
export type ApiKeyCreated = Schemas['ApiKeyCreatedOut'];
export type AuditEntry = Schemas['AuditOut'];
export type TotpEnroll = Schemas['TotpEnrollOut'];
export type TotpConfirm = Schemas['TotpConfirmOut'];

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';
type Op<P extends keyof paths, M extends Method> = NonNullable<paths[P][M]>;
/** The paths that have an operation for method M. */
export type PathsFor<M extends Method> = {
  [P in keyof paths]: [NonNullable<paths[P][M]>] extends [never] ? never : P;
}[keyof paths];

type QueryOf<O> = O extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;
type PathParamsOf<O> = O extends { parameters: { path: infer X } } ? X : never;
type BodyOf<O> = O extends { requestBody: { content: { 'application/json': infer B } } } ? B : never;
type Json<R> = R extends { content: { 'application/json': infer T } } ? T : never;
type SuccessOf<O> = O extends { responses: infer R }
  ? R extends { 200: infer A }
    ? Json<A>
    : R extends { 201: infer A }
      ? Json<A>
      : void
  : never;

type Options<O> = { signal?: AbortSignal } & ([QueryOf<O>] extends [never]
  ? { query?: undefined }
  : { query?: QueryOf<O> }) &
  ([PathParamsOf<O>] extends [never] ? { path?: undefined } : { path: PathParamsOf<O> }) &
  ([BodyOf<O>] extends [never] ? { body?: undefined } : { body: BodyOf<O> });
type Needs<O> = [PathParamsOf<O>] extends [never] ? ([BodyOf<O>] extends [never] ? false : true) : true;
type Args<O> = Needs<O> extends true ? [opts: Options<O>] : [opts?: Options<O>];

/** Requests that take longer than this fail with NetworkError('timeout'): no page loads forever. */
export const REQUEST_TIMEOUT_MS = 20_000;

type AuthListener = (err: ApiError) => void;
const authListeners = new Set<AuthListener>();

/**
 * Called for every 401 (except from the login call itself, where 401 means wrong credentials) and
 * for 403 `mfa_enrollment_required`. The session provider uses it to return to the login page.
 */
export function onAuthProblem(listener: AuthListener): () => void {
  authListeners.add(listener);
  return () => authListeners.delete(listener);
}

/** Builds `/api/v1/users/123?role=agent` from a path template and parameters. */
export function buildUrl(
  template: string,
  pathParams?: Record<string, string | number>,
  query?: Record<string, unknown>,
): string {
  const path = template.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = pathParams?.[name];
    if (value === undefined) throw new Error(`missing path parameter ${name} for ${template}`);
    return encodeURIComponent(String(value));
  });
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value === undefined || value === null || value === '') continue;
    search.set(key, String(value));
  }
  const qs = search.toString();
  return qs ? `${path}?${qs}` : path;
}

async function request(method: Method, template: string, opts: Options<unknown> | undefined): Promise<unknown> {
  const url = buildUrl(
    template,
    opts?.path as Record<string, string> | undefined,
    opts?.query as Record<string, unknown> | undefined,
  );
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(), REQUEST_TIMEOUT_MS);
  const signal = opts?.signal ? AbortSignal.any([opts.signal, timeout.signal]) : timeout.signal;
  const headers: Record<string, string> = { Accept: 'application/json' };
  let body: string | undefined;
  if (opts?.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  let response: Response;
  let text: string;
  try {
    response = await fetch(url, { method: method.toUpperCase(), headers, body, signal, credentials: 'same-origin' });
    text = await response.text();
  } catch (err) {
    if (opts?.signal?.aborted) throw err; // the caller gave up (unmount, new filter): not an error
    throw new NetworkError(timeout.signal.aborted ? 'timeout' : 'unreachable');
  } finally {
    clearTimeout(timer);
  }
  if (!response.ok) {
    const problem = parseProblem(response.status, text, response.headers.get('x-request-id'));
    const isLogin = template === '/api/v1/auth/login';
    if ((problem.status === 401 && !isLogin) || problem.code === 'mfa_enrollment_required') {
      for (const listener of authListeners) listener(problem);
    }
    throw problem;
  }
  if (response.status === 204 || text.length === 0) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError({
      status: response.status,
      code: 'invalid_response',
      title: 'Invalid response',
      detail: 'SIVO answered with something that is not JSON. Reload the page and try again.',
    });
  }
}

function method<M extends Method>(m: M) {
  return <P extends PathsFor<M>>(path: P, ...[opts]: Args<Op<P, M>>): Promise<SuccessOf<Op<P, M>>> =>
    request(m, path, opts as Options<unknown> | undefined) as Promise<SuccessOf<Op<P, M>>>;
}

export const api = {
  get: method('get'),
  post: method('post'),
  put: method('put'),
  patch: method('patch'),
  delete: method('delete'),
};

export { ApiError, NetworkError };
