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

export interface Blocked {
  /** `destination-country`, `number-type` or `client`. */
  reason: string;
  detail: string | null;
  country: string | null;
  numberType: string | null;
}

/** The 403 `blocked-*` problem's members, when `error` is one. */
export function asBlocked(error: unknown): Blocked | null {
  if (!isApiError(error) || error.status !== 403) return null;
  const { body } = error;
  const text = (v: unknown) => (typeof v === 'string' ? v : null);
  return {
    reason: text(body.reason) ?? 'policy',
    detail: error.detail,
    country: text(body.country),
    numberType: text(body.number_type),
  };
}
