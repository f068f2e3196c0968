// Test guest in TypeScript: sends the HTTP requests its caller asks for with the SDK's
// `request` and answers each with one text message.
//
//   get <url> [leg=<leg>]     -> `status=<n> body=<text>` or `error=<why>`
//   post <url> <body>         -> the same, the body sent as text
import { HttpError, receiveBlocking, request, sendBlocking, text, type Connection, type RequestInfo } from '@switchboard/guest';

export const handler = {
  handle(_request: RequestInfo, inbound: Connection): void {
    for (;;) {
      const message = receiveBlocking(inbound);
      if (message.tag === 'closed') return;
      if (message.tag !== 'text') continue;
      sendBlocking(inbound, text(answer(message.val)));
    }
  },
};

function answer(command: string): string {
  const [verb, url, ...rest] = command.split(' ');
  const leg = rest.find((word) => word.startsWith('leg='))?.slice(4);
  try {
    const response =
      verb === 'post'
        ? request(url, { body: rest.join(' '), headers: { 'content-type': 'text/plain' } })
        : request(url, { headers: { authorization: 'Bearer guessed' }, leg });
    return `status=${response.status} body=${response.text()}`;
  } catch (error) {
    return `error=${error instanceof HttpError ? error.code.tag : String(error)}`;
  }
}
