// Problem JSON (RFC 9457) as SIVO sends it, turned into typed errors the UI can branch on.

export type FieldErrors = Record<string, string>;

/** A response the server answered with an error status. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly title: string;
  readonly detail: string;
  readonly requestId: string | null;
  /** Field path → message, from the problem's `errors` list (several messages joined). */
  readonly fieldErrors: FieldErrors;

  constructor(init: {
    status: number;
    code: string;
    title: string;
    detail: string;
    requestId?: string | null;
    fieldErrors?: FieldErrors;
  }) {
    super(init.detail || init.title);
    this.name = 'ApiError';
    this.status = init.status;
    this.code = init.code;
    this.title = init.title;
    this.detail = init.detail;
    this.requestId = init.requestId ?? null;
    this.fieldErrors = init.fieldErrors ?? {};
  }

  get hasFieldErrors(): boolean {
    return Object.keys(this.fieldErrors).length > 0;
  }
}

/** The request never got an answer: offline, server down, or too slow. */
export class NetworkError extends Error {
  readonly kind: 'unreachable' | 'timeout';
  constructor(kind: 'unreachable' | 'timeout') {
    super(
      kind === 'timeout'
        ? 'SIVO took too long to answer. Try again in a moment.'
        : 'Cannot reach SIVO. Check your connection and try again.',
    );
    this.name = 'NetworkError';
    this.kind = kind;
  }
}

const STATUS_TITLES: Record<number, string> = {
  400: 'Bad request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not found',
  409: 'Conflict',
  413: 'Request too large',
  422: 'Invalid input',
  429: 'Too many requests',
  500: 'Server error',
  502: 'Bad gateway',
  503: 'Service unavailable',
  504: 'Gateway timeout',
};

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

/**
 * Server field messages are fragments ("this email is already in use", "is not your current
 * password"); shown next to a field they read better as sentences.
 */
export function toSentence(message: string): string {
  let m = message.trim();
  if (!m) return m;
  if (/^(is|are|was|does) /.test(m)) m = `This ${m}`;
  m = m.charAt(0).toUpperCase() + m.slice(1);
  return /[.!?]$/.test(m) ? m : `${m}.`;
}

/**
 * Builds an ApiError from a response's status and body text. Tolerates bodies that are not
 * problem JSON (a proxy's HTML page, an empty body) so the UI always has something to say.
 */
export function parseProblem(status: number, bodyText: string, requestIdHeader?: string | null): ApiError {
  let body: unknown = undefined;
  if (bodyText.trim().length > 0) {
    try {
      body = JSON.parse(bodyText);
    } catch {
      body = undefined;
    }
  }
  const fallbackTitle = STATUS_TITLES[status] ?? (status >= 500 ? 'Server error' : 'Request failed');
  if (!isRecord(body)) {
    return new ApiError({
      status,
      code: `http_${status}`,
      title: fallbackTitle,
      detail: status >= 500 ? 'SIVO had a problem answering. Try again in a moment.' : fallbackTitle,
      requestId: requestIdHeader ?? null,
    });
  }
  const fieldErrors: FieldErrors = {};
  if (Array.isArray(body.errors)) {
    for (const item of body.errors) {
      if (!isRecord(item)) continue;
      const field = str(item.field);
      const message = str(item.message);
      if (!field || !message) continue;
      const text = toSentence(message);
      fieldErrors[field] = fieldErrors[field] ? `${fieldErrors[field]} ${text}` : text;
    }
  }
  const title = str(body.title) ?? fallbackTitle;
  return new ApiError({
    status: typeof body.status === 'number' ? body.status : status,
    code: str(body.code) ?? `http_${status}`,
    title,
    detail: str(body.detail) ?? title,
    requestId: str(body.request_id) ?? requestIdHeader ?? null,
    fieldErrors,
  });
}

/** One sentence for the user about any error thrown by the client. */
export function describeError(err: unknown): string {
  if (err instanceof NetworkError) return err.message;
  if (err instanceof ApiError) {
    if (err.status >= 500) {
      return `SIVO had a problem answering (${err.status}).${err.requestId ? ` Request id: ${err.requestId}.` : ''}`;
    }
    if (err.code === 'forbidden' || err.status === 403) return 'You do not have permission to do this.';
    if (err.status === 404) return 'It no longer exists, or you do not have access to it.';
    const detail = err.detail.trim();
    const sentence = detail.charAt(0).toUpperCase() + detail.slice(1);
    return /[.!?]$/.test(sentence) ? sentence : `${sentence}.`;
  }
  if (err instanceof Error && err.message) return err.message;
  return 'Something went wrong.';
}

export function isAbort(err: unknown): boolean {
  return err instanceof DOMException && err.name === 'AbortError';
}
