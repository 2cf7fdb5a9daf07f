/* Beffroi overview: every site the user sees, with its open alerts by severity, its worst level of
 * service (GET sites/{id}/zone-states) and its silent sensors (open `fault:stale` alerts); each row
 * links to the site's map. Signed in by the map's session cookie; refreshed every few seconds. */
(() => {
  "use strict";
  const SEVERITIES = ["critical", "high", "medium", "low", "info"];
  const LOS_ORDER = "ABCDEF";
  const REFRESH_MS = 5000;
  const OPEN_LIMIT = 1000;
  const $ = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  async function getJSON(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) {
      const error = new Error(`${response.status}`);
      error.status = response.status;
      throw error;
    }
    return response.json();
  }

  function banner(node) {
    const b = $("overview-banner");
    b.replaceChildren(...(node ? [node] : []));
    b.hidden = !node;
  }

  async function siteRow(site) {
    const id = encodeURIComponent(site.id);
    const [alerts, zones] = await Promise.all([
      getJSON(`sites/${id}/alerts?open=true&limit=${OPEN_LIMIT}`),
      getJSON(`sites/${id}/zone-states`),
    ]);
    const counts = Object.fromEntries(SEVERITIES.map((s) => [s, 0]));
    const silent = new Set();
    for (const a of alerts.alerts) {
      counts[a.severity] = (counts[a.severity] || 0) + 1;
      if (a.rule === "fault:stale") silent.add(a.device_id || a.source_ids[0]);
    }
    let worst = null;
    for (const s of zones.states) {
      if (worst === null || LOS_ORDER.indexOf(s.los) > LOS_ORDER.indexOf(worst.los)) worst = s;
    }
    const row = el("tr");
    row.dataset.site = site.id;
    const name = el("td");
    const link = el("a", null, site.name);
    link.href = `map#site=${id}`;
    name.appendChild(link);
    row.appendChild(name);
    const total = el("td", null, site.open_alerts);
    total.dataset.zero = String(site.open_alerts === 0);
    row.appendChild(total);
    for (const s of SEVERITIES) {
      const cell = el("td", null, counts[s]);
      cell.dataset.severity = s;
      cell.dataset.zero = String(counts[s] === 0);
      row.appendChild(cell);
    }
    const los = el("td");
    los.dataset.los = worst ? worst.los : "none";
    if (worst) {
      los.appendChild(el("span", `los-badge los-${worst.los}`, worst.los));
      los.appendChild(document.createTextNode(` ${worst.zone_id} · ${worst.density.toFixed(2)} p/m²`));
    } else {
      los.textContent = "no camera yet";
      los.dataset.zero = "true";
    }
    row.appendChild(los);
    const quiet = el("td", null, silent.size);
    quiet.dataset.zero = String(silent.size === 0);
    row.appendChild(quiet);
    return row;
  }

  async function refresh() {
    let sites;
    try {
      sites = await getJSON("sites");
    } catch (err) {
      if (err.status === 401) {
        const p = el("span", null, "Not signed in: ");
        const a = el("a", null, "sign in on the map");
        a.href = "map";
        p.appendChild(a);
        p.appendChild(document.createTextNode(", then come back here."));
        banner(p);
      } else {
        banner(el("span", null, `Cannot read the sites (${err.message}); trying again.`));
      }
      return;
    }
    try {
      const rows = await Promise.all(sites.sites.map(siteRow));
      $("overview-rows").replaceChildren(...rows);
      banner(null);
    } catch (err) {
      banner(el("span", null, `Cannot read a site (${err.message}); trying again.`));
    }
    const venue = sites.venue_name ? `${sites.venue_name} · ` : "";
    $("overview-facts").textContent = `${venue}${sites.count} sites · updated ${new Date().toLocaleTimeString()}`;
  }

  refresh();
  window.setInterval(refresh, REFRESH_MS);
})();
