import { PageHeader } from '../components/ui';
import { findNavItem, trailFor } from '../lib/nav';

/** What each not-yet-built area will hold; said plainly, with no placeholder data. */
const ABOUT: Record<string, { what: string; subject: string }> = {
  '/settings/transcription-policies': { subject: 'Transcription policies are', what: 'when calls are transcribed: globally, per DID, per queue or per agent.' },
  '/settings/transcription-providers': { subject: 'Transcription providers are', what: 'speech-to-text providers and their API keys, with a test button.' },
  '/settings/salesforce': { subject: 'The Salesforce integration is', what: 'the Service Cloud Voice connection, user mappings and transcript pushes.' },
};

export function ComingSoonPage({ path }: { path: string }) {
  const item = findNavItem(path);
  const about = ABOUT[path];
  const title = item?.label ?? 'Coming soon';
  return (
    <>
      <PageHeader title={title} trail={trailFor(path)} />
      <section className="panel coming-soon" aria-labelledby="coming-soon-title">
        <span className="badge badge-accent">Coming soon</span>
        <h2 id="coming-soon-title" className="coming-soon-title">
          Coming soon: {about ? `${about.subject} not available in this build.` : `${title} is not available in this build.`}
        </h2>
        {about && <p className="muted">When it ships, this page will hold: {about.what}</p>}
      </section>
    </>
  );
}
