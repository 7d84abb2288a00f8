/**
 * Light/dark theme: follows `prefers-color-scheme` until the operator picks one, and then
 * remembers the pick in localStorage. A tiny external store so every component (the toggle,
 * the charts) reads the same value.
 */

export type Theme = 'light' | 'dark';

export const THEME_STORAGE_KEY = 'smsgate.theme';
const DARK_QUERY = '(prefers-color-scheme: dark)';

const listeners = new Set<() => void>();

function storedTheme(): Theme | null {
  try {
    const value = window.localStorage.getItem(THEME_STORAGE_KEY);
    return value === 'light' || value === 'dark' ? value : null;
  } catch {
    return null;
  }
}

function systemTheme(): Theme {
  return typeof window.matchMedia === 'function' && window.matchMedia(DARK_QUERY).matches
    ? 'dark'
    : 'light';
}

export function getTheme(): Theme {
  return storedTheme() ?? systemTheme();
}

function apply(theme: Theme): void {
  const root = document.documentElement;
  root.dataset.theme = theme;
  root.style.colorScheme = theme;
}

function notify(): void {
  apply(getTheme());
  listeners.forEach((listener) => listener());
}

export function setTheme(theme: Theme): void {
  try {
    window.localStorage.setItem(THEME_STORAGE_KEY, theme);
  } catch {
    // Private mode or a full quota: the choice still holds for this page.
  }
  apply(theme);
  listeners.forEach((listener) => listener());
}

export function subscribeTheme(listener: () => void): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}

/** Applies the current theme and follows system changes while no choice is stored. */
export function initTheme(): () => void {
  apply(getTheme());
  if (typeof window.matchMedia !== 'function') return () => undefined;
  const media = window.matchMedia(DARK_QUERY);
  const onChange = () => {
    if (storedTheme() === null) notify();
  };
  media.addEventListener('change', onChange);
  return () => media.removeEventListener('change', onChange);
}
