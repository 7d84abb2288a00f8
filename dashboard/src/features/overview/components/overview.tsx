import { ErrorAlert } from '@/components/error-alert';
import { ApiClientsPanel } from '@/features/api-clients/components/api-clients-panel';
import { DeliveryPanel } from '@/features/delivery/components/delivery-panel';
import { useStats } from '@/features/overview/api/get-stats';
import { PerMinuteChart } from '@/features/overview/components/per-minute-chart';
import { TopClients, TopNumbers } from '@/features/overview/components/top-offenders';
import { TotalsCards } from '@/features/overview/components/totals-cards';
import { ViolationsTable } from '@/features/overview/components/violations-table';
import { PolicyPanels } from '@/features/policy/components/policy-panels';
import type { PolicyWindow } from '@/lib/types';

function PolicyLine({ policy }: { policy: PolicyWindow[] }) {
  if (policy.length === 0) return null;
  return (
    <p className="muted">
      Policy: {policy.map((w) => `${w.limit} per ${w.name}`).join(', ')} per (IP, number)
    </p>
  );
}

export function Overview() {
  const stats = useStats();
  return (
    <div className="stack">
      {stats.isPending && (
        <p role="status" className="muted">
          Loading stats…
        </p>
      )}
      {stats.isError && <ErrorAlert error={stats.error} title="Could not load stats" />}
      {stats.data && (
        <>
          <PolicyLine policy={stats.data.policy} />
          <TotalsCards totals={stats.data.totals} />
          <div className="grid">
            <PerMinuteChart buckets={stats.data.per_minute} />
            <TopClients clients={stats.data.top_clients} />
            <TopNumbers numbers={stats.data.top_numbers} />
            <PolicyPanels fallback={stats.data.policy} />
            <ApiClientsPanel />
          </div>
        </>
      )}
      <DeliveryPanel />
      <ViolationsTable />
    </div>
  );
}
