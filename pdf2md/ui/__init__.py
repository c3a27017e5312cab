"""The run status page served inside Airflow's API server (see pdf2md.ui.app)."""
