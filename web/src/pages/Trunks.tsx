import { useRef, useState, type FormEvent } from 'react';
import { Link } from 'react-router';
import { api } from '../api/client';
import { ApiError, describeError } from '../api/problem';
import { CidrListEditor } from '../components/CidrListEditor';
import { ConfirmDialog, Dialog } from '../components/Dialog';
import { CidrChips, TrunkStatus } from '../components/telephony';
import {
  Badge,
  Button,
  CheckboxField,
  EmptyState,
  ErrorState,
  FormError,
  PageHeader,
  Pager,
  SelectField,
  Spinner,
  TextField,
  focusFirstError,
} from '../components/ui';
import { listAll } from '../lib/listAll';
import { trailFor } from '../lib/nav';
import { checkCidrList } from '../lib/cidr';
import {
  TRANSPORTS,
  defaultPort,
  emptyTrunkForm,
  formatCarrier,
  mapTrunkErrors,
  trunkBody,
  trunkPatch,
  trunkToForm,
  validateTrunk,
  type Transport,
  type Trunk,
  type TrunkForm,
} from '../lib/trunks';
import { useApi } from '../lib/useApi';
import { useCursorPages } from '../lib/useCursorPages';
import { useNow } from '../lib/useNow';
import { HINT_RESOURCES } from '../realtime/events';
import { hintsAbout } from '../realtime/liveReload';
import { useLiveReload } from '../realtime/useLiveReload';

const PAGE_SIZE = 50;
const TRUNK_STATUS = { hint: hintsAbout(HINT_RESOURCES.trunkStatus) };

export function TrunksPage() {
  const pages = useCursorPages('trunks');
  const list = useApi(
    (signal) => api.get('/api/v1/trunks', { query: { cursor: pages.cursor, limit: PAGE_SIZE }, signal }),
    pages.cursor ?? '',
  );
  // How many numbers use each trunk (a trunk with numbers cannot be deleted).
  const dids = useApi((signal) => listAll((cursor) => api.get('/api/v1/dids', { query: { cursor, limit: 200 }, signal })), 'dids');
  const [dialog, setDialog] = useState<{ mode: 'create' } | { mode: 'edit'; trunk: Trunk } | null>(null);
  const [flash, setFlash] = useState<string | null>(null);
  const now = useNow(5_000);
  // The status column follows the keepalive live (change hints); while a dialog is open the
  // re-read waits for it to close.
  useLiveReload(list.reload, TRUNK_STATUS, { paused: dialog !== null });

  const numbersOn = (id: string) => dids.data?.filter((d) => d.trunk_id === id).length ?? 0;

  const done = (message: string) => {
    setFlash(message);
    setDialog(null);
    list.reload();
    dids.reload();
  };

  return (
    <>
      <PageHeader
        title="SIP trunks"
        trail={trailFor('/settings/sip-trunks')}
        description="Carrier connections. Inbound calls are accepted only from a trunk’s allowed networks; SIVO checks each carrier with SIP OPTIONS every 10 seconds and shows OK or FAIL with the reason."
        actions={
          <Button variant="primary" onClick={() => setDialog({ mode: 'create' })}>
            <PlusIcon /> Add trunk
          </Button>
        }
      />
      <div role="status" aria-live="polite" className={flash ? 'alert alert-success' : 'sr-only'}>
        {flash}
      </div>
      <div className="panel">
        {list.error && !list.data ? (
          <ErrorState error={list.error} onRetry={list.reload} />
        ) : !list.data ? (
          <Spinner label="Loading trunks…" />
        ) : list.data.items.length === 0 ? (
          <EmptyState title="No SIP trunks yet" action={<Button onClick={() => setDialog({ mode: 'create' })}>Add trunk</Button>}>
            Add your carrier (Zadarma, Twilio Elastic SIP Trunking, …) with the networks it sends calls from, then give your numbers to it.
          </EmptyState>
        ) : (
          <div className="table-wrap">
            <table className="table table-trunks">
              <caption className="sr-only">SIP trunks with their live status</caption>
              <thead>
                <tr>
                  <th scope="col">Trunk</th>
                  <th scope="col">Carrier</th>
                  <th scope="col">Allowed CIDRs</th>
                  <th scope="col">Status</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.data.items.map((t) => {
                  const n = numbersOn(t.id);
                  return (
                    <tr key={t.id}>
                      <td data-label="Trunk">
                        <span className="cell-primary">{t.name}</span>
                        <span className="cell-secondary">
                          {n === 0 ? 'No numbers' : <Link to="/settings/numbers">{n === 1 ? '1 number' : `${n} numbers`}</Link>}
                          {t.register && ' · registers'}
                        </span>
                      </td>
                      <td data-label="Carrier">
                        <span className="cell-primary mono carrier">{formatCarrier(t)}</span>
                        <span className="cell-secondary">{t.username ? `Outbound user ${t.username}${t.has_password ? '' : ' (no password)'}` : 'No outbound credentials'}</span>
                      </td>
                      <td data-label="Allowed CIDRs">
                        <CidrChips cidrs={t.allowed_cidrs} empty="None: no inbound calls" />
                      </td>
                      <td data-label="Status" data-testid="trunk-status">
                        <TrunkStatus trunk={t} now={now} />
                      </td>
                      <td className="cell-actions">
                        <div className="button-row button-row-tight">
                          <Link className="btn btn-ghost btn-sm" to={`/audit?resource=trunk:${t.id}`} aria-label={`History of ${t.name}`}>
                            History
                          </Link>
                          <Button size="sm" onClick={() => setDialog({ mode: 'edit', trunk: t })} aria-label={`Edit ${t.name}`}>
                            Edit
                          </Button>
                        </div>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
        {list.error && list.data ? <p className="muted refresh-error">Could not refresh: {describeError(list.error)}</p> : null}
        <Pager
          label="Trunk pages"
          page={pages.page}
          hasPrev={pages.page > 1}
          hasNext={Boolean(list.data?.next_cursor)}
          busy={list.loading}
          onPrev={pages.prev}
          onNext={() => list.data?.next_cursor && pages.next(list.data.next_cursor)}
        />
      </div>
      {dialog && (
        <TrunkDialog
          trunk={dialog.mode === 'edit' ? dialog.trunk : undefined}
          numbers={dialog.mode === 'edit' ? numbersOn(dialog.trunk.id) : 0}
          onClose={() => setDialog(null)}
          onDone={done}
        />
      )}
    </>
  );
}

function PlusIcon() {
  return (
    <svg viewBox="0 0 24 24" width="16" height="16" fill="none" stroke="currentColor" strokeWidth="2.2" aria-hidden="true">
      <path d="M12 5v14M5 12h14" />
    </svg>
  );
}

const FIELD_ORDER = ['name', 'host', 'port', 'transport', 'allowed_cidrs', 'username', 'password', 'register', 'keepalive'];

function TrunkDialog({
  trunk,
  numbers,
  onClose,
  onDone,
}: {
  trunk?: Trunk;
  numbers: number;
  onClose: () => void;
  onDone: (message: string) => void;
}) {
  const [form, setForm] = useState<TrunkForm>(() => (trunk ? trunkToForm(trunk) : emptyTrunkForm()));
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [deleteError, setDeleteError] = useState<string | null>(null);
  const formRef = useRef<HTMLFormElement>(null);

  const set = <K extends keyof TrunkForm>(k: K, v: TrunkForm[K]) => {
    setForm((f) => ({ ...f, [k]: v }));
    // An edited field's old message goes; the next submit checks it again. (CIDR rows keep
    // theirs: row numbers move when rows are added or removed.)
    setErrors((e) => (k in e ? Object.fromEntries(Object.entries(e).filter(([f]) => f !== k)) : e));
  };

  // Row messages follow their rows: an edited row loses its message, and when rows are added or
  // removed (indices move) they all go until the next submit.
  const changeCidrs = (cidrs: string[]) => {
    const before = form.cidrs;
    setForm((f) => ({ ...f, cidrs }));
    setErrors((e) =>
      Object.fromEntries(
        Object.entries(e).filter(([k]) => {
          const m = /^cidr-(\d+)$/.exec(k);
          if (!m) return k !== 'allowed_cidrs' || cidrs.length === before.length;
          return cidrs.length === before.length && cidrs[Number(m[1])] === before[Number(m[1])];
        }),
      ),
    );
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setFormError(null);
    const fieldErrors = validateTrunk(form, trunk);
    setErrors(fieldErrors);
    if (Object.keys(fieldErrors).length) return focusFirstError(formRef.current, fieldErrors);
    const { rows } = checkCidrList(form.cidrs);
    setBusy(true);
    try {
      if (trunk) {
        const patch = trunkPatch(form, trunk);
        if (Object.keys(patch).length === 0) return onClose();
        const saved = await api.patch('/api/v1/trunks/{id}', { path: { id: trunk.id }, body: patch });
        onDone(`${saved.name} was updated. Its status is re-checked within 10 seconds.`);
      } else {
        const saved = await api.post('/api/v1/trunks', { body: trunkBody(form) });
        onDone(`${saved.name} was added. Its first status check runs within 10 seconds.`);
      }
    } catch (err) {
      if (err instanceof ApiError && err.hasFieldErrors) {
        const mapped = mapTrunkErrors(err.fieldErrors, rows);
        setErrors(mapped);
        focusFirstError(formRef.current, mapped);
        if (!Object.keys(mapped).some((k) => FIELD_ORDER.includes(k) || k.startsWith('cidr-'))) setFormError(err);
      } else setFormError(err);
    } finally {
      setBusy(false);
    }
  };

  const runDelete = async () => {
    if (!trunk) return;
    setBusy(true);
    setDeleteError(null);
    try {
      await api.delete('/api/v1/trunks/{id}', { path: { id: trunk.id } });
      setConfirmDelete(false);
      onDone(`${trunk.name} was deleted.`);
    } catch (err) {
      setDeleteError(
        err instanceof ApiError && err.code === 'trunk_in_use'
          ? 'Numbers still arrive on this trunk. Move them to another trunk or delete them under Settings → Numbers first.'
          : describeError(err),
      );
    } finally {
      setBusy(false);
    }
  };

  const title = trunk ? `Edit ${trunk.name}` : 'Add SIP trunk';
  const hasUser = Boolean(form.username.trim());

  return (
    <>
      <Dialog open size="wide" title={title} onClose={onClose}>
        <form ref={formRef} onSubmit={submit} noValidate className="form" aria-label={title}>
          <FormError error={formError} />
          <TextField
            label="Name"
            name="name"
            value={form.name}
            onChange={(e) => set('name', e.target.value)}
            error={errors.name}
            placeholder="Zadarma"
            autoComplete="off"
          />
          <section className="form-section" aria-labelledby="trunk-carrier">
            <h3 id="trunk-carrier" className="form-section-title">
              Carrier
            </h3>
            <div className="form-grid-carrier">
              <TextField
                label="Host"
                name="host"
                value={form.host}
                onChange={(e) => set('host', e.target.value)}
                error={errors.host}
                placeholder="sip.zadarma.com"
                autoComplete="off"
                spellCheck={false}
                hint="Where SIVO sends OPTIONS, registrations and outbound calls."
              />
              <TextField
                label="Port"
                name="port"
                inputMode="numeric"
                value={form.port}
                onChange={(e) => set('port', e.target.value)}
                error={errors.port}
                placeholder={String(defaultPort(form.transport))}
                optional
              />
              <SelectField
                label="Transport"
                name="transport"
                value={form.transport}
                onChange={(e) => set('transport', e.target.value as Transport)}
                error={errors.transport}
              >
                {TRANSPORTS.map((t) => (
                  <option key={t.value} value={t.value}>
                    {t.label}
                  </option>
                ))}
              </SelectField>
            </div>
          </section>
          <CidrListEditor rows={form.cidrs} onChange={changeCidrs} errors={errors} listError={errors.allowed_cidrs} />
          <section className="form-section" aria-labelledby="trunk-credentials">
            <h3 id="trunk-credentials" className="form-section-title">
              Outbound credentials <span className="field-optional">(optional)</span>
            </h3>
            <p className="field-hint">What the carrier gave you for digest authentication. The password is stored encrypted and never shown again.</p>
            <div className="grid-2 form-grid">
              <TextField
                label="User name"
                name="username"
                value={form.username}
                onChange={(e) => set('username', e.target.value)}
                error={errors.username}
                autoComplete="off"
                spellCheck={false}
              />
              <TextField
                label="Password"
                name="password"
                type="password"
                autoComplete="new-password"
                value={form.password}
                disabled={!hasUser || form.removePassword}
                onChange={(e) => set('password', e.target.value)}
                error={errors.password}
                placeholder={trunk?.has_password && !form.removePassword ? '•••••••• (saved)' : undefined}
                hint={
                  !hasUser
                    ? 'Enter a user name first.'
                    : trunk?.has_password
                      ? 'Leave empty to keep the saved password.'
                      : undefined
                }
              />
            </div>
            {trunk?.has_password && hasUser && (
              <CheckboxField
                label="Remove the saved password"
                name="removePassword"
                checked={form.removePassword}
                onChange={(e) => setForm((f) => ({ ...f, removePassword: e.target.checked, password: '' }))}
              />
            )}
            <CheckboxField
              label="Register with the carrier"
              name="register"
              checked={form.register}
              onChange={(e) => set('register', e.target.checked)}
              error={errors.register}
              hint="SIVO registers with these credentials and refreshes the registration; a rejected registration turns the trunk FAIL with the reason."
            />
          </section>
          <CheckboxField
            label="Keepalive (SIP OPTIONS every 10 seconds)"
            name="keepalive"
            checked={form.keepalive}
            onChange={(e) => set('keepalive', e.target.checked)}
            error={errors.keepalive}
            hint="Keeps the OK/FAIL status current. Without it (and without registration) the status is not monitored."
          />
          <footer className="dialog-footer">
            <Button onClick={onClose} disabled={busy}>
              Cancel
            </Button>
            <Button type="submit" variant="primary" busy={busy}>
              {trunk ? 'Save changes' : 'Add trunk'}
            </Button>
          </footer>
          {trunk && (
            <section className="danger-zone" aria-label="Danger zone">
              <div>
                <p className="danger-title">Delete trunk</p>
                <p className="muted">
                  {numbers > 0
                    ? `${numbers === 1 ? 'One number arrives' : `${numbers} numbers arrive`} on this trunk: move or delete ${numbers === 1 ? 'it' : 'them'} first.`
                    : 'Calls from its networks are refused at once. The audit log keeps its history.'}
                </p>
              </div>
              <Button size="sm" variant="danger" onClick={() => setConfirmDelete(true)}>
                Delete
              </Button>
            </section>
          )}
        </form>
      </Dialog>
      {trunk && (
        <ConfirmDialog
          open={confirmDelete}
          title="Delete this trunk?"
          confirmLabel="Delete trunk"
          busy={busy}
          error={deleteError}
          onConfirm={() => void runDelete()}
          onClose={() => {
            setConfirmDelete(false);
            setDeleteError(null);
          }}
        >
          <p>
            <strong>{trunk.name}</strong> ({formatCarrier(trunk)}) will stop accepting calls at once. This cannot be undone.
          </p>
          {numbers > 0 && (
            <p>
              <Badge tone="warning">In use</Badge> {numbers === 1 ? 'One number still arrives' : `${numbers} numbers still arrive`} on it.
            </p>
          )}
        </ConfirmDialog>
      )}
    </>
  );
}
