import { useEffect, useId, useState, type FormEvent } from 'react';

import { ErrorAlert } from '@/components/error-alert';
import { asBlocked, asRateLimited, useSendSms, type SendSmsInput } from '@/features/send/api/send-sms';
import { AcceptedResult, BlockedResult, RateLimitedResult } from '@/features/send/components/send-result';
import { isApiError } from '@/lib/api-client';

type FieldName = 'to' | 'message' | 'from';
const FIELDS: readonly FieldName[] = ['to', 'message', 'from'];

/** Sends a real request through the public API, so it spends the operator's own quota. */
export function SendForm() {
  const [values, setValues] = useState<Record<FieldName, string>>({ to: '', message: '', from: '' });
  const [deadline, setDeadline] = useState<number | null>(null);
  const send = useSendSms();
  const baseId = useId();
  const id = (field: FieldName) => `${baseId}-${field}`;
  const errorId = (field: FieldName) => `${baseId}-${field}-error`;

  const error = send.error;
  const fieldErrors: Partial<Record<FieldName, string>> = {};
  if (isApiError(error)) {
    for (const field of FIELDS) {
      const detail = error.fieldError(field);
      if (detail) fieldErrors[field] = detail;
    }
  }
  const firstInvalid = FIELDS.find((field) => fieldErrors[field]);
  const limited = asRateLimited(error);
  const blocked = asBlocked(error);

  // Take the keyboard (and the screen reader) to the first field the server refused.
  useEffect(() => {
    if (firstInvalid) document.getElementById(`${baseId}-${firstInvalid}`)?.focus();
  }, [error, firstInvalid, baseId]);
  const otherError = error && !limited && !blocked && Object.keys(fieldErrors).length === 0 ? error : null;

  const onSubmit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const input: SendSmsInput = { to: values.to.trim(), message: values.message };
    if (values.from.trim()) input.from = values.from.trim();
    send.mutate(input, {
      onError: (err) => {
        const rl = asRateLimited(err);
        setDeadline(rl ? Date.now() + rl.retryAfter * 1000 : null);
      },
      onSuccess: () => setDeadline(null),
    });
  };

  const fieldProps = (field: FieldName) => ({
    id: id(field),
    name: field,
    value: values[field],
    'aria-invalid': fieldErrors[field] ? true : undefined,
    'aria-describedby': fieldErrors[field] ? errorId(field) : undefined,
    onChange: (e: { target: { value: string } }) => setValues((v) => ({ ...v, [field]: e.target.value })),
  });

  const fieldError = (field: FieldName) =>
    fieldErrors[field] && (
      <p id={errorId(field)} className="field__error">
        {fieldErrors[field]}
      </p>
    );

  return (
    <div className="send">
      <form className="card form" onSubmit={onSubmit} aria-label="Send a test SMS" noValidate>
        <div className="field">
          <label htmlFor={id('to')}>Number</label>
          <input {...fieldProps('to')} type="tel" autoComplete="off" placeholder="+14155550123" required />
          <p className="field__hint">International format; it is normalised to E.164.</p>
          {fieldError('to')}
        </div>
        <div className="field">
          <label htmlFor={id('message')}>Message</label>
          <textarea {...fieldProps('message')} rows={3} required />
          {fieldError('message')}
        </div>
        <div className="field">
          <label htmlFor={id('from')}>
            From <span className="muted">(optional)</span>
          </label>
          <input {...fieldProps('from')} type="text" autoComplete="off" placeholder="Acme" />
          {fieldError('from')}
        </div>
        <div className="form__actions">
          <button type="submit" className="button button--primary" disabled={send.isPending}>
            {send.isPending ? 'Sending…' : 'Send'}
          </button>
        </div>
      </form>

      <section className="card" aria-labelledby={`${baseId}-result`}>
        <h2 id={`${baseId}-result`} className="panel__title">
          Result
        </h2>
        <div role="status" aria-live="polite">
          {send.isIdle && <p className="muted">Nothing sent yet.</p>}
          {send.isPending && <p className="muted">Sending…</p>}
          {send.isSuccess && <AcceptedResult result={send.data} />}
          {limited && deadline !== null && <RateLimitedResult limited={limited} deadline={deadline} />}
          {blocked && <BlockedResult blocked={blocked} />}
          {Object.keys(fieldErrors).length > 0 && (
            <p className="alert alert--error">{isApiError(error) ? error.title : 'Invalid input'} — see the highlighted fields.</p>
          )}
        </div>
        {otherError && <ErrorAlert error={otherError} title="Not sent" />}
      </section>
    </div>
  );
}
