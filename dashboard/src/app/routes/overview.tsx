import { Layout } from '@/app/layout';
import { Overview } from '@/features/overview/components/overview';

export function OverviewRoute() {
  return (
    <Layout title="Overview">
      <Overview />
    </Layout>
  );
}
