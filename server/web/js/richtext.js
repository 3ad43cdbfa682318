// Chat text to DOM: http(s) links become <a>, @mentions become <span>,
// everything else stays plain text. Built only with DOM calls: a message
// can never inject markup, whatever it contains.

const token = /(https?:\/\/[^\s<>"'`]+)|(^|[^\w@.])@([a-z0-9_.-]{1,32})/gi;
const trailing = /[.,;:!?)\]}'"]+$/;

/**
 * renderText returns a DocumentFragment for text, with links and mentions;
 * mentions of me (case-insensitive) get class "mention". It also reports
 * whether me was mentioned.
 */
export function renderText(text, me) {
  const frag = document.createDocumentFragment();
  const lowerMe = (me || "").toLowerCase();
  let mentioned = false;
  let last = 0;
  token.lastIndex = 0;
  for (let m; (m = token.exec(text)); ) {
    if (m[1]) {
      // A link; leave closing punctuation outside it ("see https://x.org.").
      let url = m[1];
      const tail = url.match(trailing);
      if (tail) url = url.slice(0, url.length - tail[0].length);
      if (!isSafeURL(url)) continue;
      frag.append(text.slice(last, m.index));
      const a = document.createElement("a");
      a.href = url;
      a.textContent = url;
      a.target = "_blank";
      a.rel = "noopener noreferrer nofollow";
      frag.append(a);
      last = m.index + url.length;
      token.lastIndex = last;
    } else {
      const start = m.index + m[2].length; // the "@"
      let name = m[3].replace(/[.]+$/, "");
      frag.append(text.slice(last, start));
      const span = document.createElement("span");
      const isMe = name.toLowerCase() === lowerMe;
      span.className = isMe ? "mention" : "at";
      span.textContent = `@${name}`;
      frag.append(span);
      if (isMe) mentioned = true;
      last = start + 1 + name.length;
      token.lastIndex = last;
    }
  }
  frag.append(text.slice(last));
  return { frag, mentioned };
}

function isSafeURL(s) {
  try {
    const u = new URL(s);
    return u.protocol === "http:" || u.protocol === "https:";
  } catch {
    return false;
  }
}
