/* Chinese-first pages with an English toggle, shared by every HTML page of the app.
 *
 * Bilingual text is written once as two spans (GgLang.bi, or web/i18n.py's bi on the server);
 * lang.css hides the half not chosen, so switching needs no re-render. Text that cannot hold
 * markup (<option>, placeholder, title) carries data-zh / data-en attributes, swapped here.
 * The choice is kept in localStorage for the next page. The toggle button goes into the page's
 * [data-gg-lang-slot] if it has one, else it floats top-right.
 */
(function () {
  "use strict";
  var KEY = "gg-lang", root = document.documentElement;

  function esc(v) {
    return String(v === null || v === undefined ? "" : v).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function stored() {
    try { return window.localStorage.getItem(KEY); } catch (e) { return null; }  // storage off: Chinese
  }

  var G = (window.GgLang = {
    get: function () { return root.getAttribute("data-lang") === "en" ? "en" : "zh"; },
    /** the string for the current language (for places that are re-rendered anyway) */
    t: function (zh, en) { return G.get() === "en" ? en : zh; },
    /** both languages as markup; CSS shows one */
    bi: function (zh, en) {
      return '<span class="gg-zh" lang="zh-CN">' + esc(zh) + '</span><span class="gg-en" lang="en">' +
        esc(en === undefined ? zh : en) + "</span>";
    },
    /** "结案率 closure rate (%)" -> ["结案率", "closure rate (%)"]: the server's "中文 English" titles */
    split: function (s) {
      var m = /^([^\x00-\x7f][^\x00-\x1f]*?)\s+([\x20-\x7e].*)$/.exec(String(s || ""));
      return m ? [m[1], m[2]] : [String(s || ""), String(s || "")];
    },
    biSplit: function (s) { var p = G.split(s); return G.bi(p[0], p[1]); },
    set: function (lang) {
      lang = lang === "en" ? "en" : "zh";
      try { window.localStorage.setItem(KEY, lang); } catch (e) { /* not kept */ }
      apply(lang);
    },
    /** swap data-zh / data-en attributes under node (call after adding such elements) */
    refresh: function (node) { swap(node || document, G.get()); }
  });

  function swap(node, lang) {
    var attrs = [["data-zh", "data-en", null], ["data-zh-placeholder", "data-en-placeholder", "placeholder"],
                 ["data-zh-title", "data-en-title", "title"]];
    attrs.forEach(function (a) {
      Array.prototype.forEach.call(node.querySelectorAll("[" + a[0] + "]"), function (el) {
        var v = el.getAttribute(lang === "en" ? a[1] : a[0]);
        if (v === null) { return; }
        if (a[2]) { el.setAttribute(a[2], v); } else { el.textContent = v; }
      });
    });
  }

  function apply(lang) {
    root.setAttribute("data-lang", lang);
    root.setAttribute("lang", lang === "en" ? "en" : "zh-CN");
    swap(document, lang);
    var btn = document.getElementById("gg-lang");
    if (btn) {
      // the button names the other language, in that language
      btn.textContent = lang === "en" ? "中文" : "English";
      btn.setAttribute("aria-label", lang === "en" ? "切换到中文" : "Switch to English");
    }
    document.dispatchEvent(new CustomEvent("gg-lang", { detail: lang }));
  }

  // before the body is drawn, so the chosen language shows without a flash of the other
  root.setAttribute("data-lang", stored() === "en" ? "en" : "zh");

  function mount() {
    if (!document.getElementById("gg-lang")) {
      var btn = document.createElement("button");
      btn.type = "button";
      btn.id = "gg-lang";
      btn.className = "gg-lang-toggle";
      var slot = document.querySelector("[data-gg-lang-slot]");
      if (slot) { slot.appendChild(btn); } else { btn.className += " gg-lang-fixed"; document.body.appendChild(btn); }
      btn.addEventListener("click", function () { G.set(G.get() === "en" ? "zh" : "en"); });
    }
    apply(G.get());
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", mount); } else { mount(); }
})();
