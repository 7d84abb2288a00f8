import { Layout } from '@/app/layout';
import { AuditSearch } from '@/features/history/components/audit-search';
import { Volumes } from '@/features/history/components/volumes';

export function HistoryRoute() {
  return (
    <Layout title="History">
      <div className="stack">
        <Volumes />
        <AuditSearch />
      </div>
    </Layout>
  );
}
