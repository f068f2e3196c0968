// A Twilio-to-Deepgram relay on Node.js and the `ws` package: the setup voice-AI teams
// run on a VM today, and the bench's second baseline. The same work as the
// voice-pipeline component: on `start`, open Deepgram over wss with
// `Authorization: Token …`; forward each `media` payload base64-decoded as a binary
// frame; `KeepAlive` after 4 s without audio; `CloseStream` when the call stops.
//
//   PORT=8082 DEEPGRAM_URL=wss://localhost:9000/v1/listen DEEPGRAM_API_KEY=… \
//   NODE_EXTRA_CA_CERTS=ca.pem node relay.js
'use strict';

const { WebSocketServer, WebSocket } = require('ws');

const QUERY = 'model=nova-3&encoding=mulaw&sample_rate=8000&channels=1&interim_results=true' +
  '&endpointing=300&utterance_end_ms=1000&vad_events=true&smart_format=true&punctuate=true';
const KEEPALIVE_AFTER_MS = 4000;
const FINAL_WAIT_MS = 5000;

const port = Number(process.env.PORT);
const url = `${process.env.DEEPGRAM_URL}?${QUERY}`;
const authorization = `Token ${process.env.DEEPGRAM_API_KEY}`;

const server = new WebSocketServer({ host: '127.0.0.1', port });
server.on('connection', (caller) => {
  let deepgram = null;
  let pending = [];
  let sentAudio = false;
  const send = (data) => {
    if (deepgram.readyState === WebSocket.OPEN) deepgram.send(data);
    else pending.push(data);
  };
  const keepalive = setInterval(() => {
    if (deepgram && deepgram.readyState === WebSocket.OPEN && !sentAudio) {
      deepgram.send(JSON.stringify({ type: 'KeepAlive' }));
    }
    sentAudio = false;
  }, KEEPALIVE_AFTER_MS);
  const finish = () => {
    clearInterval(keepalive);
    if (!deepgram) {
      caller.close(1000);
      return;
    }
    send(JSON.stringify({ type: 'CloseStream' }));
    const timer = setTimeout(() => deepgram.terminate(), FINAL_WAIT_MS);
    deepgram.on('close', () => {
      clearTimeout(timer);
      caller.close(1000);
    });
  };
  caller.on('message', (data, isBinary) => {
    if (isBinary) return;
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message.event === 'start' && !deepgram) {
      deepgram = new WebSocket(url, { headers: { Authorization: authorization }, family: 4 });
      deepgram.on('open', () => {
        for (const data of pending) deepgram.send(data);
        pending = [];
      });
      deepgram.on('message', () => {});
      deepgram.on('error', (error) => console.error(`deepgram: ${error.message}`));
    } else if (message.event === 'media' && deepgram) {
      send(Buffer.from(message.media.payload, 'base64'));
      sentAudio = true;
    } else if (message.event === 'stop') {
      finish();
    }
  });
  caller.on('close', () => {
    clearInterval(keepalive);
    if (deepgram && deepgram.readyState === WebSocket.CONNECTING) deepgram.terminate();
  });
  caller.on('error', (error) => console.error(`caller: ${error.message}`));
});
server.on('listening', () => console.log(`node relay listening on 127.0.0.1:${port}`));
