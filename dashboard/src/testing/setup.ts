import '@testing-library/jest-dom/vitest';
import { cleanup } from '@testing-library/react';
import { afterAll, afterEach, beforeAll, beforeEach, vi } from 'vitest';

import { FakeEventSource } from '@/testing/fake-event-source';
import { media } from '@/testing/media';
import { server } from '@/testing/server';

// jsdom cannot draw on a canvas; the chart's numbers are still rendered as a hidden table.
vi.mock('@/components/chart/uplot-canvas', () => ({ UPlotCanvas: () => null }));

beforeAll(() => {
  server.listen({ onUnhandledRequest: 'error' });
});

beforeEach(() => {
  vi.stubGlobal('EventSource', FakeEventSource);
  vi.stubGlobal(
    'matchMedia',
    (query: string): MediaQueryList =>
      ({
        matches: query.includes('dark') && media.prefersDark,
        media: query,
        onchange: null,
        addEventListener: () => undefined,
        removeEventListener: () => undefined,
        addListener: () => undefined,
        removeListener: () => undefined,
        dispatchEvent: () => false,
      }) as MediaQueryList,
  );
});

afterEach(() => {
  cleanup();
  server.resetHandlers();
  FakeEventSource.reset();
  vi.unstubAllGlobals();
  vi.useRealTimers();
  window.localStorage.clear();
  document.documentElement.removeAttribute('data-theme');
  media.prefersDark = false;
});

afterAll(() => {
  server.close();
});
