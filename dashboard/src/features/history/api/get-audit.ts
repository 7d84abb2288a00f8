import { useQuery } from '@tanstack/react-query';

import { queryConfig } from '@/config/query';
import { api } from '@/lib/api-client';
import type { AuditResult } from '@/lib/types';

export type AuditBy = 'to' | 'ip';

export interface AuditParams {
  by: AuditBy;
  value: string;
  since?: string;
  until?: string;
  limit?: number;
}

export const auditQueryKey = (params: AuditParams) => ['audit', params] as const;

export const getAudit = ({ by, value, since, until, limit }: AuditParams, signal?: AbortSignal): Promise<AuditResult> =>
  api.get<AuditResult>('/api/audit', {
    query: { [by]: value, since, until, limit: limit ?? queryConfig.auditLimit },
    signal,
  });

/** Runs only once there is something to search for (`params` null until the form is sent). */
export function useAudit(params: AuditParams | null) {
  return useQuery({
    queryKey: auditQueryKey(params ?? { by: 'to', value: '' }),
    queryFn: ({ signal }) => getAudit(params!, signal),
    enabled: params !== null && params.value !== '',
  });
}
