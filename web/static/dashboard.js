// sonde's dashboard script: an addition, never a requirement. Every view is
// complete without it; it adds, on any chart drawn over time (an <svg> with
// data-start/data-end/data-x0/data-x1, see render.rs):
// - drag-to-zoom: a drag across a chart opens the same view over the
//   dragged span (?from=…&to=…, the custom range's own parameters), on the
//   views with the range picker;
// - a crosshair and a read-out of each line's value at the pointer, from
//   the chart's values in the <script class="chart-data"> beside it;
// - legend toggling: a click on a legend row hides or shows its line.
// No request leaves the page but the navigation a zoom asks for.
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";

  // The pointer's position in the SVG's own units.
  function svgX(svg, event) {
    const box = svg.getBoundingClientRect();
    const viewBox = svg.viewBox.baseVal;
    const width = viewBox && viewBox.width ? viewBox.width : box.width;
    return ((event.clientX - box.left) / box.width) * width;
  }

  function axis(svg) {
    return {
      start: Number(svg.dataset.start),
      end: Number(svg.dataset.end),
      x0: Number(svg.dataset.x0),
      x1: Number(svg.dataset.x1),
    };
  }

  function timeAt(a, x) {
    const share = Math.min(1, Math.max(0, (x - a.x0) / (a.x1 - a.x0)));
    return a.start + share * (a.end - a.start);
  }

  function iso(ms) {
    return new Date(Math.round(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
  }

  function clock(ms) {
    return new Date(ms).toISOString().slice(11, 19);
  }

  function number(value) {
    if (value === null || value === undefined) return "–";
    const magnitude = Math.abs(value);
    if (magnitude >= 1e9) return (value / 1e9).toPrecision(3) + "G";
    if (magnitude >= 1e6) return (value / 1e6).toPrecision(3) + "M";
    if (magnitude >= 1e4) return (value / 1e3).toPrecision(3) + "k";
    if (magnitude === 0) return "0";
    return String(Number(value.toPrecision(3)));
  }

  function element(name, attributes) {
    const node = document.createElementNS(NS, name);
    for (const key in attributes) node.setAttribute(key, attributes[key]);
    return node;
  }

  // The same page over [from, to]; the view's other parameters are kept.
  function zoomTo(from, to) {
    const url = new URL(window.location.href);
    url.searchParams.delete("range");
    url.searchParams.delete("refresh");
    url.searchParams.set("from", iso(from));
    url.searchParams.set("to", iso(to));
    window.location.assign(url.toString());
  }

  function attach(svg) {
    const a = axis(svg);
    if (!(a.end > a.start) || !(a.x1 > a.x0)) return;
    const panel = svg.closest(".panel");
    const dataNode = panel && panel.querySelector("script.chart-data");
    let data = null;
    if (dataNode && dataNode.textContent.trim()) {
      try {
        data = JSON.parse(dataNode.textContent);
      } catch (error) {
        data = null;
      }
    }
    const height = svg.viewBox.baseVal && svg.viewBox.baseVal.height ? svg.viewBox.baseVal.height : 240;
    const cross = element("line", { class: "crosshair", y1: 0, y2: height, x1: -10, x2: -10 });
    const band = element("rect", { class: "zoom-band", y: 0, height: height, x: 0, width: 0 });
    svg.appendChild(band);
    svg.appendChild(cross);
    const readout = document.createElement("div");
    readout.className = "readout";
    readout.hidden = true;
    svg.parentNode.appendChild(readout);
    let dragFrom = null;

    function show(event) {
      const x = svgX(svg, event);
      if (x < a.x0 || x > a.x1) {
        cross.setAttribute("x1", -10);
        cross.setAttribute("x2", -10);
        readout.hidden = true;
        return;
      }
      cross.setAttribute("x1", x);
      cross.setAttribute("x2", x);
      if (dragFrom !== null) {
        band.setAttribute("x", Math.min(dragFrom, x));
        band.setAttribute("width", Math.abs(x - dragFrom));
      }
      const t = timeAt(a, x);
      let lines = [];
      if (data && data.lines) {
        const i = Math.round((t - data.start) / data.step);
        lines = data.lines
          .filter((line) => !line.hidden)
          .map((line) => [line.name, line.color, line.values[i]])
          .filter((entry) => entry[2] !== null && entry[2] !== undefined);
      }
      readout.textContent = "";
      const time = document.createElement("b");
      time.textContent = clock(t) + " UTC";
      readout.appendChild(time);
      for (const [name, color, value] of lines.slice(0, 12)) {
        const row = document.createElement("div");
        const swatch = document.createElement("i");
        swatch.className = "swatch";
        swatch.style.color = color;
        row.appendChild(swatch);
        row.appendChild(document.createTextNode(name + " " + number(value)));
        readout.appendChild(row);
      }
      readout.hidden = false;
      const box = svg.getBoundingClientRect();
      const left = event.clientX - box.left;
      readout.style.left = (left > box.width / 2 ? left - readout.offsetWidth - 12 : left + 12) + "px";
    }

    svg.addEventListener("pointermove", show);
    svg.addEventListener("pointerleave", function () {
      readout.hidden = true;
      cross.setAttribute("x1", -10);
      cross.setAttribute("x2", -10);
    });
    svg.addEventListener("pointerdown", function (event) {
      if (event.button !== 0) return;
      dragFrom = svgX(svg, event);
      svg.setPointerCapture(event.pointerId);
      event.preventDefault();
    });
    svg.addEventListener("pointerup", function (event) {
      if (dragFrom === null) return;
      const x = svgX(svg, event);
      const from = timeAt(a, Math.min(dragFrom, x));
      const to = timeAt(a, Math.max(dragFrom, x));
      dragFrom = null;
      band.setAttribute("width", 0);
      // A click is not a zoom; the server refuses spans under a minute; a
      // view without the range picker (Graph) has no from and to to take.
      if (to - from >= 60000 && document.querySelector("nav.controls")) zoomTo(from, to);
    });

    // Legend toggling: plotters draws each line in its colour, so the
    // line's elements are those stroked (or filled) with the row's colour.
    if (panel && data) {
      panel.querySelectorAll(".legend tbody tr[data-color]").forEach(function (row) {
        row.classList.add("toggle");
        row.title = "Hide or show this line";
        row.addEventListener("click", function () {
          const color = row.dataset.color.toUpperCase();
          const hidden = row.classList.toggle("off");
          svg.querySelectorAll("polyline, path, circle, polygon").forEach(function (shape) {
            const stroke = (shape.getAttribute("stroke") || "").toUpperCase();
            const fill = (shape.getAttribute("fill") || "").toUpperCase();
            if (stroke === color || fill === color) shape.classList.toggle("hidden", hidden);
          });
          for (const line of data.lines) if (line.color.toUpperCase() === color) line.hidden = hidden;
        });
      });
    }
  }

  document.querySelectorAll("svg[data-start][data-x0]").forEach(attach);
})();
