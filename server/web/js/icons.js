// Line icons as inline SVG, built with DOM calls (no emoji: a machine
// without an emoji font would show boxes). icon("phone") returns an <svg>.

const paths = {
  chat: "M4 5h16v11H9l-5 4z",
  devices: "M3 5h18v11H3zM8 20h8M12 16v4",
  transfers: "M7 4v14M3 14l4 4 4-4M17 20V6M13 10l4-4 4 4",
  terminal: "M3 4h18v16H3zM7 9l3 3-3 3M12 15h5",
  phone: "M5 4h4l2 5-2.5 1.5a11 11 0 0 0 5 5L15 13l5 2v4a2 2 0 0 1-2 2A16 16 0 0 1 3 6a2 2 0 0 1 2-2",
  mail: "M3 6h18v12H3zM3 7l9 6 9-6",
  mic: "M12 3a3 3 0 0 1 3 3v6a3 3 0 0 1-6 0V6a3 3 0 0 1 3-3M5 11a7 7 0 0 0 14 0M12 18v3",
  camera: "M3 7h12v10H3zM15 10l6-3v10l-6-3",
  users: "M9 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8M2 21a7 7 0 0 1 14 0M16 3a4 4 0 0 1 0 8M18 14a6 6 0 0 1 4 7",
  menu: "M4 6h16M4 12h16M4 18h16",
  sun: "M12 8a4 4 0 1 0 0 8 4 4 0 0 0 0-8M12 2v2M12 20v2M4.9 4.9l1.4 1.4M17.7 17.7l1.4 1.4M2 12h2M20 12h2M4.9 19.1l1.4-1.4M17.7 6.3l1.4-1.4",
  moon: "M20 14.5A8 8 0 0 1 9.5 4 8 8 0 1 0 20 14.5",
  hangup: "M3 14c5-5 13-5 18 0l-2.5 3-3.5-2v-3a10 10 0 0 0-6 0v3l-3.5 2z",
  lock: "M6 11h12v10H6zM8 11V7a4 4 0 0 1 8 0v4",
  settings: "M4 6h9M17 6h3M15 4v4M4 12h3M11 12h9M9 10v4M4 18h11M19 18h1M17 16v4",
  logout: "M14 4h5v16h-5M10 8l-4 4 4 4M6 12h10",
  bell: "M6 16v-5a6 6 0 0 1 12 0v5l2 2H4zM10 21a2 2 0 0 0 4 0",
};

const ns = "http://www.w3.org/2000/svg";

/** icon returns an aria-hidden <svg> for name. */
export function icon(name, size = 18) {
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", String(size));
  svg.setAttribute("height", String(size));
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", "icon");
  const p = document.createElementNS(ns, "path");
  p.setAttribute("d", paths[name] || "");
  svg.append(p);
  return svg;
}

/** fillIcons replaces every <i data-icon="name"> in root with its svg. */
export function fillIcons(root = document) {
  for (const i of root.querySelectorAll("i[data-icon]")) i.replaceWith(icon(i.dataset.icon, Number(i.dataset.size) || 18));
}
