import { useQueryClient } from '@tanstack/react-query';
import { useEffect, type ReactNode } from 'react';

import { ErrorAlert } from '@/components/error-alert';
import { markSignedOut, useSession } from '@/features/auth/api/session';
import { LoginScreen } from '@/features/auth/components/login-screen';
import { onUnauthorized } from '@/lib/api-client';

/**
 * Shows the login screen when the server wants a token we do not have, and whenever any
 * call answers 401; otherwise renders the app.
 */
export function AuthGate({ children }: { children: ReactNode }) {
  const queryClient = useQueryClient();
  const session = useSession();

  useEffect(() => onUnauthorized(() => markSignedOut(queryClient)), [queryClient]);

  if (session.isPending) {
    return (
      <p className="page-status" role="status">
        Loading…
      </p>
    );
  }
  if (session.isError) {
    return (
      <div className="page-status">
        <ErrorAlert error={session.error} title="Could not reach smsgate" />
        <button type="button" className="button" onClick={() => void session.refetch()}>
          Try again
        </button>
      </div>
    );
  }
  if (session.data.auth_required && !session.data.authenticated) return <LoginScreen />;
  return children;
}
