// {{name}}: echoes every message back to the caller until the caller closes; the text
// message `bye` ends the call (the host then closes the socket with 1000).
import { mark, receiveBlocking, sendBlocking, type Connection, type RequestInfo } from '@switchboard/guest';

export const handler = {
  handle(request: RequestInfo, inbound: Connection): void {
    mark('{{name}}.started', { path: request.path });
    for (;;) {
      const message = receiveBlocking(inbound);
      if (message.tag === 'closed') return;
      if (message.tag === 'text' && message.val === 'bye') return;
      sendBlocking(inbound, message);
    }
  },
};
