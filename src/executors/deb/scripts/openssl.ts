import type { PackageHandler } from './package-handler.js';

/** openssl's postinst links /usr/lib/ssl to /etc/ssl when the link is missing. */
export const opensslHandler: PackageHandler = {
  knownLines: {
    postinst: ['if [ ! -e /usr/lib/ssl ]', 'then', 'echo Linking /usr/lib/ssl to /etc/ssl', 'ln -sf /etc/ssl /usr/lib/ssl', 'fi'],
  },
  async configure({ view, builder }) {
    if (!view.exists('usr/lib/ssl')) builder.addSymlink(view.resolveParent('usr/lib/ssl'), '/etc/ssl', { mode: 0o777 });
  },
};
