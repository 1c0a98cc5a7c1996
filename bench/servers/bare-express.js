// The baseline every Rampart route is compared with: Express 5, one JSON route, nothing else.
'use strict';
const express = require('express');
const app = express();
app.get('/hello', (_req, res) => {
  res.json({ status: 'pass' });
});
app.listen(Number(process.env.PORT), '127.0.0.1', () => process.send?.('ready'));
