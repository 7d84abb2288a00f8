import { screen } from '@testing-library/react';

import { initTheme, THEME_STORAGE_KEY } from '@/lib/theme';
import { media } from '@/testing/media';
import { renderApp } from '@/testing/render';

describe('Theme', () => {
  it('follows the system preference until toggled, then remembers the choice', async () => {
    media.prefersDark = true;
    initTheme();
    const { user, unmount } = renderApp('/');
    const toggle = await screen.findByRole('button', { name: 'Switch to light theme' });
    expect(document.documentElement.dataset.theme).toBe('dark');

    await user.click(toggle);
    expect(document.documentElement.dataset.theme).toBe('light');
    expect(window.localStorage.getItem(THEME_STORAGE_KEY)).toBe('light');
    expect(screen.getByRole('button', { name: 'Switch to dark theme' })).toBeInTheDocument();
    unmount();

    // A reload: the stored choice wins over the system's dark preference.
    initTheme();
    renderApp('/');
    expect(await screen.findByRole('button', { name: 'Switch to dark theme' })).toBeInTheDocument();
    expect(document.documentElement.dataset.theme).toBe('light');
  });

  it('is light by default and toggles to dark with the keyboard', async () => {
    initTheme();
    const { user } = renderApp('/');
    const toggle = await screen.findByRole('button', { name: 'Switch to dark theme' });
    toggle.focus();
    await user.keyboard('{Enter}');
    expect(document.documentElement.dataset.theme).toBe('dark');
    expect(window.localStorage.getItem(THEME_STORAGE_KEY)).toBe('dark');
  });
});
