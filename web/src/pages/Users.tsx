import { useRef, useState, type FormEvent } from 'react';
import { useSearchParams } from 'react-router';
import { api, type Role, type User } from '../api/client';
import { ApiError, describeError } from '../api/problem';
import { useMe } from '../auth/session';
import { ConfirmDialog, Dialog } from '../components/Dialog';
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
import { formatDateTime, formatRelative, ROLE_LABELS } from '../lib/format';
import { trailFor } from '../lib/nav';
import { useApi } from '../lib/useApi';
import { useCursorPages } from '../lib/useCursorPages';
import { generatePassword, validateEditUser, validateNewUser } from '../lib/validation';

const PAGE_SIZE = 25;
const TENANT_ROLES = ['agent', 'supervisor', 'admin'] as const;

export function UsersPage() {
  const me = useMe();
  const [params, setParams] = useSearchParams();
  const role = TENANT_ROLES.find((r) => r === params.get('role'));
  const pages = useCursorPages(role ?? 'all');
  const list = useApi(
    (signal) => api.get('/api/v1/users', { query: { role, cursor: pages.cursor, limit: PAGE_SIZE }, signal }),
    `${role}|${pages.cursor}`,
  );
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState<User | null>(null);
  const [flash, setFlash] = useState<string | null>(null);

  const done = (message: string) => {
    setFlash(message);
    setCreating(false);
    setEditing(null);
    list.reload();
  };

  return (
    <>
      <PageHeader
        title="Users & roles"
        trail={trailFor('/settings/users')}
        description="Everyone who can sign in to this organisation. Agents take calls, supervisors also watch queues, admins configure everything."
        actions={
          <Button variant="primary" onClick={() => setCreating(true)}>
            <PlusIcon /> Add user
          </Button>
        }
      />
      <div role="status" aria-live="polite" className={flash ? 'alert alert-success' : 'sr-only'}>
        {flash}
      </div>
      <div className="panel">
        <div className="toolbar">
          <SelectField
            label="Role"
            value={role ?? ''}
            onChange={(e) => {
              setFlash(null);
              const next = new URLSearchParams(params);
              if (e.target.value) next.set('role', e.target.value);
              else next.delete('role');
              setParams(next, { replace: true });
            }}
          >
            <option value="">All roles</option>
            <option value="agent">Agents</option>
            <option value="supervisor">Supervisors</option>
            <option value="admin">Admins</option>
          </SelectField>
          {list.loading && list.data && <span className="spinner spinner-inline" role="status" aria-label="Loading" />}
        </div>
        {list.error ? (
          <ErrorState error={list.error} onRetry={list.reload} />
        ) : !list.data ? (
          <Spinner label="Loading users…" />
        ) : list.data.items.length === 0 ? (
          <EmptyState title={role ? `No ${ROLE_LABELS[role]?.toLowerCase()}s yet` : 'No users yet'}>
            {role ? 'Nobody has this role. Choose another filter or add a user.' : 'Add the first user to this organisation.'}
          </EmptyState>
        ) : (
          <div className="table-wrap">
            <table className="table">
              <caption className="sr-only">Users{role ? `, ${ROLE_LABELS[role]?.toLowerCase()}s only` : ''}</caption>
              <thead>
                <tr>
                  <th scope="col">User</th>
                  <th scope="col">Role</th>
                  <th scope="col">Two-step</th>
                  <th scope="col">Status</th>
                  <th scope="col">Created</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.data.items.map((u) => (
                  <tr key={u.id}>
                    <td data-label="User">
                      <div className="cell-user">
                        <span className="avatar avatar-sm" aria-hidden="true">
                          {(u.display_name || u.email).slice(0, 1).toUpperCase()}
                        </span>
                        <span>
                          <span className="cell-primary">{u.display_name || u.email}</span>
                          <span className="cell-secondary">{u.email}</span>
                        </span>
                      </div>
                    </td>
                    <td data-label="Role">
                      <Badge tone={u.role === 'admin' ? 'accent' : 'neutral'}>{ROLE_LABELS[u.role]}</Badge>
                    </td>
                    <td data-label="Two-step">{u.mfa_enabled ? <Badge tone="success">On</Badge> : <span className="muted">Off</span>}</td>
                    <td data-label="Status">
                      <UserStatus user={u} />
                    </td>
                    <td data-label="Created">
                      <time dateTime={u.created_at} title={formatDateTime(u.created_at)}>
                        {formatRelative(u.created_at)}
                      </time>
                    </td>
                    <td className="cell-actions">
                      <Button size="sm" onClick={() => setEditing(u)} aria-label={`Edit ${u.email}`}>
                        Edit
                      </Button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        <Pager
          label="Users pages"
          page={pages.page}
          hasPrev={pages.page > 1}
          hasNext={Boolean(list.data?.next_cursor)}
          busy={list.loading}
          onPrev={pages.prev}
          onNext={() => list.data?.next_cursor && pages.next(list.data.next_cursor)}
        />
      </div>
      <CreateUserDialog open={creating} onClose={() => setCreating(false)} onCreated={(u) => done(`${u.email} was added.`)} />
      {editing && (
        <EditUserDialog
          user={editing}
          isSelf={editing.id === me.user?.id}
          onClose={() => setEditing(null)}
          onDone={done}
        />
      )}
    </>
  );
}

function UserStatus({ user }: { user: User }) {
  if (user.disabled) return <Badge tone="danger">Disabled</Badge>;
  if (user.locked_until && new Date(user.locked_until) > new Date()) {
    return (
      <span title={`Locked until ${formatDateTime(user.locked_until)}`}>
        <Badge tone="warning">Locked</Badge>
      </span>
    );
  }
  return <Badge tone="success">Active</Badge>;
}

function PlusIcon() {
  return (
    <svg viewBox="0 0 24 24" width="16" height="16" fill="none" stroke="currentColor" strokeWidth="2.2" aria-hidden="true">
      <path d="M12 5v14M5 12h14" />
    </svg>
  );
}

function CreateUserDialog({ open, onClose, onCreated }: { open: boolean; onClose: () => void; onCreated: (u: User) => void }) {
  const empty = { email: '', display_name: '', role: 'agent', password: '' };
  const [form, setForm] = useState(empty);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [showPassword, setShowPassword] = useState(false);
  const formRef = useRef<HTMLFormElement>(null);

  const close = () => {
    setForm(empty);
    setErrors({});
    setFormError(null);
    setShowPassword(false);
    onClose();
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setFormError(null);
    const fieldErrors = validateNewUser(form);
    setErrors(fieldErrors);
    if (Object.keys(fieldErrors).length) return focusFirstError(formRef.current, fieldErrors);
    setBusy(true);
    try {
      const user = await api.post('/api/v1/users', {
        body: {
          email: form.email.trim(),
          display_name: form.display_name.trim() || null,
          role: form.role as Role,
          password: form.password,
        },
      });
      setForm(empty);
      setErrors({});
      onCreated(user);
    } catch (err) {
      if (err instanceof ApiError && err.hasFieldErrors) {
        setErrors(err.fieldErrors);
        focusFirstError(formRef.current, err.fieldErrors);
        setFormError(err.fieldErrors.email || err.fieldErrors.password || err.fieldErrors.role || err.fieldErrors.display_name ? null : err);
      } else setFormError(err);
    } finally {
      setBusy(false);
    }
  };

  const set = (k: keyof typeof empty) => (e: { target: { value: string } }) => setForm((f) => ({ ...f, [k]: e.target.value }));

  return (
    <Dialog open={open} title="Add user" onClose={close} description="They sign in with this email and password; admins must also set up two-step verification at first sign-in.">
      <form ref={formRef} onSubmit={submit} noValidate className="form" aria-label="Add user">
        <FormError error={formError} />
        <TextField label="Email" name="email" type="email" autoComplete="off" value={form.email} onChange={set('email')} error={errors.email} />
        <TextField label="Display name" name="display_name" optional value={form.display_name} onChange={set('display_name')} error={errors.display_name} />
        <SelectField label="Role" name="role" value={form.role} onChange={set('role')} error={errors.role} hint={roleHint(form.role)}>
          <option value="agent">Agent</option>
          <option value="supervisor">Supervisor</option>
          <option value="admin">Admin</option>
        </SelectField>
        <div className="field-with-action">
          <TextField
            label="Initial password"
            name="password"
            type={showPassword ? 'text' : 'password'}
            autoComplete="new-password"
            value={form.password}
            onChange={set('password')}
            error={errors.password}
            hint="12 to 128 characters. Share it privately; they can change it from their profile."
          />
          <Button
            size="sm"
            onClick={() => {
              setForm((f) => ({ ...f, password: generatePassword() }));
              setShowPassword(true);
            }}
          >
            Generate
          </Button>
        </div>
        <footer className="dialog-footer">
          <Button onClick={close} disabled={busy}>
            Cancel
          </Button>
          <Button type="submit" variant="primary" busy={busy}>
            Add user
          </Button>
        </footer>
      </form>
    </Dialog>
  );
}

function roleHint(role: string): string {
  switch (role) {
    case 'admin':
      return 'Configures the organisation, users, integrations; reads the audit log. Two-step verification is mandatory.';
    case 'supervisor':
      return 'Takes calls and watches queues and agents.';
    default:
      return 'Takes calls and chats.';
  }
}

function EditUserDialog({
  user,
  isSelf,
  onClose,
  onDone,
}: {
  user: User;
  isSelf: boolean;
  onClose: () => void;
  onDone: (message: string) => void;
}) {
  const [form, setForm] = useState({ display_name: user.display_name, role: user.role as string, disabled: user.disabled, password: '' });
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [confirm, setConfirm] = useState<'delete' | 'mfa' | null>(null);
  const [confirmError, setConfirmError] = useState<string | null>(null);
  const formRef = useRef<HTMLFormElement>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setFormError(null);
    const fieldErrors = validateEditUser(form);
    setErrors(fieldErrors);
    if (Object.keys(fieldErrors).length) return focusFirstError(formRef.current, fieldErrors);
    const patch: { display_name?: string; role?: Role; disabled?: boolean; password?: string } = {};
    if (form.display_name.trim() !== user.display_name) patch.display_name = form.display_name.trim();
    if (form.role !== user.role) patch.role = form.role as Role;
    if (form.disabled !== user.disabled) patch.disabled = form.disabled;
    if (form.password) patch.password = form.password;
    if (Object.keys(patch).length === 0) return onClose();
    setBusy(true);
    try {
      const updated = await api.patch('/api/v1/users/{id}', { path: { id: user.id }, body: patch });
      onDone(`${updated.email} was updated.`);
    } catch (err) {
      if (err instanceof ApiError && err.hasFieldErrors) {
        setErrors(err.fieldErrors);
        focusFirstError(formRef.current, err.fieldErrors);
      } else setFormError(err);
    } finally {
      setBusy(false);
    }
  };

  const runConfirm = async () => {
    setBusy(true);
    setConfirmError(null);
    try {
      if (confirm === 'delete') {
        await api.delete('/api/v1/users/{id}', { path: { id: user.id } });
        onDone(`${user.email} was deleted.`);
      } else {
        await api.post('/api/v1/users/{id}/mfa/reset', { path: { id: user.id } });
        onDone(`Two-step verification was reset for ${user.email}. They set it up again at their next sign-in.`);
      }
    } catch (err) {
      setConfirmError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <Dialog open title={`Edit ${user.display_name || user.email}`} onClose={onClose} description={user.email}>
        <form ref={formRef} onSubmit={submit} noValidate className="form" aria-label="Edit user">
          <FormError error={formError} />
          <TextField
            label="Display name"
            name="display_name"
              value={form.display_name}
            onChange={(e) => setForm((f) => ({ ...f, display_name: e.target.value }))}
            error={errors.display_name}
          />
          <SelectField
            label="Role"
            name="role"
            value={form.role}
            disabled={isSelf}
            onChange={(e) => setForm((f) => ({ ...f, role: e.target.value }))}
            error={errors.role}
            hint={isSelf ? 'You cannot change your own role.' : roleHint(form.role)}
          >
            <option value="agent">Agent</option>
            <option value="supervisor">Supervisor</option>
            <option value="admin">Admin</option>
          </SelectField>
          <CheckboxField
            label="Disabled"
            name="disabled"
            checked={form.disabled}
            disabled={isSelf}
            onChange={(e) => setForm((f) => ({ ...f, disabled: e.target.checked }))}
            hint="A disabled user cannot sign in; their sessions end at once."
            error={errors.disabled}
          />
          <TextField
            label="New password"
            name="password"
            type="password"
            autoComplete="new-password"
            optional
            value={form.password}
            onChange={(e) => setForm((f) => ({ ...f, password: e.target.value }))}
            error={errors.password}
            hint="Leave empty to keep the current one. Setting it ends the user's sessions."
          />
          <footer className="dialog-footer">
            <Button onClick={onClose} disabled={busy}>
              Cancel
            </Button>
            <Button type="submit" variant="primary" busy={busy}>
              Save changes
            </Button>
          </footer>
          {!isSelf && (
            <section className="danger-zone" aria-label="Danger zone">
              <div>
                <p className="danger-title">Reset two-step verification</p>
                <p className="muted">For a lost phone: removes the second factor and ends their sessions.</p>
              </div>
              <Button size="sm" onClick={() => setConfirm('mfa')} disabled={!user.mfa_enabled}>
                Reset MFA
              </Button>
              <div>
                <p className="danger-title">Delete user</p>
                <p className="muted">Removes the account. The audit log keeps what they did.</p>
              </div>
              <Button size="sm" variant="danger" onClick={() => setConfirm('delete')}>
                Delete
              </Button>
            </section>
          )}
        </form>
      </Dialog>
      <ConfirmDialog
        open={confirm !== null}
        title={confirm === 'delete' ? 'Delete this user?' : 'Reset two-step verification?'}
        confirmLabel={confirm === 'delete' ? 'Delete user' : 'Reset MFA'}
        busy={busy}
        error={confirmError}
        onConfirm={() => void runConfirm()}
        onClose={() => {
          setConfirm(null);
          setConfirmError(null);
        }}
      >
        {confirm === 'delete' ? (
          <p>
            <strong>{user.email}</strong> will no longer be able to sign in, and this cannot be undone.
          </p>
        ) : (
          <p>
            <strong>{user.email}</strong> will be signed out everywhere and must set up two-step verification again
            {user.role === 'admin' ? ' at their next sign-in' : ' if they want it'}.
          </p>
        )}
      </ConfirmDialog>
    </>
  );
}
