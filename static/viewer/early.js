/*
 * Ask for the first image's frame and metadata as soon as the page is parsed,
 * while the viewer's modules are still on their way: on a slow link that
 * saves their round trips before the first image. A classic script, loaded
 * async; viewer.js picks the responses up from window.__viewerEarly.
 */
(function () {
  "use strict";
  var element = document.getElementById("viewer-config");
  // The modules came first after all: the viewer asks for itself.
  if (!element || window.__viewerStarted) return;
  var config = JSON.parse(element.textContent);
  if (!config.firstInstanceUid) return;
  var base = [
    config.dicomweb,
    "studies", encodeURIComponent(config.studyUid),
    "series", encodeURIComponent(config.firstSeriesUid),
    "instances", encodeURIComponent(config.firstInstanceUid),
  ].join("/");
  var options = function (accept) {
    return { headers: { Accept: accept }, credentials: "same-origin" };
  };
  window.__viewerEarly = {
    frame: fetch(base + "/frames/1", options('multipart/related; type="application/octet-stream"')),
    metadata: fetch(base + "/metadata", options("application/dicom+json")),
  };
  // Errors are handled where the responses are read.
  window.__viewerEarly.frame.catch(function () {});
  window.__viewerEarly.metadata.catch(function () {});
})();
