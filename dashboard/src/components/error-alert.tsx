import { isApiError } from '@/lib/api-client';

/** One error, rendered the same way everywhere: problem title, detail, and any field errors. */
export function ErrorAlert({ error, title }: { error: unknown; title?: string }) {
  let heading = title ?? 'Something went wrong';
  let detail: string | null = null;
  let fields: { field: string; detail: string }[] = [];
  if (isApiError(error)) {
    detail = error.detail ? `${error.title}: ${error.detail}` : error.title;
    fields = error.errors;
    if (!title) heading = error.status ? `Request failed (${error.status})` : 'Network error';
  } else if (error instanceof Error) {
    detail = error.message;
  }
  return (
    <div className="alert alert--error" role="alert">
      <strong>{heading}</strong>
      {detail && <span> — {detail}</span>}
      {fields.length > 0 && (
        <ul>
          {fields.map((f) => (
            <li key={f.field}>
              <span className="mono">{f.field}</span>: {f.detail}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
