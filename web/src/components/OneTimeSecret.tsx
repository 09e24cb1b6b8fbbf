import { useEffect, useRef } from 'react';
import { Button, CopyButton } from './ui';

/** A secret the server shows once (API key, webhook signing secret), with copy and dismiss. */
export function OneTimeSecret({
  title,
  secret,
  testId,
  children,
  onDismiss,
}: {
  title: string;
  secret: string;
  testId?: string;
  children?: React.ReactNode;
  onDismiss: () => void;
}) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    heading.current?.focus();
  }, [secret]);
  return (
    <section className="panel key-created" aria-labelledby="one-time-secret-title">
      <h2 id="one-time-secret-title" ref={heading} tabIndex={-1} className="section-title">
        {title}
      </h2>
      <p className="muted">{children ?? 'This is the only time it is shown. SIVO keeps it encrypted and never displays it again.'}</p>
      <div className="secret-box">
        <code data-testid={testId}>{secret}</code>
        <CopyButton text={secret} label="Copy" />
      </div>
      <Button size="sm" onClick={onDismiss}>
        I have copied it, hide it
      </Button>
    </section>
  );
}
