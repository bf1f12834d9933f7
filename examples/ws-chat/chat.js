// The browser side of examples/ws-chat.ts: one WebSocket to `ws` next to
// this page, JSON frames as room.ts documents them. Everything a user typed
// reaches the page through textContent, never as HTML.

/** Messages kept on the page; older ones are removed from the list. */
const MAX_SHOWN = 500;

const status = document.getElementById('status');
const errorLine = document.getElementById('error');
const joinForm = document.getElementById('join-form');
const nickInput = document.getElementById('nick');
const joinButton = document.getElementById('join');
const room = document.getElementById('room');
const messages = document.getElementById('messages');
const memberList = document.getElementById('members');
const sayForm = document.getElementById('say-form');
const textInput = document.getElementById('text');

/** The socket, or null between a close and the next join. */
let socket = null;
/** Our nick once the room welcomed us. */
let myNick = null;
/** Nicks in the room, in joining order. */
let members = [];
/** A join typed while the socket was (re)connecting: sent once it opens. */
let pendingJoin = null;

function socketURL() {
  const url = new URL('ws', location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

function connect() {
  status.textContent = 'Connecting…';
  joinButton.disabled = true;
  const ws = new WebSocket(socketURL());
  socket = ws;
  ws.addEventListener('open', () => {
    status.textContent = 'Connected: choose a nick.';
    joinButton.disabled = false;
    if (pendingJoin !== null) {
      send({ type: 'join', nick: pendingJoin });
      pendingJoin = null;
    }
  });
  ws.addEventListener('message', (event) => {
    if (typeof event.data !== 'string') return;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    received(frame);
  });
  ws.addEventListener('close', (event) => {
    if (socket !== ws) return;
    socket = null;
    const why = event.reason === '' ? `code ${event.code}` : `${event.reason} (${event.code})`;
    status.textContent = `Disconnected: ${why}. Join again to reconnect.`;
    if (myNick !== null) notice(`You left the room: ${why}.`);
    myNick = null;
    sayForm.hidden = true;
    joinForm.hidden = false;
    joinButton.disabled = false;
  });
}

function send(frame) {
  if (socket !== null && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify(frame));
  }
}

function received(frame) {
  switch (frame.type) {
    case 'welcome':
      myNick = frame.nick;
      members = frame.members.slice();
      errorLine.textContent = '';
      status.textContent = `Joined as ${myNick}.`;
      joinForm.hidden = true;
      room.hidden = false;
      sayForm.hidden = false;
      for (const message of frame.history) showMessage(message);
      renderMembers();
      textInput.focus();
      break;
    case 'message':
      showMessage(frame);
      break;
    case 'joined':
      members.push(frame.nick);
      renderMembers();
      notice(`${frame.nick} joined.`, frame.time);
      break;
    case 'left':
      members = members.filter((nick) => nick !== frame.nick);
      renderMembers();
      notice(
        frame.reason === 'dropped'
          ? `${frame.nick} was dropped (not reading).`
          : `${frame.nick} left.`,
        frame.time,
      );
      break;
    case 'error':
      errorLine.textContent = frame.message;
      break;
  }
}

function timeElement(ms) {
  const time = document.createElement('time');
  const date = new Date(ms);
  time.dateTime = date.toISOString();
  time.textContent = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return time;
}

function append(item) {
  const atBottom = messages.scrollTop + messages.clientHeight >= messages.scrollHeight - 4;
  messages.append(item);
  while (messages.childElementCount > MAX_SHOWN) messages.firstElementChild.remove();
  if (atBottom) messages.scrollTop = messages.scrollHeight;
}

function showMessage(message) {
  const item = document.createElement('li');
  item.className = message.nick === myNick ? 'message mine' : 'message';
  item.dataset.id = String(message.id);
  const nick = document.createElement('span');
  nick.className = 'nick';
  nick.textContent = message.nick;
  const text = document.createElement('span');
  text.className = 'text';
  text.textContent = message.text;
  item.append(timeElement(message.time), nick, text);
  append(item);
}

function notice(text, ms = Date.now()) {
  const item = document.createElement('li');
  item.className = 'notice';
  const body = document.createElement('span');
  body.textContent = text;
  item.append(timeElement(ms), body);
  append(item);
}

function renderMembers() {
  memberList.replaceChildren(
    ...members.map((nick) => {
      const item = document.createElement('li');
      item.textContent = nick === myNick ? `${nick} (you)` : nick;
      return item;
    }),
  );
}

joinForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const nick = nickInput.value.trim();
  errorLine.textContent = '';
  if (socket === null) {
    pendingJoin = nick;
    connect();
  } else if (socket.readyState === WebSocket.CONNECTING) {
    pendingJoin = nick;
  } else {
    send({ type: 'join', nick });
  }
});

sayForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = textInput.value;
  if (text.trim() === '') return;
  errorLine.textContent = '';
  send({ type: 'say', text });
  textInput.value = '';
});

connect();
