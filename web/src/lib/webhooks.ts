// Client-side rules and labels for webhook endpoints (the server re-checks everything, including
// the SSRF rules that need DNS).
import type { FieldErrors } from '../api/problem';

export interface EndpointForm {
  url: string;
  description: string;
  allEvents: boolean;
  eventTypes: string[];
  enabled: boolean;
}

export function validateEndpoint(form: EndpointForm): FieldErrors {
  const errors: FieldErrors = {};
  const url = form.url.trim();
  if (!url) errors.url = 'Enter the URL that will receive the events.';
  else {
    let parsed: URL | null = null;
    try {
      parsed = new URL(url);
    } catch {
      errors.url = 'Enter a full URL, like https://example.com/sivo-webhooks.';
    }
    if (parsed && parsed.protocol !== 'https:') errors.url = 'Webhooks are sent over HTTPS only: the URL must start with https://.';
    else if (parsed && (parsed.username || parsed.password)) errors.url = 'Put no credentials in the URL; verify the signature instead.';
  }
  if (Array.from(form.description).length > 500) errors.description = 'Use at most 500 characters.';
  if (!form.allEvents && form.eventTypes.length === 0) errors.event_types = 'Choose at least one event, or receive all events.';
  return errors;
}

/** The request body: an empty list means every event type. */
export function endpointBody(form: EndpointForm) {
  return {
    url: form.url.trim(),
    description: form.description.trim(),
    enabled: form.enabled,
    event_types: form.allEvents ? [] : form.eventTypes,
  };
}

/** Server field paths like `event_types[2]` belong to the event type picker. */
export function mapEndpointErrors(errors: FieldErrors): FieldErrors {
  const out: FieldErrors = {};
  for (const [field, message] of Object.entries(errors)) {
    const key = field.startsWith('event_types') ? 'event_types' : field;
    out[key] = out[key] ? `${out[key]} ${message}` : message;
  }
  return out;
}

/** "call.created" → groups by the part before the dot, for the picker. */
export function groupEventTypes(types: string[]): [string, string[]][] {
  const groups = new Map<string, string[]>();
  for (const t of types) {
    const head = t.split('.')[0] ?? t;
    groups.set(head, [...(groups.get(head) ?? []), t]);
  }
  return [...groups.entries()];
}

export function describeAttempt(a: { succeeded: boolean; http_status?: number | null; error?: string | null; latency_ms: number }): string {
  if (a.succeeded) return `Delivered: HTTP ${a.http_status ?? '2xx'} in ${a.latency_ms} ms`;
  if (a.http_status) return `Failed: HTTP ${a.http_status} after ${a.latency_ms} ms`;
  return `Failed: ${a.error ?? 'no answer'}`;
}
