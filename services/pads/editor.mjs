// The pad editor in the browser: CodeMirror 6 bound to the pad's Yjs text (shared type `content`), synced with
// the pads server over the same origin's WebSocket. Bundled by `npm run build` into public/editor.js.
// Built from CodeMirror's view alone, not its `basicSetup`: a pad is plain text, so no language, highlighting,
// autocompletion, search panel, lint, folding or line numbers (basicSetup made the bundle 491 KB, 157 KB gzipped;
// docs/architecture.md, "Sobriety"). @codemirror/commands' default keymap is left out too: with the language package
// it pulls in, it weighs 63 KB (18 KB brotli) and would put the page past its 100 KB budget, while the browser's own
// editing of the content (typing, Enter, deletion, arrows, Home/End, selection, copy and paste) is what a pad needs.
// Tab is left to the browser: it moves the focus out of the editor, so a keyboard is never trapped (WCAG 2.1.2).
// Undo is Yjs's own (yCollab's Y.UndoManager, with its keymap): it takes back this person's edits only, where
// CodeMirror's history() would also undo what the others typed meanwhile.
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import { EditorView, keymap } from '@codemirror/view';
import { yCollab, yUndoManagerKeymap } from 'y-codemirror.next';

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
  extensions: [
    keymap.of(yUndoManagerKeymap),
    EditorView.lineWrapping,
    // The editable element itself carries the name a screen reader announces (the container is a plain div).
    EditorView.contentAttributes.of({ 'aria-label': 'Texte du pad' }),
    yCollab(text, provider.awareness),
  ],
});
// For tests and for the curious: the shared text and what the editor shows.
window.catteryPad = { text, provider, view };
