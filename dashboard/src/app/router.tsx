import { useEffect } from 'react';
import { Route, Routes, useLocation } from 'react-router';

import { HistoryRoute } from '@/app/routes/history';
import { LiveLogRoute } from '@/app/routes/live-log';
import { MessageRoute } from '@/app/routes/message';
import { NotFoundRoute } from '@/app/routes/not-found';
import { OverviewRoute } from '@/app/routes/overview';
import { SendRoute } from '@/app/routes/send';
import { messageRoute, paths } from '@/config/paths';

/** Keeps the document title in step with the page. */
function useRouteAnnouncer() {
  const { pathname } = useLocation();
  useEffect(() => {
    const page = Object.values(paths).find((p) => p.path === pathname);
    const label = page?.label ?? (pathname.startsWith('/messages/') ? 'Message' : null);
    document.title = label ? `${label} · smsgate` : 'smsgate';
  }, [pathname]);
}

export function AppRoutes() {
  useRouteAnnouncer();
  return (
    <Routes>
      <Route path={paths.overview.path} element={<OverviewRoute />} />
      <Route path={paths.live.path} element={<LiveLogRoute />} />
      <Route path={paths.send.path} element={<SendRoute />} />
      <Route path={paths.history.path} element={<HistoryRoute />} />
      <Route path={messageRoute} element={<MessageRoute />} />
      <Route path="*" element={<NotFoundRoute />} />
    </Routes>
  );
}
