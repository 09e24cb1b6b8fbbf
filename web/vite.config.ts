import { defineConfig } from 'vitest/config';

// `npm run dev` proxies the API to a running `sivo serve` (default http://127.0.0.1:8080), so the
// session cookie stays same-origin exactly as in production, where sivo serves web/dist itself.
const target = process.env.WEB_SIVO_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  server: {
    host: '127.0.0.1',
    port: 5173,
    proxy: {
      '/api': { target, changeOrigin: false },
      '/healthz': { target },
      '/readyz': { target },
      // The realtime socket (Socket.IO long-polling, then a WebSocket upgrade).
      '/socket.io': { target, ws: true },
      // Pre-signed recording links in the CDR's Call detail.
      '/recordings': { target },
    },
  },
  build: {
    outDir: 'dist',
    sourcemap: true,
    chunkSizeWarningLimit: 800,
    rolldownOptions: {
      onwarn(warning, warn) {
        // react-router marks its modules "use client" (for server components); harmless in an SPA.
        if (warning.code === 'MODULE_LEVEL_DIRECTIVE') return;
        warn(warning);
      },
    },
  },
  test: {
    include: ['src/**/*.test.ts', 'e2e/**/*.test.ts'],
    environment: 'node',
  },
});
