// A free TCP port on `host` (all interfaces when omitted): bind port 0, read what the kernel chose, close. Another process could take it
// before the ranks bind it; the window is short and a clash fails loudly in torch.distributed.
import { createServer } from 'node:net';

export function freePort(host?: string): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, ...(host ? { host } : {}), exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}
