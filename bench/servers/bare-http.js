// The ceiling: node:http answering a small JSON body.
'use strict';
const http = require('node:http');
const body = JSON.stringify({ status: 'pass' });
http
  .createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  })
  .listen(Number(process.env.PORT), '127.0.0.1', () => process.send?.('ready'));
