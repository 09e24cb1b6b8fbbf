import { useRef, useState, type FormEvent } from 'react';
import { api, type ApiKey, type ApiKeyCreated } from '../api/client';
import { ApiError, describeError } from '../api/problem';
import { ConfirmDialog } from '../components/Dialog';
import {
  Badge,
  Button,
  CopyButton,
  EmptyState,
  ErrorState,
  FormError,
  PageHeader,
  Pager,
  Spinner,
  TextField,
} from '../components/ui';
import { formatDateTime, formatRelative } from '../lib/format';
import { trailFor } from '../lib/nav';
import { useApi } from '../lib/useApi';
import { useCursorPages } from '../lib/useCursorPages';
import { validateDisplayName } from '../lib/validation';

export function ApiKeysPage() {
  const pages = useCursorPages('keys');
  const list = useApi(
    (signal) => api.get('/api/v1/api-keys', { query: { cursor: pages.cursor, limit: 50 }, signal }),
    pages.cursor ?? '',
  );
  const [name, setName] = useState('');
  const [nameError, setNameError] = useState<string | undefined>();
  const [formError, setFormError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<ApiKeyCreated | null>(null);
  const [revoking, setRevoking] = useState<ApiKey | null>(null);
  const [revokeError, setRevokeError] = useState<string | null>(null);
  const [flash, setFlash] = useState<string | null>(null);
  const nameRef = useRef<HTMLInputElement>(null);
  const createdRef = useRef<HTMLHeadingElement>(null);

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setFormError(null);
    setFlash(null);
    const err = validateDisplayName(name, { required: true });
    setNameError(err);
    if (err) return nameRef.current?.focus();
    setBusy(true);
    try {
      const key = await api.post('/api/v1/api-keys', { body: { name: name.trim() } });
      setCreated(key);
      setName('');
      list.reload();
      requestAnimationFrame(() => createdRef.current?.focus());
    } catch (error) {
      if (error instanceof ApiError && error.fieldErrors.name) {
        setNameError(error.fieldErrors.name);
        nameRef.current?.focus();
      } else setFormError(error);
    } finally {
      setBusy(false);
    }
  };

  const revoke = async () => {
    if (!revoking) return;
    setBusy(true);
    setRevokeError(null);
    try {
      await api.delete('/api/v1/api-keys/{id}', { path: { id: revoking.id } });
      setFlash(`The key “${revoking.name}” was revoked. Requests using it now fail.`);
      if (created?.id === revoking.id) setCreated(null);
      setRevoking(null);
      list.reload();
    } catch (err) {
      setRevokeError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <PageHeader
        title="API keys"
        trail={trailFor('/settings/developer/api-keys')}
        description={
          <>
            Keys let your integrations call the SIVO API with admin rights in this organisation. Send them as{' '}
            <code>Authorization: Bearer sivo_…</code>.
          </>
        }
      />
      {created && (
        <section className="panel key-created" aria-labelledby="key-created-title">
          <h2 id="key-created-title" ref={createdRef} tabIndex={-1} className="section-title">
            Copy your new key “{created.name}” now
          </h2>
          <p className="muted">This is the only time it is shown. SIVO keeps only a hash of it.</p>
          <div className="secret-box">
            <code data-testid="new-api-key">{created.key}</code>
            <CopyButton text={created.key} label="Copy key" />
          </div>
          <Button size="sm" onClick={() => setCreated(null)}>
            I have copied it, hide the key
          </Button>
        </section>
      )}
      <div role="status" aria-live="polite" className={flash ? 'alert alert-success' : 'sr-only'}>
        {flash}
      </div>
      <section className="panel" aria-labelledby="create-key-title">
        <h2 id="create-key-title" className="section-title">
          Create a key
        </h2>
        <FormError error={formError} />
        <form onSubmit={create} noValidate className="form form-row">
          <TextField
            ref={nameRef}
            label="Name"
            name="name"
            placeholder="e.g. CRM sync"
            value={name}
            onChange={(e) => setName(e.target.value)}
            error={nameError}
            hint="Say what uses it, so you know what breaks if you revoke it."
          />
          <Button type="submit" variant="primary" busy={busy && !revoking}>
            Create key
          </Button>
        </form>
      </section>
      <section className="panel" aria-labelledby="keys-title">
        <h2 id="keys-title" className="section-title">
          Keys
        </h2>
        {list.error ? (
          <ErrorState error={list.error} onRetry={list.reload} />
        ) : !list.data ? (
          <Spinner label="Loading API keys…" />
        ) : list.data.items.length === 0 ? (
          <EmptyState title="No API keys yet">Create one above when an integration needs access.</EmptyState>
        ) : (
          <div className="table-wrap">
            <table className="table">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Key</th>
                  <th scope="col">Created</th>
                  <th scope="col">Last used</th>
                  <th scope="col">Status</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.data.items.map((k) => (
                  <tr key={k.id} className={k.revoked_at ? 'row-muted' : undefined}>
                    <td data-label="Name">
                      <span className="cell-primary">{k.name}</span>
                    </td>
                    <td data-label="Key">
                      <code className="code-chip">sivo_{k.prefix}_…</code>
                    </td>
                    <td data-label="Created">
                      <time dateTime={k.created_at} title={formatDateTime(k.created_at)}>
                        {formatRelative(k.created_at)}
                      </time>
                    </td>
                    <td data-label="Last used">{k.last_used_at ? formatRelative(k.last_used_at) : <span className="muted">Never</span>}</td>
                    <td data-label="Status">
                      {k.revoked_at ? <Badge tone="neutral">Revoked {formatRelative(k.revoked_at)}</Badge> : <Badge tone="success">Active</Badge>}
                    </td>
                    <td className="cell-actions">
                      {!k.revoked_at && (
                        <Button size="sm" variant="danger" onClick={() => setRevoking(k)} aria-label={`Revoke ${k.name}`}>
                          Revoke
                        </Button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        <Pager
          label="API key pages"
          page={pages.page}
          hasPrev={pages.page > 1}
          hasNext={Boolean(list.data?.next_cursor)}
          busy={list.loading}
          onPrev={pages.prev}
          onNext={() => list.data?.next_cursor && pages.next(list.data.next_cursor)}
        />
      </section>
      <ConfirmDialog
        open={revoking !== null}
        title="Revoke this API key?"
        confirmLabel="Revoke key"
        busy={busy}
        error={revokeError}
        onConfirm={() => void revoke()}
        onClose={() => {
          setRevoking(null);
          setRevokeError(null);
        }}
      >
        <p>
          Requests using <strong>{revoking?.name}</strong> (<code>sivo_{revoking?.prefix}_…</code>) will fail at once. This cannot be
          undone.
        </p>
      </ConfirmDialog>
    </>
  );
}
