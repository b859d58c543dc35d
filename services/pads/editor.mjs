// The pad editor in the browser: CodeMirror 6 bound to the pad's Yjs text (shared type `content`), synced with
// the pads server over the same origin's WebSocket. Bundled by `npm run build` into public/editor.js.
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import { EditorView, basicSetup } from 'codemirror';
import { yCollab } from 'y-codemirror.next';

const root = document.getElementById('editor');
const room = root.dataset.room;
const doc = new Y.Doc();
const wsBase = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
// A private pad's room is the page's own path, so the browser's Basic credentials for it go with the WebSocket.
const provider = new WebsocketProvider(wsBase, room, doc);
const text = doc.getText('content');
const status = document.getElementById('status');
// 4409: the pad was replaced (an import of the account). This editor's copy holds the pad as it was, and a Yjs
// provider would merge it back on reconnection: the page is loaded again, with a fresh copy of the pad.
provider.on('connection-close', (event) => {
  if (event && event.code === 4409) { provider.destroy(); status.textContent = 'Ce pad a été remplacé : rechargement…'; location.reload(); }
});
provider.on('status', (e) => { status.textContent = e.status === 'connected' ? 'Connecté : vos modifications sont partagées.' : 'Connexion…'; });

const view = new EditorView({
  parent: root,
  extensions: [basicSetup, EditorView.lineWrapping, yCollab(text, provider.awareness)],
});
// For tests and for the curious: the shared text and what the editor shows.
window.catteryPad = { text, provider, view };
