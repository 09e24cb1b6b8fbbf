import { Link } from 'react-router';
import { PageHeader } from '../components/ui';

export function NotFoundPage() {
  return (
    <>
      <PageHeader title="Page not found" />
      <div className="panel panel-message">
        <p>There is no page at this address.</p>
        <Link to="/" className="btn btn-secondary">
          Go to the start page
        </Link>
      </div>
    </>
  );
}

export function ForbiddenPage() {
  return (
    <>
      <PageHeader title="No access" />
      <div className="panel panel-message">
        <p>Your role does not give access to this page. Ask an administrator if you need it.</p>
        <Link to="/" className="btn btn-secondary">
          Go to the start page
        </Link>
      </div>
    </>
  );
}
