import { Layout } from '@/app/layout';
import { LiveLog } from '@/features/events/components/live-log';

export function LiveLogRoute() {
  return (
    <Layout title="Live log">
      <LiveLog />
    </Layout>
  );
}
