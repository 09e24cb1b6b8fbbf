export function Logo({ size = 28 }: { size?: number }) {
  return (
    <svg className="logo" viewBox="0 0 32 32" width={size} height={size} aria-hidden="true">
      <rect width="32" height="32" rx="8" fill="var(--accent)" />
      <path
        d="M10 20.5c1.4 1.3 3.4 2 5.6 2 3 0 5-1.4 5-3.6 0-2.1-1.5-3-4.6-3.7-2.3-.5-3-1-3-1.9 0-.9.9-1.5 2.3-1.5 1.4 0 2.7.5 3.7 1.3l1.4-2c-1.3-1.1-3-1.7-5-1.7-2.9 0-4.9 1.6-4.9 3.9 0 2.3 1.6 3.2 4.6 3.8 2.2.5 3 .9 3 1.9s-.9 1.6-2.5 1.6c-1.7 0-3.2-.6-4.3-1.7z"
        fill="#fff"
      />
    </svg>
  );
}
