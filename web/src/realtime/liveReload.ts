// Pure pieces of `useLiveReload` (pages that show REST data and re-read it when the realtime
// channel says it changed): which pushed messages concern a page, the reload coalescer, and when a
// (re)connect means something may have been missed. Kept apart from React so they are unit-tested.
import type { RealtimeStatus } from './connection';
import { HINT_RESOURCES, type ChangeHint, type SivoEvent } from './events';

/** What a page shows, as filters over what the server pushes. */
export interface LiveInterest {
  /** Change hints that concern the page. */
  hint?: (hint: ChangeHint) => boolean;
  /** Events that concern the page. */
  event?: (event: SivoEvent) => boolean;
}

/** Hints about `resource`, for one id (a hint without an id matches too) or, without `id`, any. */
export function hintsAbout(resource: string, id?: string): (hint: ChangeHint) => boolean {
  return (h) => h.resource === resource && (id === undefined || h.id === null || h.id === id);
}

/** Events that change an agent's status or on-call state. */
const AGENT_EVENTS = new Set(['agent.status_changed', 'agent.paused', 'call.answered', 'call.transferred', 'call.ended']);

/**
 * Events that can change what an agent list shows (status, pause reason, on a call) or, with
 * `agentId`, what one agent's page shows. `call.ended` names no agent, so it always counts.
 */
export function agentEvents(agentId?: string): (event: SivoEvent) => boolean {
  return (e) => {
    if (!AGENT_EVENTS.has(e.type)) return false;
    if (agentId === undefined) return true;
    switch (e.type) {
      case 'agent.status_changed':
      case 'agent.paused':
      case 'call.answered':
        return e.data.agent_id === agentId;
      case 'call.transferred':
        return e.data.from_agent_id === agentId;
      default:
        return true;
    }
  };
}

/** What an agent list (or one agent, with `agentId`) shows: registration hints and status events. */
export function agentInterest(agentId?: string): LiveInterest {
  return { hint: hintsAbout(HINT_RESOURCES.agentRegistration, agentId), event: agentEvents(agentId) };
}

export interface Timers {
  set: (fn: () => void, ms: number) => unknown;
  clear: (handle: unknown) => void;
}

const REAL_TIMERS: Timers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** How long reload requests are gathered into one: a burst of events costs one REST read. */
export const COALESCE_MS = 250;

export interface Coalescer {
  /** Asks for a reload: it runs `delayMs` after the first request not yet served. */
  request: () => void;
  /** While paused (a dialog is open, the tab is hidden) requests wait; resuming serves them. */
  setPaused: (reason: string, paused: boolean) => void;
  /** Forgets any pending request (the page is gone). */
  dispose: () => void;
}

/**
 * Gathers reload requests: the first starts a `delayMs` timer and every request until it fires
 * joins the same reload, so latency stays bounded however long a burst lasts. Requests made while
 * paused (for any reason) are kept and served once every pause is lifted.
 */
export function createCoalescer(reload: () => void, delayMs = COALESCE_MS, timers: Timers = REAL_TIMERS): Coalescer {
  let pending = false;
  let timer: unknown = undefined;
  let disposed = false;
  const pauses = new Set<string>();

  const schedule = () => {
    if (disposed || !pending || pauses.size > 0 || timer !== undefined) return;
    timer = timers.set(() => {
      timer = undefined;
      if (disposed || pauses.size > 0 || !pending) return;
      pending = false;
      reload();
    }, delayMs);
  };

  return {
    request: () => {
      pending = true;
      schedule();
    },
    setPaused: (reason, paused) => {
      if (paused) {
        pauses.add(reason);
        if (timer !== undefined) {
          timers.clear(timer);
          timer = undefined;
        }
      } else {
        pauses.delete(reason);
        schedule();
      }
    },
    dispose: () => {
      disposed = true;
      if (timer !== undefined) timers.clear(timer);
      timer = undefined;
    },
  };
}

/**
 * Decides when the live connection's state means a page may have missed something: it reloads
 * when the connection comes up after the page was without it (it mounted while connecting, or
 * the connection was lost) and on every reconnect (`connectionId` changed), never on the first
 * look at a connection that was already up.
 */
export function createResync(status: RealtimeStatus, connectionId: number) {
  let missed = status !== 'connected';
  let seen = connectionId;
  return (next: RealtimeStatus, nextId: number): boolean => {
    if (next !== 'connected') {
      // Idle (no connection wanted) misses nothing that a reconnect could bring back.
      if (next !== 'idle') missed = true;
      return false;
    }
    const reconnected = nextId !== seen;
    seen = nextId;
    const resync = missed || reconnected;
    missed = false;
    return resync;
  };
}
