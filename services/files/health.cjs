// Healthy when the WebDAV server answers (401 without credentials is an answer).
const http = require('node:http');
const req = http.get({ host: '127.0.0.1', port: Number(process.env.PORT || 8080), path: '/', timeout: 3000 }, (res) => {
  process.exit(res.statusCode && res.statusCode < 500 ? 0 : 1);
});
req.on('error', () => process.exit(1));
req.on('timeout', () => { req.destroy(); process.exit(1); });
