// Echoes every message back to the caller, then returns when the caller closes. The text
// message `bye` makes it return at once without closing (the host then closes with 1000).
// Records `echo.started` and `echo.peer-closed`, as the Rust echo guest does.
import { mark, receiveBlocking, sendBlocking, type Connection, type RequestInfo } from '@switchboard/guest';

export const handler = {
  handle(request: RequestInfo, inbound: Connection): void {
    mark('echo.started', { path: request.path });
    for (;;) {
      const message = receiveBlocking(inbound);
      if (message.tag === 'closed') {
        mark('echo.peer-closed', { code: String(message.val.code) });
        return;
      }
      if (message.tag === 'text' && message.val === 'bye') return;
      sendBlocking(inbound, message);
    }
  },
};
