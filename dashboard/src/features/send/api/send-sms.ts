import { useMutation } from '@tanstack/react-query';

import { api, isApiError } from '@/lib/api-client';
import type { LimitState, SmsAccepted, ViolatedWindow } from '@/lib/types';

export interface SendSmsInput {
  to: string;
  message: string;
  from?: string;
}

export const sendSms = ({ to, message, from }: SendSmsInput): Promise<SmsAccepted> =>
  api.post<SmsAccepted>('/api/sms', from ? { to, message, from } : { to, message });

/** Public endpoint: the quota it spends is the operator's own (IP, number) client. */
export function useSendSms() {
  return useMutation({ mutationFn: sendSms });
}

export interface RateLimited {
  retryAfter: number;
  limits: LimitState[];
  violated: ViolatedWindow[];
}

/** The 429 problem's extra members, when `error` is one. */
export function asRateLimited(error: unknown): RateLimited | null {
  if (!isApiError(error) || error.status !== 429) return null;
  const { body } = error;
  return {
    retryAfter: error.retryAfter ?? 1,
    limits: Array.isArray(body.limits) ? (body.limits as LimitState[]) : [],
    violated: Array.isArray(body.violated) ? (body.violated as ViolatedWindow[]) : [],
  };
}
