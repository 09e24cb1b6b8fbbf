import { useRef, useState, type FormEvent } from 'react';
import { api, type Tenant } from '../api/client';
import { ApiError, describeError } from '../api/problem';
import { ConfirmDialog, Dialog } from '../components/Dialog';
import { Badge, Button, EmptyState, ErrorState, FormError, PageHeader, Pager, SelectField, Spinner, TextField, focusFirstError } from '../components/ui';
import { formatDateTime, formatRelative, PLAN_LABELS } from '../lib/format';
import { useApi } from '../lib/useApi';
import { useCursorPages } from '../lib/useCursorPages';
import { validateTenant, type TenantForm } from '../lib/validation';

export function TenantsPage() {
  const pages = useCursorPages('tenants');
  const list = useApi((signal) => api.get('/api/v1/tenants', { query: { cursor: pages.cursor, limit: 50 }, signal }), pages.cursor ?? '');
  const [editing, setEditing] = useState<Tenant | 'new' | null>(null);
  const [deleting, setDeleting] = useState<Tenant | null>(null);
  const [deleteError, setDeleteError] = useState<string | null>(null);
  const [confirmSlug, setConfirmSlug] = useState('');
  const [busy, setBusy] = useState(false);
  const [flash, setFlash] = useState<string | null>(null);

  const remove = async () => {
    if (!deleting) return;
    if (confirmSlug.trim() !== deleting.slug) {
      setDeleteError(`Type ${deleting.slug} to confirm.`);
      return;
    }
    setBusy(true);
    setDeleteError(null);
    try {
      await api.delete('/api/v1/tenants/{id}', { path: { id: deleting.id } });
      setFlash(`${deleting.name} and everything in it was deleted.`);
      setDeleting(null);
      list.reload();
    } catch (err) {
      setDeleteError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <PageHeader
        title="Tenants"
        trail={['Platform', 'Tenants']}
        description="Each tenant is an isolated organisation with its own users, numbers and data."
        actions={
          <Button variant="primary" onClick={() => setEditing('new')}>
            Add tenant
          </Button>
        }
      />
      <div role="status" aria-live="polite" className={flash ? 'alert alert-success' : 'sr-only'}>
        {flash}
      </div>
      <div className="panel">
        {list.error ? (
          <ErrorState error={list.error} onRetry={list.reload} />
        ) : !list.data ? (
          <Spinner label="Loading tenants…" />
        ) : list.data.items.length === 0 ? (
          <EmptyState title="No tenants yet">Add the first organisation that will use SIVO.</EmptyState>
        ) : (
          <div className="table-wrap">
            <table className="table">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Slug</th>
                  <th scope="col">Plan</th>
                  <th scope="col">Created</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.data.items.map((t) => (
                  <tr key={t.id}>
                    <td data-label="Name">
                      <span className="cell-primary">{t.name}</span>
                    </td>
                    <td data-label="Slug">
                      <code className="code-chip">{t.slug}</code>
                    </td>
                    <td data-label="Plan">
                      <Badge tone={t.plan === 'free' ? 'neutral' : 'accent'}>{PLAN_LABELS[t.plan] ?? t.plan}</Badge>
                    </td>
                    <td data-label="Created">
                      <time dateTime={t.created_at} title={formatDateTime(t.created_at)}>
                        {formatRelative(t.created_at)}
                      </time>
                    </td>
                    <td className="cell-actions">
                      <div className="button-row button-row-tight">
                        <Button size="sm" onClick={() => setEditing(t)} aria-label={`Edit ${t.name}`}>
                          Edit
                        </Button>
                        <Button
                          size="sm"
                          variant="danger"
                          onClick={() => {
                            setConfirmSlug('');
                            setDeleting(t);
                          }}
                          aria-label={`Delete ${t.name}`}
                        >
                          Delete
                        </Button>
                      </div>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        <Pager
          label="Tenant pages"
          page={pages.page}
          hasPrev={pages.page > 1}
          hasNext={Boolean(list.data?.next_cursor)}
          busy={list.loading}
          onPrev={pages.prev}
          onNext={() => list.data?.next_cursor && pages.next(list.data.next_cursor)}
        />
      </div>
      {editing && (
        <TenantDialog
          tenant={editing === 'new' ? null : editing}
          onClose={() => setEditing(null)}
          onSaved={(t, created) => {
            setEditing(null);
            setFlash(created ? `${t.name} was created.` : `${t.name} was updated.`);
            list.reload();
          }}
        />
      )}
      <ConfirmDialog
        open={deleting !== null}
        title="Delete this tenant?"
        confirmLabel="Delete tenant"
        busy={busy}
        error={deleteError}
        onConfirm={() => void remove()}
        onClose={() => {
          setDeleting(null);
          setDeleteError(null);
        }}
      >
        <p>
          This deletes <strong>{deleting?.name}</strong> and all of its users, keys and data. It cannot be undone.
        </p>
        <TextField data-autofocus label={`Type ${deleting?.slug ?? ''} to confirm`} name="confirm" autoComplete="off" value={confirmSlug} onChange={(e) => setConfirmSlug(e.target.value)} />
      </ConfirmDialog>
    </>
  );
}

function TenantDialog({ tenant, onClose, onSaved }: { tenant: Tenant | null; onClose: () => void; onSaved: (t: Tenant, created: boolean) => void }) {
  const [form, setForm] = useState<TenantForm>({ slug: tenant?.slug ?? '', name: tenant?.name ?? '', plan: tenant?.plan ?? 'free' });
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const formRef = useRef<HTMLFormElement>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setFormError(null);
    const fieldErrors = validateTenant(form, { creating: !tenant });
    setErrors(fieldErrors);
    if (Object.keys(fieldErrors).length) return focusFirstError(formRef.current, fieldErrors);
    setBusy(true);
    try {
      const saved = tenant
        ? await api.patch('/api/v1/tenants/{id}', { path: { id: tenant.id }, body: { name: form.name.trim(), plan: form.plan } })
        : await api.post('/api/v1/tenants', { body: { slug: form.slug.trim(), name: form.name.trim(), plan: form.plan } });
      onSaved(saved, !tenant);
    } catch (err) {
      if (err instanceof ApiError && err.hasFieldErrors) {
        setErrors(err.fieldErrors);
        focusFirstError(formRef.current, err.fieldErrors);
      } else setFormError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog open title={tenant ? `Edit ${tenant.name}` : 'Add tenant'} onClose={onClose}>
      <form ref={formRef} onSubmit={submit} noValidate className="form">
        <FormError error={formError} />
        <TextField label="Name" name="name" value={form.name} onChange={(e) => setForm((f) => ({ ...f, name: e.target.value }))} error={errors.name} />
        <TextField
          label="Slug"
          name="slug"
          value={form.slug}
          disabled={Boolean(tenant)}
          onChange={(e) => setForm((f) => ({ ...f, slug: e.target.value.toLowerCase() }))}
          error={errors.slug}
          hint={tenant ? 'The slug cannot change: it is the tenant’s SIP domain.' : '3 to 40 of a–z, 0–9 and inner “-”. Becomes the SIP domain <slug>.<base domain>.'}
        />
        <SelectField label="Plan" name="plan" value={form.plan} onChange={(e) => setForm((f) => ({ ...f, plan: e.target.value }))} error={errors.plan}>
          <option value="free">Free</option>
          <option value="pro">Pro</option>
          <option value="enterprise">Enterprise</option>
        </SelectField>
        <footer className="dialog-footer">
          <Button onClick={onClose} disabled={busy}>
            Cancel
          </Button>
          <Button type="submit" variant="primary" busy={busy}>
            {tenant ? 'Save changes' : 'Create tenant'}
          </Button>
        </footer>
      </form>
    </Dialog>
  );
}
