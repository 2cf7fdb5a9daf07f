/* Beffroi live map: zones coloured by their open alerts, devices, the alert list, live over SSE.
 *
 * Data: GET sites (selector), GET sites/{id} (GeoJSON zones, exits, devices), GET sites/{id}/alerts
 * (the list, and with open=true the open alerts that colour the zones), and the EventSource
 * sites/{id}/alerts/stream. The stream is opened first and the snapshot read on each (re)connection
 * and every ALERTS_REFRESH_MS, merged by alert_id, so that no alert raised in between is missed and
 * none is counted twice. The stream carries new alerts (`alert`) and what operators do to them
 * (`case`: status, owner), shown without re-reading.
 * Operators act on an alert from its list item (POST sites/{id}/alerts/{alert_id}/actions, with the
 * status they saw as expected_status), under the name they signed in with: POST auth/session puts an
 * HttpOnly cookie that signs every request and the EventSource in (the script never sees the token);
 * the session is renewed before it expires, and any 401 brings the sign-in dialog back.
 * The timeline under the map makes it a time machine: pick a past window (GET sites/{id}/history:
 * recorded zone states, and alerts with their operators' status changes), play it at 1x-60x, pause,
 * step from change to change or drag to a moment; zones take the level of service and the alerts the
 * status they had then, and the list holds the alerts raised so far. A replay's result (GET
 * replays/{id}, or one started here by a supervisor) is laid over it: each alert marked same, added,
 * removed, earlier or later, the zones outlined by the replayed side. "Live" resumes the stream.
 * Plain JS, no build step; text from the API is only ever set with textContent.
 */
(function () {
  "use strict";

  const SEVERITY_RANK = { info: 0, low: 1, medium: 2, high: 3, critical: 4 };
  const COLOURS = {
    calm: "#3fa796",
    critical: "#ff4d4f",
    high: "#ff7a3d",
    medium: "#ffa62b",
    low: "#f2cc4d",
    info: "#58a6ff",
    device: "#c9d1d9",
    highlight: "#ffffff",
  };
  // Fruin's levels of service of a zone's density (GET sites/{id}/zone-states), A free to F jammed
  const LOS_COLOURS = { A: "#2e7d32", B: "#7cb342", C: "#fdd835", D: "#fb8c00", E: "#e53935", F: "#8e24aa" };
  const ZONES_REFRESH_MS = 3000;
  const OPEN_STATUSES = ["new", "acknowledged", "in_progress"];
  // what an operator can do to an alert in each status (the API's lifecycle, beffroi/store.py)
  const ACTIONS = {
    new: ["acknowledge", "resolve"],
    acknowledged: ["start", "resolve"],
    in_progress: ["resolve"],
    resolved: ["close"],
    closed: [],
  };
  const ACTION_LABELS = { acknowledge: "Acknowledge", start: "Start", resolve: "Resolve", close: "Close" };
  const LIST_LIMIT = 200; // newest alerts in the list
  const OPEN_LIMIT = 1000; // open alerts read to colour the zones
  const SITES_REFRESH_MS = 30000;
  const ALERTS_REFRESH_MS = 15000;
  const STREAM_RETRY_MS = 5000;

  const $ = (id) => document.getElementById(id);
  const ui = {
    select: $("site-select"),
    facts: $("site-facts"),
    live: $("live-status"),
    liveText: document.querySelector("#live-status .live-text"),
    list: $("alert-list"),
    empty: $("alerts-empty"),
    count: $("alerts-count"),
    banner: $("banner"),
    announcer: $("announcer"),
    operatorButton: $("operator-button"),
    operatorName: $("operator-name"),
    operatorRole: $("operator-role"),
    dialog: $("signin-dialog"),
    signinForm: $("signin-form"),
    signinUser: $("signin-user"),
    signinPassword: $("signin-password"),
    signinError: $("signin-error"),
    procedure: $("procedure"),
    procedureTitle: $("procedure-title"),
    procedureSteps: $("procedure-steps"),
    timeline: $("timeline"),
    tlMode: $("tl-mode"),
    tlWindow: $("tl-window"),
    tlFrom: $("tl-from"),
    tlTo: $("tl-to"),
    tlPlayer: $("tl-player"),
    tlBack: $("tl-back"),
    tlPlay: $("tl-play"),
    tlStep: $("tl-step"),
    tlSpeed: $("tl-speed"),
    tlScrub: $("tl-scrub"),
    tlClock: $("tl-clock"),
    tlReplay: $("tl-replay"),
    tlRunReplay: $("tl-run-replay"),
    tlReplayId: $("tl-replay-id"),
    tlOpenReplay: $("tl-open-replay"),
    tlReplayStatus: $("tl-replay-status"),
  };

  const state = {
    generation: 0,
    site: null,
    zones: new Map(), // id -> {feature, layer, label, labelCount, bounds}
    devices: new Map(), // id -> {device, layer}
    alerts: new Map(), // listed alerts, id -> alert
    open: new Map(), // open alerts (any age), id -> alert
    items: new Map(), // id -> <li>
    selected: null,
    stream: null,
    retry: null,
    refresh: null, // periodic re-read of the alerts
    owners: new Map(), // alert id -> owner, from the actions' answers
    escalations: new Map(), // alert id -> times escalated (not acknowledged in time)
    busy: new Set(), // alert ids with an action in flight
    renderPending: false,
    fresh: new Set(), // ids that came live since the last render
    spread: [], // devices drawn around a shared point: {layer, base, angle, ringPx}
    session: null, // {name, role, sites, expires_at} of the signed-in user
    renew: null, // timer renewing the session cookie
    sitesTimer: null,
    mode: "live", // or "past": the timeline shows a recorded window
    history: null, // the past window shown: see showHistory
    changes: new Map(), // alert id -> what the shown replay did to it
  };

  // --- the map: no tiles (no internet in a control room), a reference grid and a scale ----------
  const map = L.map("map", {
    zoomSnap: 0.25,
    zoomDelta: 0.5,
    minZoom: 3,
    maxZoom: 21,
    attributionControl: false,
    fadeAnimation: false, // grid tiles of a former zoom are dropped at once
    keyboard: true,
  });
  L.control.scale({ imperial: false, position: "bottomright" }).addTo(map);
  const Grid = L.GridLayer.extend({
    createTile: function () {
      const size = this.getTileSize();
      const tile = document.createElement("canvas");
      tile.width = size.x;
      tile.height = size.y;
      const ctx = tile.getContext("2d");
      ctx.strokeStyle = "rgba(154, 167, 180, 0.10)";
      ctx.lineWidth = 1;
      ctx.strokeRect(0.5, 0.5, size.x, size.y);
      return tile;
    },
  });
  const grid = new Grid({ tileSize: 96, maxZoom: 21, minZoom: 3 }); // added once a site is in view
  // devices and exits above the zones, whatever a highlighted zone brings to its front
  map.createPane("devices").style.zIndex = 450;
  map.createPane("exits").style.zIndex = 610;
  const deviceRenderer = L.svg({ pane: "devices" });
  const zoneLayer = L.layerGroup().addTo(map);
  const labelLayer = L.layerGroup().addTo(map);
  const exitLayer = L.layerGroup().addTo(map);
  const deviceLayer = L.layerGroup().addTo(map);
  map.setView([48.8566, 2.3522], 13); // until a site is shown

  // --- helpers ----------------------------------------------------------------------------------
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  async function getJSON(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (response.status === 401) signedOut();
    if (!response.ok) {
      const reason = body && body.reason ? body.reason : response.statusText;
      throw new Error(`${path}: ${response.status} ${reason}`);
    }
    return body;
  }

  function showBanner(text) {
    ui.banner.textContent = text;
    ui.banner.hidden = !text;
  }

  function setLive(mode, text) {
    ui.live.dataset.state = mode;
    ui.liveText.textContent = text;
  }

  function isOpen(alert) {
    return OPEN_STATUSES.includes(alert.status);
  }

  function worse(a, b) {
    if (!a) return b;
    if (!b) return a;
    return SEVERITY_RANK[a] >= SEVERITY_RANK[b] ? a : b;
  }

  function newestFirst(a, b) {
    const ta = Date.parse(a.raised_at);
    const tb = Date.parse(b.raised_at);
    if (ta !== tb) return tb - ta;
    return a.alert_id < b.alert_id ? 1 : a.alert_id > b.alert_id ? -1 : 0;
  }

  const timeOnly = new Intl.DateTimeFormat(undefined, {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hour12: false,
  });
  const dateAndTime = new Intl.DateTimeFormat(undefined, {
    day: "2-digit",
    month: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hour12: false,
  });

  function formatTime(iso) {
    const when = new Date(iso);
    const sameDay = when.toDateString() === new Date().toDateString();
    return (sameDay ? timeOnly : dateAndTime).format(when);
  }

  function zoneOf(alert) {
    if (alert.zone_id && state.zones.has(alert.zone_id)) return alert.zone_id;
    const device = alert.device_id && state.devices.get(alert.device_id);
    return device && device.device.zone ? device.device.zone : null;
  }

  function zoneName(zoneId) {
    const zone = state.zones.get(zoneId);
    return zone ? zone.feature.properties.name : zoneId;
  }

  function plural(n, word) {
    return `${n} ${word}${n === 1 ? "" : "s"}`;
  }

  // --- sites --------------------------------------------------------------------------------------
  function siteFromHash() {
    const match = /(?:^|[#&])site=([^&]+)/.exec(window.location.hash);
    return match ? decodeURIComponent(match[1]) : null;
  }

  function optionText(site) {
    const open = state.site && site.id === state.site.id ? state.open.size : site.open_alerts;
    return `${site.name}${open ? ` — ${open} open` : ""}`;
  }

  function fillSelector(list) {
    const options = [...ui.select.options];
    const same = options.length === list.sites.length && options.every((o, i) => o.value === list.sites[i].id);
    if (same) {
      // texts only: rebuilding would close the list under an operator's pointer
      list.sites.forEach((site, i) => (options[i].textContent = optionText(site)));
    } else {
      const current = ui.select.value;
      ui.select.replaceChildren();
      for (const site of list.sites) {
        const option = el("option", null, optionText(site));
        option.value = site.id;
        ui.select.appendChild(option);
      }
      if (current) ui.select.value = current;
    }
    ui.select.disabled = list.sites.length === 0;
  }

  async function loadSites() {
    let list;
    try {
      list = await getJSON("sites");
    } catch (err) {
      showBanner(`Cannot read the sites (${err.message}); trying again.`);
      setLive("offline", "offline");
      window.setTimeout(loadSites, STREAM_RETRY_MS);
      return;
    }
    if (list.sites.length === 0) {
      fillSelector(list);
      showBanner("This API has no venue (settings.venue is not set): there is nothing to map.");
      setLive("offline", "no venue");
      return;
    }
    fillSelector(list);
    const replayId = replayFromHash();
    const wanted = siteFromHash();
    const first = list.sites.some((s) => s.id === wanted) ? wanted : list.sites[0].id;
    ui.select.value = first;
    if (state.sitesTimer) window.clearInterval(state.sitesTimer);
    state.sitesTimer = window.setInterval(refreshSites, SITES_REFRESH_MS);
    await showSite(first);
    if (replayId && state.site) openReplay(replayId);
  }

  async function refreshSites() {
    try {
      fillSelector(await getJSON("sites"));
    } catch (_) {
      /* the stream status already tells the operator */
    }
  }

  function clearSite() {
    closeStream();
    pause();
    zoneLayer.clearLayers();
    labelLayer.clearLayers();
    exitLayer.clearLayers();
    deviceLayer.clearLayers();
    state.zones.clear();
    state.devices.clear();
    if (state.refresh) window.clearInterval(state.refresh);
    state.refresh = null;
    if (state.zoneRefresh) window.clearInterval(state.zoneRefresh);
    state.zoneRefresh = null;
    state.alerts.clear();
    state.open.clear();
    state.owners.clear();
    state.escalations.clear();
    state.busy.clear();
    state.items.clear();
    state.selected = null;
    state.spread = [];
    hideProcedure();
    ui.list.replaceChildren();
    ui.count.textContent = "";
    ui.empty.hidden = true;
  }

  async function showSite(siteId) {
    const generation = ++state.generation;
    clearSite();
    leavePast();
    showBanner("");
    setLive("connecting", "connecting…");
    let site;
    try {
      site = await getJSON(`sites/${encodeURIComponent(siteId)}`);
    } catch (err) {
      if (generation !== state.generation) return;
      showBanner(`Cannot read site ${siteId} (${err.message}); trying again.`);
      setLive("offline", "offline");
      state.retry = window.setTimeout(() => {
        if (generation === state.generation) showSite(siteId);
      }, STREAM_RETRY_MS);
      return;
    }
    if (generation !== state.generation) return;
    state.site = site;
    if (window.location.hash !== `#site=${encodeURIComponent(siteId)}`) {
      window.history.replaceState(null, "", `#site=${encodeURIComponent(siteId)}`);
    }
    document.title = `Beffroi · ${site.name}`;
    map.getContainer().setAttribute("aria-label", `Map of ${site.name}: zones coloured by their open alerts`);
    drawZones(site);
    drawExits(site);
    drawDevices(site);
    fitSite(site);
    renderFacts();
    openStream(siteId, generation);
    state.refresh = window.setInterval(() => {
      if (generation === state.generation) syncAlerts(siteId, generation);
    }, ALERTS_REFRESH_MS);
    syncZoneStates(siteId, generation);
    state.zoneRefresh = window.setInterval(() => {
      if (generation === state.generation) syncZoneStates(siteId, generation);
    }, ZONES_REFRESH_MS);
  }

  // --- drawing ------------------------------------------------------------------------------------
  // the fill: the zone's level of service when a camera reports it, else its worst open alert;
  // the outline: its worst open alert
  function zoneStyle(severity, highlighted, los) {
    const colour = severity ? COLOURS[severity] : COLOURS.calm;
    const fill = los ? LOS_COLOURS[los] : colour;
    return {
      color: highlighted ? COLOURS.highlight : colour,
      weight: highlighted ? 4 : severity ? 2.5 : 1.5,
      opacity: 0.95,
      fillColor: fill,
      fillOpacity: los ? 0.5 : severity ? (SEVERITY_RANK[severity] >= 3 ? 0.5 : 0.4) : 0.16,
      dashArray: highlighted ? "8 4" : null,
    };
  }

  function zoneTip(zoneId) {
    const zone = state.zones.get(zoneId);
    const p = zone.feature.properties;
    const box = el("div");
    box.appendChild(el("div", "tip-title", p.name));
    box.appendChild(el("div", "tip-line", `${p.kind} · ${Math.round(p.area_m2).toLocaleString()} m² · capacity ${p.capacity.toLocaleString()}`));
    if (zone.los) box.appendChild(el("div", "tip-line", losText(zone)));
    const open = zone.open || 0;
    box.appendChild(el("div", "tip-line", open ? `${plural(open, "open alert")}, worst ${zone.severity}` : "no open alert"));
    return box;
  }

  function drawZones(site) {
    for (const feature of site.zones.features) {
      const zoneId = feature.id;
      const layer = L.geoJSON(feature, {
        style: () => Object.assign({ className: "zone" }, zoneStyle(null, false)),
      });
      const path = layer.getLayers()[0];
      path.bindTooltip(() => zoneTip(zoneId), { sticky: true, className: "map-tip" });
      path.on("click", () => selectNewestOf(zoneId));
      zoneLayer.addLayer(layer);
      const labelBox = el("div");
      labelBox.appendChild(el("span", null, feature.properties.name));
      const labelCount = el("span", "zone-label-count", "");
      labelBox.appendChild(labelCount);
      const c = feature.properties.centroid;
      const label = L.tooltip({ permanent: true, direction: "center", className: "zone-label", interactive: false })
        .setLatLng([c.lat, c.lon])
        .setContent(labelBox);
      state.zones.set(zoneId, {
        feature, path, label, labelCount, bounds: path.getBounds(), open: 0, severity: null, los: null, density: null,
      });
      const element = path.getElement();
      if (element) {
        element.dataset.zone = zoneId;
        element.dataset.severity = "none";
        element.setAttribute("aria-label", feature.properties.name);
      }
    }
  }

  function drawExits(site) {
    for (const exit of site.exits) {
      if (!exit.position) continue;
      const marker = L.marker([exit.position.lat, exit.position.lon], {
        pane: "exits",
        keyboard: false,
        icon: L.divIcon({ className: "exit-marker", iconSize: [9, 9] }),
      });
      const box = el("div");
      box.appendChild(el("div", "tip-title", exit.name));
      box.appendChild(el("div", "tip-line", `${exit.kind} · ${exit.width_m} m · ${Math.round(exit.capacity_per_min)} persons/min`));
      marker.bindTooltip(box, { className: "map-tip", direction: "top" });
      exitLayer.addLayer(marker);
    }
  }

  function deviceStyle(severity, highlighted) {
    return {
      radius: highlighted ? 9 : 5.5,
      color: highlighted ? COLOURS.highlight : "#0d1117",
      weight: highlighted ? 3 : 1.5,
      fillColor: severity ? COLOURS[severity] : COLOURS.device,
      fillOpacity: 1,
    };
  }

  function drawDevices(site) {
    // devices placed on one point (a zone's centre) are spread on a ring of fixed size on screen
    const groups = new Map();
    for (const device of site.devices) {
      if (!device.position) continue;
      const key = `${device.position.lat.toFixed(7)},${device.position.lon.toFixed(7)}`;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(device);
    }
    state.spread = [];
    for (const members of groups.values()) {
      const base = L.latLng(members[0].position.lat, members[0].position.lon);
      const ringPx = members.length > 1 ? Math.max(13, members.length * 3.2) : 0;
      members.forEach((device, i) => {
        const options = { className: "device", renderer: deviceRenderer, pane: "devices" };
        const layer = L.circleMarker(base, Object.assign(options, deviceStyle(null, false)));
        layer.bindTooltip(() => deviceTip(device.id), { className: "map-tip", direction: "bottom" });
        layer.on("click", () => selectNewestOf(null, device.id));
        deviceLayer.addLayer(layer);
        state.devices.set(device.id, { device, layer, open: 0, severity: null });
        const element = layer.getElement();
        if (element) element.dataset.device = device.id;
        if (ringPx) state.spread.push({ layer, base, angle: (2 * Math.PI * i) / members.length, ringPx });
      });
      // a zone's name moves up, off the ring of the devices at its centre
      for (const zone of state.zones.values()) {
        const c = zone.feature.properties.centroid;
        if (ringPx && base.equals([c.lat, c.lon], 1e-7)) zone.label.options.offset = L.point(0, -(ringPx + 26));
      }
    }
    for (const device of site.devices) {
      if (!state.devices.has(device.id)) state.devices.set(device.id, { device, layer: null, open: 0, severity: null });
    }
    placeSpread();
  }

  function placeSpread() {
    for (const s of state.spread || []) {
      const centre = map.latLngToLayerPoint(s.base);
      const at = centre.add(L.point(s.ringPx * Math.sin(s.angle), -s.ringPx * Math.cos(s.angle)));
      s.layer.setLatLng(map.layerPointToLatLng(at));
    }
  }
  map.on("zoomend", placeSpread);

  function deviceTip(deviceId) {
    const d = state.devices.get(deviceId);
    const box = el("div");
    box.appendChild(el("div", "tip-title", d.device.id));
    const where = d.device.zone ? ` · ${zoneName(d.device.zone)}` : "";
    box.appendChild(el("div", "tip-line", `${d.device.kind.replace(/_/g, " ")}${where}`));
    if (d.device.placed !== "surveyed") box.appendChild(el("div", "tip-line", `position: from its ${d.device.placed}`));
    box.appendChild(el("div", "tip-line", d.open ? `${plural(d.open, "open alert")}, worst ${d.severity}` : "no open alert"));
    return box;
  }

  function fitSite(site) {
    let bounds = null;
    if (site.zones.bbox) {
      const [w, s, e, n] = site.zones.bbox;
      bounds = L.latLngBounds([s, w], [n, e]);
    }
    for (const d of site.devices) {
      if (!d.position) continue;
      if (bounds) bounds.extend([d.position.lat, d.position.lon]);
      else bounds = L.latLngBounds([d.position.lat, d.position.lon], [d.position.lat, d.position.lon]);
    }
    map.invalidateSize();
    if (bounds && bounds.isValid() && !bounds.getNorthEast().equals(bounds.getSouthWest())) {
      map.fitBounds(bounds, { padding: [40, 40], animate: false });
    } else {
      map.setView([site.center.lat, site.center.lon], 17, { animate: false });
    }
    placeSpread();
    updateLabels();
    if (!map.hasLayer(grid)) grid.addTo(map);
  }

  // a zone's name is shown on it only where it fits
  function updateLabels() {
    for (const zone of state.zones.values()) {
      const nw = map.latLngToContainerPoint(zone.bounds.getNorthWest());
      const se = map.latLngToContainerPoint(zone.bounds.getSouthEast());
      const fits = Math.abs(se.x - nw.x) > 70 && Math.abs(se.y - nw.y) > 26;
      if (fits && !labelLayer.hasLayer(zone.label)) labelLayer.addLayer(zone.label);
      if (!fits && labelLayer.hasLayer(zone.label)) labelLayer.removeLayer(zone.label);
    }
  }
  map.on("zoomend", updateLabels);

  // --- alerts -------------------------------------------------------------------------------------
  function addAlert(alert, live) {
    if (!state.site || alert.site_id !== state.site.id) return;
    const known = state.alerts.get(alert.alert_id) || state.open.get(alert.alert_id);
    if (known && live) return; // a snapshot already brought it: it is at least as recent
    state.alerts.set(alert.alert_id, alert);
    if (isOpen(alert)) state.open.set(alert.alert_id, alert);
    else state.open.delete(alert.alert_id);
    if (live && !known) {
      const zoneId = zoneOf(alert);
      const zone = zoneId && state.zones.get(zoneId);
      const element = zone && zone.path.getElement();
      if (element) {
        element.classList.remove("zone-flash");
        void element.getBoundingClientRect();
        element.classList.add("zone-flash");
        element.addEventListener("animationend", () => element.classList.remove("zone-flash"), { once: true });
      }
      if (SEVERITY_RANK[alert.severity] >= SEVERITY_RANK.high) {
        const where = zoneId ? ` in ${zoneName(zoneId)}` : "";
        ui.announcer.textContent = `New ${alert.severity} alert${where}: ${alert.title}`;
      }
      state.fresh.add(alert.alert_id);
    }
    scheduleRender();
  }

  async function syncAlerts(siteId, generation) {
    const base = `sites/${encodeURIComponent(siteId)}/alerts`;
    const knownOpen = new Set(state.open.keys());
    try {
      const [listed, open] = await Promise.all([
        getJSON(`${base}?limit=${LIST_LIMIT}`),
        getJSON(`${base}?open=true&limit=${OPEN_LIMIT}`),
      ]);
      if (generation !== state.generation) return;
      const openIds = new Set(open.alerts.map((a) => a.alert_id));
      // an alert open before this read and not open in it was resolved or closed in the meantime
      for (const id of knownOpen) if (!openIds.has(id)) state.open.delete(id);
      for (const page of [listed, open]) {
        for (const [id, owner] of Object.entries(page.owners || {})) state.owners.set(id, owner);
        for (const [id, times] of Object.entries(page.escalated || {})) state.escalations.set(id, times);
        for (const a of page.alerts) addAlert(a, false);
      }
      scheduleRender();
      const truncated = open.count >= OPEN_LIMIT;
      showBanner(truncated ? `More than ${OPEN_LIMIT} open alerts: zone colours count the newest only.` : "");
    } catch (err) {
      if (generation === state.generation) showBanner(`Cannot read the alerts: ${err.message}`);
    }
  }

  function scheduleRender() {
    if (state.renderPending) return;
    state.renderPending = true;
    window.setTimeout(() => {
      state.renderPending = false;
      render();
    }, 30);
  }

  function render() {
    renderZones();
    renderDevices();
    renderList();
    renderFacts();
  }

  function renderZones() {
    for (const zone of state.zones.values()) {
      zone.open = 0;
      zone.severity = null;
    }
    for (const d of state.devices.values()) {
      d.open = 0;
      d.severity = null;
    }
    for (const alert of state.open.values()) {
      const zone = state.zones.get(zoneOf(alert));
      if (zone) {
        zone.open += 1;
        zone.severity = worse(zone.severity, alert.severity);
      }
      const device = alert.device_id && state.devices.get(alert.device_id);
      if (device) {
        device.open += 1;
        device.severity = worse(device.severity, alert.severity);
      }
    }
    const highlighted = selectedTargets();
    for (const [zoneId, zone] of state.zones) {
      const on = highlighted.zone === zoneId;
      zone.path.setStyle(zoneStyle(zone.severity, on, zone.los));
      const element = zone.path.getElement();
      if (element) {
        element.dataset.severity = zone.severity || "none";
        element.dataset.los = zone.los || "none";
        element.dataset.open = String(zone.open);
        element.classList.toggle("zone-highlight", on);
        element.setAttribute("aria-label", `${zone.feature.properties.name}: ${zone.open ? plural(zone.open, "open alert") : "no open alert"}`);
      }
      const parts = [zone.los ? losText(zone) : "", zone.open ? plural(zone.open, "open alert") : ""];
      zone.labelCount.textContent = parts.filter(Boolean).join(" · ");
      if (on) zone.path.bringToFront();
    }
  }

  function losText(zone) {
    return `${zone.density.toFixed(2)} p/m² · LoS ${zone.los}`;
  }

  async function syncZoneStates(siteId, generation) {
    let body;
    try {
      body = await getJSON(`sites/${encodeURIComponent(siteId)}/zone-states`);
    } catch (err) {
      return; // the alerts' stream says when the API is away; the next round tries again
    }
    if (generation !== state.generation) return;
    for (const s of body.states) {
      const zone = state.zones.get(s.zone_id);
      if (zone) {
        zone.los = s.los;
        zone.density = s.density;
      }
    }
    renderZones();
  }

  function renderDevices() {
    const highlighted = selectedTargets();
    for (const [deviceId, d] of state.devices) {
      if (!d.layer) continue;
      const on = highlighted.device === deviceId;
      d.layer.setStyle(deviceStyle(d.severity, on));
      if (on) d.layer.setRadius(9);
      else d.layer.setRadius(5.5);
      const element = d.layer.getElement();
      if (element) {
        element.dataset.severity = d.severity || "none";
        element.classList.toggle("device-highlight", on);
      }
      if (on) d.layer.bringToFront();
    }
  }

  function buildItem(alert) {
    const li = el("li");
    li.dataset.alertId = alert.alert_id;
    const button = el("button", "alert-item");
    button.type = "button";
    button.dataset.alertId = alert.alert_id;
    li.appendChild(button);
    li.appendChild(buildAssign(alert.alert_id));
    const actions = el("div", "alert-actions");
    actions.setAttribute("role", "group");
    li.appendChild(actions);
    fillItem(button, alert);
    fillAssign(li.children[1], alert);
    fillActions(actions, alert);
    button.addEventListener("click", () => selectAlert(alert.alert_id));
    return li;
  }

  // supervisors (and admins) give an open alert to an operator of the site, by name
  function canAssign() {
    return Boolean(state.session) && (state.session.role === "supervisor" || state.session.role === "admin");
  }

  function buildAssign(alertId) {
    const form = el("form", "alert-assign");
    const input = el("input", "assign-name");
    input.name = "assignee";
    input.placeholder = "operator";
    input.autocomplete = "off";
    input.required = true;
    input.maxLength = 64;
    const button = el("button", "action action-assign", "Assign");
    button.type = "submit";
    form.append(input, button);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      assign(alertId, input.value.trim(), form);
    });
    return form;
  }

  function fillAssign(form, alert) {
    form.hidden = !(canAssign() && state.mode === "live" && isOpen(alert));
    const busy = state.busy.has(alert.alert_id);
    for (const control of form.elements) control.disabled = busy;
    form.elements.assignee.setAttribute("aria-label", `Assign to (an operator's name): ${alert.title}`);
  }

  // POSTs one operator request on an alert (shown busy meanwhile); response is null when unreachable
  async function postOnAlert(siteId, alertId, path, payload) {
    state.busy.add(alertId);
    scheduleRender();
    let response = null;
    let body = null;
    try {
      response = await fetch(`sites/${encodeURIComponent(siteId)}/alerts/${encodeURIComponent(alertId)}/${path}`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        credentials: "same-origin",
        body: JSON.stringify(payload),
      });
      body = await response.json().catch(() => null);
    } catch (err) {
      body = { reason: err.message };
    }
    state.busy.delete(alertId);
    return { response, body };
  }

  function failureReason(response, body) {
    return body && body.reason ? body.reason : response ? response.statusText : "no answer";
  }

  async function assign(alertId, assignee, form) {
    const alert = state.alerts.get(alertId) || state.open.get(alertId);
    if (!assignee || !alert || !state.site || state.busy.has(alertId) || !canAssign()) return;
    const siteId = state.site.id;
    const generation = state.generation;
    const { response, body } = await postOnAlert(siteId, alertId, "assign", { assignee, expected_status: alert.status });
    if (response && response.status === 401) return signedOut();
    if (generation !== state.generation) return;
    if (response && response.ok) {
      applyCase(body);
      form.reset();
      ui.announcer.textContent = `${alert.title}: assigned to ${body.owner}`;
      showBanner("");
    } else {
      const reason = failureReason(response, body);
      showBanner(`Cannot assign this alert: ${reason}`);
    }
    scheduleRender();
  }

  function fillActions(box, alert) {
    const wanted = canAct() && state.mode === "live" ? ACTIONS[alert.status] || [] : [];
    const busy = state.busy.has(alert.alert_id);
    const current = [...box.children].map((b) => b.dataset.action).join(" ");
    if (current !== wanted.join(" ")) {
      box.replaceChildren();
      for (const action of wanted) {
        const button = el("button", `action action-${action}`, ACTION_LABELS[action]);
        button.type = "button";
        button.dataset.action = action;
        button.addEventListener("click", () => act(alert.alert_id, action));
        box.appendChild(button);
      }
    }
    for (const button of box.children) {
      button.disabled = busy;
      button.setAttribute("aria-label", `${ACTION_LABELS[button.dataset.action]}: ${alert.title}`);
    }
    box.setAttribute("aria-label", `Actions on ${alert.title}`);
    box.hidden = wanted.length === 0;
  }

  function fillItem(button, alert) {
    const zoneId = zoneOf(alert);
    button.dataset.severity = alert.severity;
    button.dataset.status = alert.status;
    button.classList.toggle("alert-closed", !isOpen(alert));
    const badge = el("span", `badge badge-${alert.severity}`, alert.severity);
    const time = el("time", "alert-time", formatTime(alert.raised_at));
    time.dateTime = alert.raised_at;
    time.title = alert.raised_at;
    const rule = el("span", "alert-rule", alert.rule);
    const title = el("span", "alert-title", alert.title);
    const where = [];
    if (zoneId) where.push(zoneName(zoneId));
    if (alert.device_id) where.push(alert.device_id);
    if (alert.category === "fault") where.push("sensor fault");
    const owner = state.owners.get(alert.alert_id);
    const statusText = alert.status.replace("_", " ") + (owner ? ` · ${owner}` : "");
    const status = el("span", `alert-status status-${alert.status}`, statusText);
    const meta = el("span", "alert-meta", where.join(" · "));
    meta.prepend(status);
    const change = state.changes.get(alert.alert_id);
    if (change) {
      button.dataset.change = change;
      meta.prepend(el("span", `alert-change change-${change}`, change === "moved" ? "moved by the replay" : change));
    } else {
      delete button.dataset.change;
    }
    where.unshift(statusText);
    const escalations = state.mode === "live" ? state.escalations.get(alert.alert_id) || 0 : 0;
    button.dataset.escalations = String(escalations);
    const parts = [badge, time, rule, title, meta];
    if (escalations) {
      // not acknowledged in time: the site's supervisors are flagged
      const flag = el("span", "alert-escalated", escalations > 1 ? `escalated ×${escalations}` : "escalated");
      flag.title = "Not acknowledged in time: escalated to the supervisors";
      parts.splice(3, 0, flag); // a line of its own, above the title
      where.unshift("escalated");
    }
    button.replaceChildren(...parts);
    button.setAttribute(
      "aria-label",
      `${alert.severity} alert at ${formatTime(alert.raised_at)}, rule ${alert.rule}: ${alert.title}` +
        (where.length ? ` (${where.join(", ")})` : ""),
    );
    button.setAttribute("aria-pressed", String(state.selected === alert.alert_id));
  }

  function renderList() {
    const sorted = [...state.alerts.values()].sort(newestFirst);
    for (const old of sorted.slice(LIST_LIMIT)) {
      state.alerts.delete(old.alert_id);
    }
    const shown = sorted.slice(0, LIST_LIMIT);
    const keep = new Set(shown.map((a) => a.alert_id));
    for (const [id, li] of state.items) {
      if (!keep.has(id)) {
        li.remove();
        state.items.delete(id);
      }
    }
    let previous = null;
    for (const alert of shown) {
      let li = state.items.get(alert.alert_id);
      if (!li) {
        li = buildItem(alert);
        state.items.set(alert.alert_id, li);
      } else {
        fillItem(li.firstChild, alert);
        fillAssign(li.children[1], alert);
        fillActions(li.lastChild, alert);
      }
      if (state.fresh.has(alert.alert_id)) li.firstChild.classList.add("alert-new");
      const expected = previous ? previous.nextSibling : ui.list.firstChild;
      if (expected !== li) ui.list.insertBefore(li, expected);
      previous = li;
    }
    state.fresh.clear();
    ui.empty.hidden = shown.length > 0;
    ui.count.textContent = `${state.open.size} open · ${shown.length} listed`;
  }

  function renderFacts() {
    const site = state.site;
    if (!site) return;
    const kind = site.kind.replace(/_/g, " ");
    const placed = site.devices.filter((d) => d.position).length;
    ui.facts.textContent =
      `${kind} · ${plural(site.zones.features.length, "zone")} · ${plural(site.devices.length, "device")}` +
      (placed < site.devices.length ? ` (${placed} placed)` : "") +
      ` · ${plural(state.open.size, "open alert")}`;
    const option = [...ui.select.options].find((o) => o.value === site.id);
    if (option) option.textContent = optionText(site);
  }

  // --- selection ----------------------------------------------------------------------------------
  function selectedTargets() {
    const alert = state.selected && (state.alerts.get(state.selected) || state.open.get(state.selected));
    if (!alert) return { zone: null, device: null };
    return { zone: zoneOf(alert), device: alert.device_id || null };
  }

  function selectAlert(alertId) {
    state.selected = state.selected === alertId ? null : alertId;
    if (state.selected && state.mode === "live") loadProcedure(state.selected);
    else hideProcedure();
    for (const li of state.items.values()) {
      li.firstChild.setAttribute("aria-pressed", String(li.firstChild.dataset.alertId === state.selected));
    }
    renderZones();
    renderDevices();
    const target = selectedTargets();
    const device = target.device && state.devices.get(target.device);
    const zone = target.zone && state.zones.get(target.zone);
    if (device && device.layer) {
      const at = device.layer.getLatLng();
      if (!map.getBounds().pad(-0.1).contains(at)) map.panTo(at);
      device.layer.openTooltip();
    } else if (zone) {
      if (!map.getBounds().contains(zone.bounds)) map.fitBounds(zone.bounds.pad(0.6), { maxZoom: map.getZoom() });
      zone.path.openTooltip(zone.bounds.getCenter());
    }
  }

  // --- the selected alert's procedure (its steps, ticked by operators) --------------------------------
  function procedureUrl(alertId) {
    return `sites/${encodeURIComponent(state.site.id)}/alerts/${encodeURIComponent(alertId)}/procedure`;
  }

  function hideProcedure() {
    ui.procedure.hidden = true;
    ui.procedureSteps.replaceChildren();
    delete ui.procedure.dataset.alertId;
  }

  async function loadProcedure(alertId) {
    if (!state.site) return;
    const generation = state.generation;
    try {
      const procedure = await getJSON(procedureUrl(alertId));
      if (generation === state.generation && state.selected === alertId) showProcedure(procedure);
    } catch (err) {
      if (generation === state.generation) showBanner(`Cannot read the procedure: ${err.message}`);
    }
  }

  function showProcedure(procedure) {
    if (!procedure.procedure_id) return hideProcedure();
    ui.procedure.dataset.alertId = procedure.alert_id;
    ui.procedureTitle.textContent = `Procedure: ${procedure.title || procedure.procedure_id}`;
    ui.procedureSteps.replaceChildren();
    for (const step of procedure.steps) {
      const li = el("li");
      li.dataset.step = step.id;
      const label = el("label");
      const box = el("input");
      box.type = "checkbox";
      box.checked = Boolean(step.done_by);
      box.disabled = Boolean(step.done_by) || !canAct();
      box.addEventListener("change", () => tick(procedure.alert_id, step.id, box));
      label.append(box, el("span", "step-text", step.text));
      if (step.required) {
        const mark = el("span", "step-required", "*");
        mark.title = "required before resolving";
        label.append(mark);
      }
      li.append(label);
      if (step.done_by) li.append(el("span", "step-done", `done by ${step.done_by} at ${formatTime(step.done_at)}`));
      ui.procedureSteps.append(li);
    }
    ui.procedure.hidden = false;
  }

  async function tick(alertId, stepId, box) {
    box.disabled = true;
    let response = null;
    let body = null;
    try {
      response = await fetch(`${procedureUrl(alertId)}/steps/${encodeURIComponent(stepId)}`, {
        method: "POST",
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      body = await response.json().catch(() => null);
    } catch (err) {
      body = { reason: err.message };
    }
    if (response && response.status === 401) return signedOut();
    if (response && response.ok) {
      showBanner("");
      if (state.selected === alertId) showProcedure(body);
    } else {
      const reason = failureReason(response, body);
      showBanner(`Cannot tick step ${stepId}: ${reason}`);
      loadProcedure(alertId);
    }
  }

  function selectNewestOf(zoneId, deviceId) {
    const candidates = [...state.open.values()]
      .filter((a) => (zoneId ? zoneOf(a) === zoneId : a.device_id === deviceId))
      .sort(newestFirst);
    if (candidates.length === 0) return;
    const id = candidates[0].alert_id;
    if (state.selected !== id) selectAlert(id);
    const li = state.items.get(id);
    if (li) li.firstChild.scrollIntoView({ block: "nearest" });
  }

  // --- signing in ------------------------------------------------------------------------------------
  function showSession() {
    const session = state.session;
    ui.operatorName.textContent = session ? session.name : "not signed in";
    ui.operatorRole.textContent = session ? session.role : "";
    ui.operatorButton.dataset.set = String(Boolean(session));
    ui.operatorButton.title = session ? `Signed in as ${session.name} (${session.role}): sign out` : "Sign in";
  }

  function canAct() {
    return Boolean(state.session) && state.session.role !== "viewer";
  }

  function askSignIn(message) {
    ui.signinError.textContent = message || "";
    ui.signinError.hidden = !message;
    ui.signinPassword.value = "";
    if (!ui.dialog.open) ui.dialog.showModal();
    (ui.signinUser.value ? ui.signinPassword : ui.signinUser).focus();
  }

  function signedOut() {
    if (!state.session && ui.dialog.open) return;
    state.session = null;
    if (state.renew) window.clearTimeout(state.renew);
    state.renew = null;
    state.generation += 1; // whatever was loading belongs to the former session
    clearSite();
    showSession();
    setLive("offline", "signed out");
    askSignIn("");
  }

  function startSession(session) {
    state.session = session;
    showSession();
    if (state.renew) window.clearTimeout(state.renew);
    // renew at two thirds of the session's life: the cookie (and the stream) never lapse
    const left = session.expires_at * 1000 - Date.now();
    state.renew = window.setTimeout(renewSession, Math.max(5000, (left * 2) / 3));
  }

  async function renewSession() {
    try {
      const response = await fetch("auth/session/refresh", { method: "POST", credentials: "same-origin" });
      if (response.ok) startSession(await response.json());
      else if (response.status === 401) signedOut();
      else state.renew = window.setTimeout(renewSession, STREAM_RETRY_MS);
    } catch (_) {
      state.renew = window.setTimeout(renewSession, STREAM_RETRY_MS);
    }
  }

  ui.signinForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new URLSearchParams({ username: ui.signinUser.value.trim(), password: ui.signinPassword.value });
    let response = null;
    let body = null;
    try {
      response = await fetch("auth/session", { method: "POST", body: form, credentials: "same-origin" });
      body = await response.json().catch(() => null);
    } catch (err) {
      body = { reason: err.message };
    }
    if (!response || !response.ok) {
      const reason = body && body.reason ? body.reason : "no answer";
      askSignIn(response && response.status === 429 ? reason : `Cannot sign in: ${reason}`);
      return;
    }
    ui.signinPassword.value = "";
    ui.dialog.close();
    startSession(body);
    loadSites();
  });
  ui.dialog.addEventListener("cancel", (event) => event.preventDefault()); // nothing to see before
  ui.operatorButton.addEventListener("click", async () => {
    if (!state.session) return askSignIn("");
    await fetch("auth/session", { method: "DELETE", credentials: "same-origin" }).catch(() => null);
    signedOut();
  });

  async function start() {
    showSession();
    let response = null;
    if (!/(?:^|;\s*)beffroi_session_open=1/.test(document.cookie)) {
      // no session cookie: sign in first (asking would only answer 401)
      setLive("offline", "signed out");
      askSignIn("");
      return;
    }
    try {
      response = await fetch("auth/session", { headers: { Accept: "application/json" }, credentials: "same-origin" });
    } catch (_) {
      response = null;
    }
    if (response && response.ok) {
      startSession(await response.json());
      loadSites();
    } else {
      setLive("offline", "signed out");
      askSignIn("");
    }
  }

  async function act(alertId, action) {
    const alert = state.alerts.get(alertId) || state.open.get(alertId);
    if (!alert || !state.site || state.busy.has(alertId) || !canAct()) return;
    const siteId = state.site.id;
    const generation = state.generation;
    const { response, body } = await postOnAlert(siteId, alertId, "actions", { action, expected_status: alert.status });
    if (response && response.status === 401) return signedOut();
    if (generation !== state.generation) return;
    if (response && response.ok) {
      applyCase(body);
      ui.announcer.textContent = `${alert.title}: ${body.alert.status.replace("_", " ")}`;
      showBanner("");
    } else {
      const reason = failureReason(response, body);
      showBanner(`Cannot ${action} this alert: ${reason}`);
      if (response && response.status === 409) {
        // a colleague acted first: show the alert as it now is
        try {
          applyCase(await getJSON(`sites/${encodeURIComponent(siteId)}/alerts/${encodeURIComponent(alertId)}`));
        } catch (_) {
          /* the next refresh will */
        }
      }
    }
    scheduleRender();
  }

  function applyCase(alertCase) {
    const alert = alertCase.alert;
    if (!state.site || alert.site_id !== state.site.id) return;
    if (alertCase.owner) state.owners.set(alert.alert_id, alertCase.owner);
    else state.owners.delete(alert.alert_id);
    if (alertCase.escalations) state.escalations.set(alert.alert_id, alertCase.escalations);
    else state.escalations.delete(alert.alert_id);
    addAlert(alert, false);
  }

  // --- live stream ----------------------------------------------------------------------------------
  function closeStream() {
    if (state.stream) state.stream.close();
    state.stream = null;
    if (state.retry) window.clearTimeout(state.retry);
    state.retry = null;
  }

  function openStream(siteId, generation) {
    const source = new EventSource(`sites/${encodeURIComponent(siteId)}/alerts/stream`, { withCredentials: true });
    state.stream = source;
    source.addEventListener("open", () => {
      if (generation !== state.generation) return;
      setLive("live", "live");
      syncAlerts(siteId, generation); // after subscribing: nothing raised in between is missed
    });
    source.addEventListener("alert", (event) => {
      if (generation !== state.generation) return;
      try {
        addAlert(JSON.parse(event.data), true);
      } catch (err) {
        console.warn("live map: an alert event did not parse", err);
      }
    });
    source.addEventListener("case", (event) => {
      // a colleague's action (or this screen's own), an assignment, an escalation: shown at once
      if (generation !== state.generation) return;
      try {
        applyCase(JSON.parse(event.data));
        scheduleRender();
      } catch (err) {
        console.warn("live map: a case event did not parse", err);
      }
    });
    source.addEventListener("error", () => {
      if (generation !== state.generation) return;
      if (source.readyState === EventSource.CLOSED) {
        // the server refused the stream (no bus, site gone): show what is stored, try again later
        setLive("offline", "live updates unavailable — retrying");
        syncAlerts(siteId, generation);
        state.retry = window.setTimeout(() => {
          if (generation === state.generation) openStream(siteId, generation);
        }, STREAM_RETRY_MS);
      } else {
        setLive("reconnecting", "reconnecting…");
      }
    });
  }

  // --- the timeline: the map as a time machine ----------------------------------------------------
  const TICK_MS = 200; // the playing clock's step on screen
  const DEFAULT_PAST_MS = 3600 * 1000; // the window first offered: the last hour
  const REPLAY_POLL_MS = 500;

  function replayFromHash() {
    const match = /(?:^|[#&])replay=([0-9a-f]{32})(?:&|$)/.exec(window.location.hash);
    return match ? match[1] : null;
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  // a datetime-local input's value: the control room's local time, to the second
  function localInput(ms) {
    const d = new Date(ms);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function canReplay() {
    return Boolean(state.session) && ["supervisor", "admin"].includes(state.session.role);
  }

  // the live view stops: no stream, no periodic reads (anything in flight is dropped)
  function stopLive() {
    closeStream();
    if (state.refresh) window.clearInterval(state.refresh);
    if (state.zoneRefresh) window.clearInterval(state.zoneRefresh);
    state.refresh = state.zoneRefresh = null;
    return ++state.generation;
  }

  function enterPast() {
    if (!state.site) return;
    stopLive();
    state.mode = "past";
    ui.timeline.dataset.mode = "past";
    ui.tlMode.textContent = "Back to live";
    ui.tlMode.setAttribute("aria-pressed", "true");
    ui.tlWindow.hidden = false;
    ui.tlReplay.hidden = false;
    ui.tlRunReplay.hidden = !canReplay();
    setLive("past", "past: pick a window");
    if (!ui.tlFrom.value || !ui.tlTo.value) {
      const now = Math.floor(Date.now() / 1000) * 1000;
      ui.tlFrom.value = localInput(now - DEFAULT_PAST_MS);
      ui.tlTo.value = localInput(now);
    }
    state.alerts.clear();
    state.open.clear();
    state.owners.clear();
    for (const zone of state.zones.values()) zone.los = zone.density = null;
    state.selected = null;
    hideProcedure();
    render();
  }

  // back to the live view of the current site (the stream resumes)
  function goLive() {
    if (state.site) showSite(state.site.id);
  }

  function leavePast() {
    pause();
    state.mode = "live";
    state.history = null;
    state.changes.clear();
    ui.timeline.dataset.mode = "live";
    ui.tlMode.textContent = "Past…";
    ui.tlMode.setAttribute("aria-pressed", "false");
    ui.tlWindow.hidden = true;
    ui.tlPlayer.hidden = true;
    ui.tlReplay.hidden = true;
    ui.tlReplayStatus.textContent = "";
    ui.tlClock.textContent = "";
    delete ui.tlClock.dataset.at;
  }

  async function showHistory(sinceMs, untilMs, replay) {
    const site = state.site;
    if (!site) return;
    if (state.mode !== "past") enterPast();
    pause();
    const generation = state.generation;
    const query = new URLSearchParams({ from: new Date(sinceMs).toISOString(), to: new Date(untilMs).toISOString() });
    let body;
    try {
      body = await getJSON(`sites/${encodeURIComponent(site.id)}/history?${query}`);
    } catch (err) {
      if (generation === state.generation) showBanner(`Cannot read the past of ${site.name}: ${err.message}`);
      return;
    }
    if (generation !== state.generation || state.mode !== "past") return;
    showBanner(body.truncated ? "This window holds more than can be shown: only part of it is." : "");
    const states = new Map();
    for (const s of body.zone_states) {
      if (!states.has(s.zone_id)) states.set(s.zone_id, []);
      states.get(s.zone_id).push({ at: Date.parse(s.ts), los: s.los, density: s.density });
    }
    const entries = body.alerts.map((a) => ({
      alert: a.alert,
      at: Date.parse(a.alert.raised_at),
      changes: a.changes.map((c) => ({ at: Date.parse(c.at), status: c.status, operator: c.operator })),
      change: null,
    }));
    state.history = {
      since: sinceMs,
      until: untilMs,
      cursor: sinceMs,
      states,
      entries,
      moments: [],
      playing: false,
      timer: null,
      last: 0,
      replay: null,
    };
    state.changes.clear();
    if (replay) overlayReplay(replay);
    indexMoments();
    ui.tlFrom.value = localInput(sinceMs);
    ui.tlTo.value = localInput(untilMs);
    ui.tlScrub.max = String(Math.round((untilMs - sinceMs) / 1000));
    ui.tlPlayer.hidden = false;
    ui.tlRunReplay.hidden = !canReplay();
    showMoment(sinceMs);
  }

  // every moment something changes on the map: what stepping goes through
  function indexMoments() {
    const h = state.history;
    const at = new Set();
    for (const samples of h.states.values()) for (const s of samples) at.add(s.at);
    for (const e of h.entries) {
      at.add(e.at);
      for (const c of e.changes) at.add(c.at);
    }
    h.entries.sort((a, b) => a.at - b.at || (a.alert.alert_id < b.alert.alert_id ? -1 : 1));
    h.moments = [...at].filter((t) => t >= h.since && t < h.until).sort((a, b) => a - b);
  }

  function lastAtOrBefore(samples, t) {
    let lo = 0;
    let hi = samples.length - 1;
    let found = null;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (samples[mid].at <= t) {
        found = samples[mid];
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }

  // the map and the list as they were at `t`
  function showMoment(t) {
    const h = state.history;
    if (!h) return;
    h.cursor = Math.min(Math.max(t, h.since), h.until);
    for (const [zoneId, zone] of state.zones) {
      const s = lastAtOrBefore(h.states.get(zoneId) || [], h.cursor);
      zone.los = s ? s.los : null;
      zone.density = s ? s.density : null;
    }
    const shown = new Set(state.alerts.keys());
    state.alerts.clear();
    state.open.clear();
    state.owners.clear();
    for (const e of h.entries) {
      if (e.at > h.cursor) break;
      let status = "new";
      let owner = null;
      for (const c of e.changes) {
        if (c.at > h.cursor) break;
        status = c.status;
        owner = c.operator;
      }
      const alert = status === e.alert.status ? e.alert : Object.assign({}, e.alert, { status });
      state.alerts.set(alert.alert_id, alert);
      if (owner) state.owners.set(alert.alert_id, owner);
      const replaced = e.change === "removed" || e.change === "moved";
      if (isOpen(alert) && !replaced) state.open.set(alert.alert_id, alert);
      if (h.playing && !shown.has(alert.alert_id)) {
        state.fresh.add(alert.alert_id);
        if (SEVERITY_RANK[alert.severity] >= SEVERITY_RANK.high) {
          ui.announcer.textContent = `${alert.severity} alert: ${alert.title}`;
        }
      }
    }
    if (state.selected && !state.alerts.has(state.selected)) state.selected = null;
    ui.tlScrub.value = String(Math.round((h.cursor - h.since) / 1000));
    const when = new Date(h.cursor);
    ui.tlClock.textContent = dateAndTime.format(when);
    ui.tlClock.dataset.at = when.toISOString();
    setLive("past", `past · ${h.playing ? `playing ${ui.tlSpeed.value}×` : "paused"}`);
    render();
  }

  function play() {
    const h = state.history;
    if (!h || h.playing) return;
    if (h.cursor >= h.until) showMoment(h.since);
    h.playing = true;
    h.last = performance.now();
    ui.tlPlay.textContent = "❚❚";
    ui.tlPlay.dataset.playing = "true";
    ui.tlPlay.setAttribute("aria-label", "Pause");
    h.timer = window.setInterval(() => {
      const now = performance.now();
      const next = h.cursor + (now - h.last) * Number(ui.tlSpeed.value);
      h.last = now;
      if (next >= h.until) {
        showMoment(h.until);
        pause();
      } else {
        showMoment(next);
      }
    }, TICK_MS);
    showMoment(h.cursor);
  }

  function pause() {
    const h = state.history;
    ui.tlPlay.textContent = "▶";
    ui.tlPlay.dataset.playing = "false";
    ui.tlPlay.setAttribute("aria-label", "Play");
    if (!h) return;
    if (h.timer) window.clearInterval(h.timer);
    h.timer = null;
    if (h.playing) {
      h.playing = false;
      showMoment(h.cursor);
    }
  }

  function step(forward) {
    const h = state.history;
    if (!h) return;
    pause();
    const m = h.moments;
    const next = forward ? m.find((t) => t > h.cursor) : [...m].reverse().find((t) => t < h.cursor);
    showMoment(next !== undefined ? next : forward ? h.until : h.since);
  }

  // --- a replay's result over the window ---
  function overlayReplay(replay) {
    const h = state.history;
    const site = state.site.id;
    const entries = new Map(h.entries.map((e) => [e.alert.alert_id, e]));
    const counts = {};
    for (const d of replay.alerts || []) {
      if (d.alert.site_id !== site) continue;
      counts[d.change] = (counts[d.change] || 0) + 1;
      const recorded = d.recorded_id ? entries.get(d.recorded_id) : null;
      if (d.change === "same" || d.change === "removed") {
        if (recorded) recorded.change = d.change;
        continue;
      }
      // added, earlier or later: the replayed alert, at its own time, as it was raised
      if (recorded && recorded.alert.alert_id !== d.alert.alert_id) recorded.change = "moved";
      if (recorded && recorded.alert.alert_id === d.alert.alert_id) h.entries.splice(h.entries.indexOf(recorded), 1);
      const alert = Object.assign({}, d.alert, { status: "new" });
      h.entries.push({ alert, at: Date.parse(alert.raised_at), changes: [], change: d.change });
    }
    for (const e of h.entries) if (e.change) state.changes.set(e.alert.alert_id, e.change);
    h.replay = replay;
    const parts = ["same", "earlier", "later", "added", "removed"].filter((c) => counts[c]).map((c) => `${counts[c]} ${c}`);
    ui.tlReplayStatus.textContent = `replay ${replay.id.slice(0, 8)}: ${parts.length ? parts.join(", ") : "no alert"}`;
    ui.tlReplayStatus.dataset.replay = replay.id;
  }

  async function openReplay(replayId) {
    if (!state.site) return;
    if (state.mode !== "past") enterPast();
    const generation = state.generation;
    ui.tlReplayStatus.textContent = `replay ${replayId.slice(0, 8)}: waiting…`;
    let status;
    for (;;) {
      try {
        status = await getJSON(`replays/${encodeURIComponent(replayId)}`);
      } catch (err) {
        if (generation === state.generation) ui.tlReplayStatus.textContent = `Cannot read the replay: ${err.message}`;
        return;
      }
      if (generation !== state.generation) return;
      if (status.status === "done" || status.status === "failed") break;
      ui.tlReplayStatus.textContent = `replay ${replayId.slice(0, 8)}: ${status.status}…`;
      await new Promise((resolve) => window.setTimeout(resolve, REPLAY_POLL_MS));
    }
    if (status.status === "failed") {
      ui.tlReplayStatus.textContent = `replay ${replayId.slice(0, 8)} failed: ${status.error}`;
      return;
    }
    const hash = `#site=${encodeURIComponent(state.site.id)}&replay=${replayId}`;
    if (window.location.hash !== hash) window.history.replaceState(null, "", hash);
    await showHistory(Date.parse(status.request.from), Date.parse(status.request.to), status);
  }

  async function runReplay() {
    const h = state.history;
    if (!h || !state.site) return;
    const body = {
      from: new Date(h.since).toISOString(),
      to: new Date(h.until).toISOString(),
      sites: [state.site.id],
    };
    let response = null;
    let answer = null;
    try {
      response = await fetch("replays", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        credentials: "same-origin",
        body: JSON.stringify(body),
      });
      answer = await response.json().catch(() => null);
    } catch (err) {
      answer = { reason: err.message };
    }
    if (response && response.status === 401) return signedOut();
    if (!response || !response.ok) {
      ui.tlReplayStatus.textContent = `Cannot start a replay: ${answer && answer.reason ? answer.reason : "no answer"}`;
      return;
    }
    ui.tlReplayId.value = answer.id;
    openReplay(answer.id);
  }

  function windowFromInputs() {
    const since = new Date(ui.tlFrom.value).getTime();
    const until = new Date(ui.tlTo.value).getTime();
    if (!Number.isFinite(since) || !Number.isFinite(until) || until <= since) {
      showBanner("Pick a window whose end comes after its start.");
      return null;
    }
    return [since, until];
  }

  ui.tlMode.addEventListener("click", () => (state.mode === "live" ? enterPast() : goLive()));
  ui.tlWindow.addEventListener("submit", (event) => {
    event.preventDefault();
    const w = windowFromInputs();
    if (w) {
      if (window.location.hash.includes("replay=")) {
        window.history.replaceState(null, "", `#site=${encodeURIComponent(state.site.id)}`);
      }
      showHistory(w[0], w[1], null);
    }
  });
  ui.tlPlay.addEventListener("click", () => (state.history && state.history.playing ? pause() : play()));
  ui.tlStep.addEventListener("click", () => step(true));
  ui.tlBack.addEventListener("click", () => step(false));
  ui.tlSpeed.addEventListener("change", () => {
    if (state.history) showMoment(state.history.cursor);
  });
  ui.tlScrub.addEventListener("input", () => {
    const h = state.history;
    if (!h) return;
    pause();
    showMoment(h.since + Number(ui.tlScrub.value) * 1000);
  });
  ui.tlRunReplay.addEventListener("click", runReplay);
  ui.tlOpenReplay.addEventListener("click", () => {
    const id = ui.tlReplayId.value.trim();
    if (/^[0-9a-f]{32}$/.test(id)) openReplay(id);
    else ui.tlReplayStatus.textContent = "A replay id is 32 hexadecimal characters.";
  });

  // --- wiring ---------------------------------------------------------------------------------------
  ui.select.addEventListener("change", () => showSite(ui.select.value));
  window.addEventListener("hashchange", () => {
    const wanted = siteFromHash();
    if (wanted && (!state.site || wanted !== state.site.id)) {
      ui.select.value = wanted;
      showSite(wanted);
    }
  });
  window.addEventListener("resize", () => map.invalidateSize());

  window.beffroiMap = { colours: COLOURS, state: state, map: map };
  start();
})();
