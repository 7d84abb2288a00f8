import { Layout } from '@/app/layout';
import { SendForm } from '@/features/send/components/send-form';

export function SendRoute() {
  return (
    <Layout title="Send a test SMS">
      <p className="muted lead">
        Sends through the public API like any client, so it spends the quota of this browser&apos;s IP and the number.
      </p>
      <SendForm />
    </Layout>
  );
}
