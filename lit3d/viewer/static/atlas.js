// Sorting and filtering of the atlas cards; runs from disk (file://), loads nothing.
(function () {
  const container = document.getElementById("cards");
  const cards = Array.from(container.querySelectorAll(".card"));
  const sort = document.getElementById("sort");
  const filter = document.getElementById("filter");
  const count = document.getElementById("count");

  function value(card) {
    const v = parseFloat(card.dataset.response);
    return Number.isNaN(v) ? null : v;
  }

  function order() {
    const how = sort.value;
    const sorted = cards.slice().sort(function (a, b) {
      if (how === "name") {
        return a.dataset.text.localeCompare(b.dataset.text, undefined, {numeric: true});
      }
      const va = value(a), vb = value(b);
      if (va === null && vb === null) return a.dataset.index - b.dataset.index;
      if (va === null) return 1;  // cards without a response go last
      if (vb === null) return -1;
      return how === "response-asc" ? va - vb : vb - va;
    });
    sorted.forEach(function (card) { container.appendChild(card); });
  }

  function show() {
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    cards.forEach(function (card) {
      const match = words.every(function (w) { return card.dataset.text.includes(w); });
      card.hidden = !match;
      if (match) shown += 1;
    });
    count.textContent = shown + " of " + cards.length + " cards";
  }

  sort.addEventListener("change", order);
  filter.addEventListener("input", show);
  order();
  show();
})();
