"""The edge agent: runs beside a hospital's Orthanc and pushes its studies to the hub.

It needs no database and no Django settings of its own: run it as
``python manage.py edge_agent`` on a machine with the project installed, or as
``python -m studies.edge`` (same options). See ``studies.edge.agent`` for what
one cycle does and ``studies.edge.config`` for the options and the JSON file.

Second path: Orthanc's own DICOMweb client
-------------------------------------------
Orthanc's DICOMweb plugin (1.7, Debian's ``orthanc-dicomweb``) can push to the
hub by itself, e.g. from Orthanc Explorer or a Lua script. Declare the hub in
the Orthanc configuration, with the edge token as a bearer header (the plugin
takes the extended object form, ``HttpHeaders`` included)::

    "DicomWeb": {
      "Enable": true,
      "Servers": {
        "hub": {
          "Url": "https://hub.example.org/dicom-web/",
          "HttpHeaders": {"Authorization": "Bearer edge_..."},
          "ChunkedTransfers": false
        }
      }
    }

``ChunkedTransfers: false`` makes the plugin send a Content-Length. The hub
under daphne (ASGI), or behind a proxy that buffers request bodies (nginx's
default), reads a chunked body too; a plain WSGI server with nothing in front
(e.g. the test live server) does not, and the push fails with 400 there.
The short form ``"hub": ["https://hub.example.org/dicom-web/", "<user>", "<password>"]``
(HTTP Basic with a person's account, who must be a technician or doctor of the
institution) works as well, but the studies are then sent in that person's
name rather than the edge's.

Then push a study (its Orthanc id) from the edge::

    curl -u <orthanc user>:<password> -X POST http://127.0.0.1:8042/dicom-web/servers/hub/stow \\
         -d '{"Resources": ["<orthanc study id>"]}'

Add ``"Synchronous": false`` to get a job id back instead of waiting. This path
has no cursor and no ledger report: it is for pushing by hand; the agent is the
path that guarantees every stable study arrives.
"""
