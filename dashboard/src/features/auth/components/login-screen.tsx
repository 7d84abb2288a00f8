import { useId, useState, type FormEvent } from 'react';

import { ThemeToggle } from '@/components/theme-toggle';
import { useLogin } from '@/features/auth/api/session';
import { isApiError } from '@/lib/api-client';

export function LoginScreen() {
  const [token, setToken] = useState('');
  const login = useLogin();
  const errorId = useId();
  const tokenId = useId();

  const rejected = isApiError(login.error) && login.error.status === 401;
  const message = login.error
    ? rejected
      ? 'That token was not accepted.'
      : isApiError(login.error)
        ? login.error.message
        : 'Signing in failed.'
    : null;

  const onSubmit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    if (token.trim() === '') return;
    login.mutate(token.trim());
  };

  return (
    <div className="login">
      <div className="login__tools">
        <ThemeToggle />
      </div>
      <form className="card login__card" onSubmit={onSubmit} aria-labelledby="login-title" noValidate>
        <h1 id="login-title">Sign in to smsgate</h1>
        <p className="muted">This server requires the operator token (SMSGATE_ADMIN_TOKEN).</p>
        <div className="field">
          <label htmlFor={tokenId}>Admin token</label>
          <input
            id={tokenId}
            name="token"
            type="password"
            autoComplete="current-password"
            required
            autoFocus
            value={token}
            onChange={(e) => setToken(e.target.value)}
            aria-invalid={message ? true : undefined}
            aria-describedby={message ? errorId : undefined}
          />
          {message && (
            <p id={errorId} className="field__error" role="alert">
              {message}
            </p>
          )}
        </div>
        <button type="submit" className="button button--primary" disabled={login.isPending}>
          {login.isPending ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </div>
  );
}
