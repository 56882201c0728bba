/*
 * The first image, before the viewer's modules have arrived. The page inlines
 * this classic script at the top of <head> (studies/viewer_views.py), so the
 * first frame is the first request the page makes: it does not wait for the
 * script files nor queue behind them on the browser's six connections.
 *
 * The page names the first image and describes its pixels (no patient data:
 * size, bit depth, rescale, stored window, pixel aspect). When the frame is in
 * and the page is laid out (an inline call at the end of <body>), the image is
 * drawn as the viewer would open it — the stored window, fitted, centred —
 * into a canvas that viewport 0 then adopts (viewport.js). The viewer's
 * modules take over from there and add overlays, tools and the rest of the
 * stack. If the modules are first, they draw it themselves.
 *
 * Exposes window.__viewerEarly {frameBytes, metadata} for viewer.js and sets
 * window.__viewerStats.firstImageMs when it draws.
 */
(function () {
  "use strict";
  var element = document.getElementById("viewer-config");
  if (!element) return;
  var config = JSON.parse(element.textContent);
  var stats = (window.__viewerStats = window.__viewerStats || {
    firstImageMs: null,
    viewerDrawnMs: null,
    stackMs: null,
    lastMeasurement: null,
  });
  if (!config.firstInstanceUid) return;
  var base = [
    config.dicomweb,
    "studies", encodeURIComponent(config.studyUid),
    "series", encodeURIComponent(config.firstSeriesUid),
    "instances", encodeURIComponent(config.firstInstanceUid),
  ].join("/");
  // As the page's Link header preloads them (any type, with credentials), so
  // these fetches take the preloaded answers instead of asking again.
  var get = function (url) {
    return fetch(url, { credentials: "include" });
  };
  var pixel = config.firstPixel;
  var expected = pixel ? pixel.rows * pixel.columns * pixel.samples * (pixel.bitsAllocated / 8) : 0;

  /* The pixel bytes of the first part of a multipart/related answer (RFC 2046). */
  function cut(response) {
    if (!response.ok) throw new Error("HTTP " + response.status + " for the first frame");
    var single = !/boundary=/i.test(response.headers.get("Content-Type") || "");
    return response.arrayBuffer().then(function (buffer) {
      var bytes = new Uint8Array(buffer);
      if (single) return bytes;
      var limit = Math.min(bytes.length - 3, 4096);
      for (var i = 0; i < limit; i++) {
        if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
          var start = i + 4;
          // Only the expected length can be trusted: pixel bytes may hold anything.
          if (expected && start + expected <= bytes.length) return bytes.subarray(start, start + expected);
          break;
        }
      }
      throw new Error("the first frame's answer could not be read");
    });
  }

  // The frame first; none for an image only the viewer can show (palette colour,
  // say): it asks for that itself. viewer.js asks again if this failed.
  var frameBytes = pixel ? get(base + "/frames/1").then(cut) : null;
  // The instance's metadata is for the viewer's modules, not the first image: asked
  // for once the frame is in, so that on two cores the server answers the frame alone.
  var askMetadata = function () {
    return get(base + "/metadata");
  };
  var metadata = frameBytes ? frameBytes.then(askMetadata, askMetadata) : askMetadata();
  if (frameBytes) frameBytes.catch(function () {});
  metadata.catch(function () {}); // handled where viewer.js reads it
  window.__viewerEarly = { frameBytes: frameBytes, metadata: metadata };
  var first = (window.__viewerFirst = { adopted: false, painted: false });
  // The page's chrome (vw-early, viewer.css) appears, and the viewer's modules are
  // loaded, once the first image is on screen, when the frame failed, or after 600 ms:
  // on a slow link the tools do not wait for the image. Before that, the modules' eleven
  // requests would share the server's cores with the frame (the page loads them itself
  // when there is no first paint).
  var viewerLoading = false;
  first.reveal = function () {
    document.documentElement.classList.remove("vw-early");
    if (viewerLoading || !pixel || !config.viewerModule) return;
    viewerLoading = true;
    var script = document.createElement("script");
    script.type = "module";
    script.src = config.viewerModule;
    document.head.append(script);
  };
  setTimeout(first.reveal, 600);
  if (!pixel) return first.reveal();
  // When the frame's bytes and the layout were ready, and what drawing cost (benchmark).
  frameBytes.then(function () {
    stats.firstBytesMs = performance.now();
  }, function () {});
  var laidOut = new Promise(function (resolve) {
    first.laidOut = function () {
      stats.laidOutMs = performance.now();
      resolve();
    };
  });
  Promise.all([frameBytes, laidOut]).then(function (done) {
    if (!first.adopted) paint(done[0]);
    // After the frame that shows it: a rendering opportunity, then a task.
    requestAnimationFrame(function () {
      setTimeout(first.reveal, 0);
    });
  }, first.reveal);

  function windowed(value, center, width) {
    if (width <= 1) return value < center - 0.5 ? 0 : 1;
    var y = (value - (center - 0.5)) / (width - 1) + 0.5;
    return y <= 0 ? 0 : y >= 1 ? 1 : y;
  }

  /* Grey values to RGBA words: the same table render.js builds. */
  function greyWords(bytes, words) {
    var count = pixel.rows * pixel.columns;
    var px;
    if (pixel.bitsAllocated === 8) px = bytes;
    else {
      var aligned = bytes.byteOffset % 2 === 0 ? bytes : bytes.slice();
      px = pixel.signed
        ? new Int16Array(aligned.buffer, aligned.byteOffset, count)
        : new Uint16Array(aligned.buffer, aligned.byteOffset, count);
    }
    // The table covers only the values present (a CT's few thousand, not 65,536):
    // building it is most of the first draw's cost before the code is compiled.
    var lo = Infinity, hi = -Infinity;
    for (var k = 0; k < count; k++) {
      if (px[k] < lo) lo = px[k];
      if (px[k] > hi) hi = px[k];
    }
    var win = pixel.window;
    if (!win) {
      var a = lo * pixel.slope + pixel.intercept;
      var b = hi * pixel.slope + pixel.intercept;
      win = { center: (a + b) / 2, width: Math.max(1, Math.abs(b - a)) };
    }
    var invert = pixel.photometric === "MONOCHROME1";
    var lut = new Uint32Array(hi - lo + 1);
    for (var i = 0; i < lut.length; i++) {
      var y = windowed((i + lo) * pixel.slope + pixel.intercept, win.center, win.width);
      if (invert) y = 1 - y;
      var g = Math.round(y * 255);
      lut[i] = (0xff000000 | (g << 16) | (g << 8) | g) >>> 0;
    }
    for (var j = 0; j < count; j++) words[j] = lut[px[j] - lo];
  }

  function rgbWords(bytes, words) {
    var count = pixel.rows * pixel.columns;
    for (var i = 0, j = 0; i < count; i++, j += 3) {
      words[i] = (0xff000000 | (bytes[j + 2] << 16) | (bytes[j + 1] << 8) | bytes[j]) >>> 0;
    }
  }

  function paint(bytes) {
    var began = performance.now();
    var grid = document.querySelector(".vw-grid");
    if (!grid || bytes.length < expected) return;
    var holder = document.createElement("div");
    holder.className = "vp vp-first";
    var canvas = document.createElement("canvas");
    holder.append(canvas);
    grid.append(holder);
    var rect = holder.getBoundingClientRect();
    var dpr = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, Math.round(rect.width * dpr));
    canvas.height = Math.max(1, Math.round(rect.height * dpr));

    var image = document.createElement("canvas");
    image.width = pixel.columns;
    image.height = pixel.rows;
    var imageCtx = image.getContext("2d");
    var data = imageCtx.createImageData(pixel.columns, pixel.rows);
    var words = new Uint32Array(data.data.buffer);
    if (pixel.kind === "rgb") rgbWords(bytes, words);
    else greyWords(bytes, words);
    imageCtx.putImageData(data, 0, 0);

    // Fitted and centred, a pixel's height over its width kept (render.js viewMatrix).
    var ctx = canvas.getContext("2d", { alpha: false });
    var aspect = pixel.aspect || 1;
    var scale = Math.min(canvas.width / pixel.columns, canvas.height / (pixel.rows * aspect));
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.setTransform(
      scale, 0, 0, scale * aspect,
      canvas.width / 2 - (pixel.columns / 2) * scale,
      canvas.height / 2 - (pixel.rows / 2) * scale * aspect
    );
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(image, 0, 0);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    first.painted = true;
    stats.firstPaintCostMs = performance.now() - began;
    if (stats.firstImageMs === null) {
      stats.firstImageMs = performance.now();
      performance.mark("viewer-first-image");
    }
  }
})();
