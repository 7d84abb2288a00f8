import { act } from '@testing-library/react';

/**
 * A stand-in for the browser's EventSource (jsdom has none). Tests drive it by hand:
 * `FakeEventSource.latest().open()`, then `emitLive('sms', event)`.
 */
export class FakeEventSource extends EventTarget {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSED = 2;
  readonly CONNECTING = 0;
  readonly OPEN = 1;
  readonly CLOSED = 2;

  static instances: FakeEventSource[] = [];

  readonly url: string;
  readonly withCredentials: boolean;
  readyState = FakeEventSource.CONNECTING;
  onopen: ((event: Event) => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;

  constructor(url: string | URL, init?: EventSourceInit) {
    super();
    this.url = String(url);
    this.withCredentials = init?.withCredentials ?? false;
    FakeEventSource.instances.push(this);
  }

  /** The most recently created source that is not closed. */
  static latest(): FakeEventSource {
    const open = FakeEventSource.instances.filter((s) => s.readyState !== FakeEventSource.CLOSED);
    const source = open[open.length - 1];
    if (!source) throw new Error('no EventSource has been opened');
    return source;
  }

  static reset(): void {
    FakeEventSource.instances = [];
  }

  open(): void {
    this.readyState = FakeEventSource.OPEN;
    const event = new Event('open');
    this.onopen?.(event);
    this.dispatchEvent(event);
  }

  emit(type: string, data: unknown): void {
    const event = new MessageEvent(type, { data: typeof data === 'string' ? data : JSON.stringify(data) });
    if (type === 'message') this.onmessage?.(event);
    this.dispatchEvent(event);
  }

  /** A dropped connection; `closed` is what a browser does on a non-200 answer (no retry). */
  fail(closed = false): void {
    this.readyState = closed ? FakeEventSource.CLOSED : FakeEventSource.CONNECTING;
    const event = new Event('error');
    this.onerror?.(event);
    this.dispatchEvent(event);
  }

  close(): void {
    this.readyState = FakeEventSource.CLOSED;
  }
}

/**
 * Opens the app's live stream and sends one SSE event through it, inside `act`. It also waits
 * one macrotask, because TanStack Query notifies observers on a `setTimeout(0)`: after this
 * resolves, the screen shows the event.
 */
export async function emitLive(type: 'sms' | 'stats' | 'status', data: unknown): Promise<void> {
  await act(async () => {
    const source = FakeEventSource.latest();
    if (source.readyState !== FakeEventSource.OPEN) source.open();
    source.emit(type, data);
    await new Promise((resolve) => setTimeout(resolve, 0));
  });
}
