// Seeds what no screen can create yet, straight into the test server's embedded PostgreSQL
// (trust authentication on its private socket): ended calls, so the CDR pages have real rows
// to show before the call engine produces them.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

function psql(sql: string): string {
  const dataDir = process.env.WEB_E2E_DATA_DIR;
  if (!dataDir) throw new Error('WEB_E2E_DATA_DIR is not set (e2e/global-setup.ts sets it)');
  return execFileSync('psql', ['-h', join(dataDir, 'run'), '-U', 'sivo_super', '-d', 'sivo', '-v', 'ON_ERROR_STOP=1', '-qAt', '-c', sql], {
    encoding: 'utf8',
    timeout: 30_000,
  });
}

const lit = (v: string | null | undefined) => (v === null || v === undefined ? 'null' : `'${v.replace(/'/g, "''")}'`);
const json = (v: unknown) => (v === null || v === undefined ? 'null' : `${lit(JSON.stringify(v))}::jsonb`);

export interface SeedCall {
  id: string;
  tenantSlug: string;
  direction: 'inbound' | 'outbound';
  from: string;
  to: string;
  did?: string;
  queueId?: string;
  agentId?: string;
  createdAt: Date;
  queuedAt?: Date;
  answeredAt?: Date;
  endedAt: Date;
  hangupCause: string;
  hangupSide: 'caller' | 'agent' | 'system';
  legs?: unknown[];
  transfers?: unknown[];
  timeline?: unknown[];
  recording?: unknown;
}

/** Inserts ended calls (CDRs) for a tenant. */
export function seedCalls(calls: SeedCall[]) {
  for (const c of calls) {
    psql(`insert into calls (id, tenant_id, direction, from_number, to_number, did, queue_id, agent_id, state, created_at,
            queued_at, last_queued_at, answered_at, ended_at, hangup_cause, hangup_side, legs, transfers, timeline, recording)
          values (${lit(c.id)}, (select id from tenants where slug = ${lit(c.tenantSlug)}), ${lit(c.direction)}, ${lit(c.from)}, ${lit(c.to)},
            ${lit(c.did)}, ${lit(c.queueId)}, ${lit(c.agentId)}, 'ended', ${lit(c.createdAt.toISOString())},
            ${lit(c.queuedAt?.toISOString())}, ${lit(c.queuedAt?.toISOString())}, ${lit(c.answeredAt?.toISOString())},
            ${lit(c.endedAt.toISOString())}, ${lit(c.hangupCause)}, ${lit(c.hangupSide)}, ${json(c.legs ?? [])}, ${json(c.transfers ?? [])},
            ${json(c.timeline ?? [])}, ${json(c.recording)})`);
  }
}

/** A short 8 kHz mono 16-bit WAV with a 440 Hz tone, for the recording player. */
export function toneWav(seconds = 2): Buffer {
  const rate = 8000;
  const samples = rate * seconds;
  const buf = Buffer.alloc(44 + samples * 2);
  buf.write('RIFF', 0);
  buf.writeUInt32LE(36 + samples * 2, 4);
  buf.write('WAVE', 8);
  buf.write('fmt ', 12);
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20);
  buf.writeUInt16LE(1, 22);
  buf.writeUInt32LE(rate, 24);
  buf.writeUInt32LE(rate * 2, 28);
  buf.writeUInt16LE(2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36);
  buf.writeUInt32LE(samples * 2, 40);
  for (let i = 0; i < samples; i++) buf.writeInt16LE(Math.round(Math.sin((2 * Math.PI * 440 * i) / rate) * 8000), 44 + i * 2);
  return buf;
}
