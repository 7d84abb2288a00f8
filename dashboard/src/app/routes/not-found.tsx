import { Link } from 'react-router';

import { Layout } from '@/app/layout';
import { paths } from '@/config/paths';

export function NotFoundRoute() {
  return (
    <Layout title="Page not found">
      <p>
        There is no page here. <Link to={paths.overview.path}>Go to the overview</Link>.
      </p>
    </Layout>
  );
}
