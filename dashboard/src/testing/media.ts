/** jsdom has no matchMedia; the setup file stubs one, and tests set `prefersDark` to pick the system theme. */
export const media = { prefersDark: false };
