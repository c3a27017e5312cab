"""What Airflow discovers of pdf2md: the run status page and the links to it.

The page (pdf2md.ui.app) is mounted into the API server at /pdf2md; a "Conversion status" tab on
every DAG run's page opens it for that run (the page says so when a run is not a pdf2md run), and
the navigation lists recent runs.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from pdf2md.ui.app import URL_PREFIX, create_app


class Pdf2mdPlugin(AirflowPlugin):
    name = "pdf2md"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "pdf2md run status"}]
    external_views = [
        {"name": "Conversion status", "href": URL_PREFIX + "/runs/{DAG_ID}/{RUN_ID}", "destination": "dag_run",
         "url_route": "pdf2md-status"},
        {"name": "pdf2md runs", "href": URL_PREFIX + "/", "destination": "nav", "category": "browse",
         "url_route": "pdf2md-runs"},
    ]
