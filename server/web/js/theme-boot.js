// Applies the remembered theme before the first paint, so a light-theme
// user never sees a dark flash. A classic (blocking) script on purpose;
// everything else is an ES module. No inline script: a strict
// Content-Security-Policy keeps working.
try {
  if (localStorage.getItem("mesh.theme") === "light") document.documentElement.dataset.theme = "light";
} catch (e) { /* storage may be off */ }
