import { useParams } from 'react-router';

import { Layout } from '@/app/layout';
import { MessageDetails } from '@/features/delivery/components/message-details';

export function MessageRoute() {
  const { id = '' } = useParams();
  return (
    <Layout title="Message">
      <MessageDetails id={id} />
    </Layout>
  );
}
